"""medmodels.render: windows, overlays, PNGs and the NIfTI mask export, on hand-made arrays and
on the sample phantom."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmodels import load_scans
from medmodels.render import (
    CT_PRESETS,
    DIFF_COLOUR,
    WindowLevel,
    auto_window,
    best_slice,
    dicom_window,
    differing,
    display_size,
    legend_items,
    mask_to_nifti,
    nearest_preset,
    outline,
    overlay,
    parse_colour,
    presets,
    render_slice,
    to_png,
    window_to_uint8,
)
from medmodels.store import Label

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"


def test_ct_presets_are_the_usual_hounsfield_windows() -> None:
    assert CT_PRESETS["Lung"] == WindowLevel(center=-600, width=1500)
    assert CT_PRESETS["Soft tissue"] == WindowLevel(center=40, width=400)
    assert CT_PRESETS["Bone"] == WindowLevel(center=400, width=1800)
    assert CT_PRESETS["Brain"] == WindowLevel(center=40, width=80)
    assert list(presets("CT")) == ["Lung", "Soft tissue", "Bone", "Brain"]
    assert str(CT_PRESETS["Lung"]) == "W 1500 / L -600"


def test_window_maps_low_to_black_and_high_to_white() -> None:
    w = WindowLevel(center=40, width=400)  # -160 … 240
    plane = np.array([[-1000, -160, 40, 240, 3000]], dtype=np.int16)
    out = window_to_uint8(plane, w)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 128, 255, 255]]


def test_auto_window_uses_percentiles_and_survives_a_flat_image() -> None:
    a = np.arange(101, dtype=np.float32)
    w = auto_window(a)
    assert w.low == pytest.approx(1.0)
    assert w.high == pytest.approx(99.0)
    flat = auto_window(np.full((4, 4), 7.0))
    assert flat.width == 1.0


def test_mr_presets_offer_the_dicom_window_first_then_auto() -> None:
    array = np.linspace(0, 1000, 1000)
    choices = presets("MR", array=array, summary={"window_center": 300, "window_width": 600})
    assert list(choices) == ["DICOM window", "Auto", "Full range"]
    assert choices["DICOM window"] == WindowLevel(300, 600)
    assert choices["Full range"].low == pytest.approx(0)
    assert list(presets("CR", array=array, summary={})) == ["Auto", "Full range"]
    assert dicom_window({"window_center": 10, "window_width": 0}) is None
    assert dicom_window({"window_center": None, "window_width": 5}) is None


def test_nearest_preset_matches_a_models_window() -> None:
    assert nearest_preset(CT_PRESETS, WindowLevel(-500, 1400)) == "Lung"
    assert nearest_preset(CT_PRESETS, WindowLevel(50, 350)) == "Soft tissue"


def test_parse_colour() -> None:
    assert parse_colour("#ff8000") == (255, 128, 0)
    with pytest.raises(ValueError, match="rrggbb"):
        parse_colour("red")


def test_outline_of_a_square_is_its_border() -> None:
    m = np.zeros((6, 6), bool)
    m[1:5, 1:5] = True
    ring = outline(m)
    assert ring.sum() == 12
    assert not ring[2:4, 2:4].any()
    assert not outline(np.zeros((3, 3), bool)).any()


def test_overlay_fill_blends_and_outline_is_solid() -> None:
    grey = np.full((6, 6), 100, np.uint8)
    labels = np.zeros((6, 6), np.uint8)
    labels[1:5, 1:5] = 2
    labels[0, 0] = 7  # no colour: not drawn
    rgb = overlay(grey, labels, {1: "#00ff00", 2: "#ff0000"}, opacity=0.5, style="fill")
    assert rgb.shape == (6, 6, 3)
    assert rgb[2, 2].tolist() == [178, 50, 50]  # 100*0.5 + 255*0.5 (rounded), 100*0.5
    assert rgb[1, 1].tolist() == [255, 0, 0]  # the outline is solid
    assert rgb[5, 5].tolist() == [100, 100, 100]
    assert rgb[0, 0].tolist() == [100, 100, 100]
    only = overlay(grey, labels, {2: "#ff0000"}, opacity=0.5, style="outline")
    assert only[2, 2].tolist() == [100, 100, 100]
    assert only[1, 1].tolist() == [255, 0, 0]
    hidden = overlay(grey, labels, {2: "#ff0000"}, opacity=0.0)
    assert (hidden == 100).all()


def test_overlay_highlight_is_drawn_on_top() -> None:
    grey = np.zeros((4, 4), np.uint8)
    labels = np.ones((4, 4), np.uint8)
    diff = np.zeros((4, 4), bool)
    diff[0, 0] = True
    rgb = overlay(grey, labels, {1: "#00ff00"}, highlight=diff)
    assert rgb[0, 0].tolist() == list(parse_colour(DIFF_COLOUR))
    with pytest.raises(ValueError, match="differ in size"):
        overlay(grey, np.ones((3, 3)), {})


def test_display_size_squares_pixels_and_scales() -> None:
    assert display_size((256, 256), (1.5, 1.5)) == (384, 384)
    assert display_size((512, 512), (0.7, 0.7)) == (512, 512)
    assert display_size((100, 200), (1.0, 2.0)) == (384, 384)  # rows twice as tall
    assert display_size((2000, 1000), None) == (512, 1024)


def test_render_slice_returns_an_rgb_image_that_pngs() -> None:
    plane = np.linspace(-1000, 1000, 64 * 64).reshape(64, 64)
    labels = np.zeros((64, 64), np.uint8)
    labels[10:20, 10:20] = 1
    image = render_slice(
        plane, CT_PRESETS["Lung"], labels=labels, colours={1: "#ff0000"}, spacing_xy=(1.0, 1.0)
    )
    assert image.mode == "RGB"
    assert image.size == (384, 384)
    data = to_png(image)
    assert data.startswith(b"\x89PNG")
    back = np.asarray(Image.open(io.BytesIO(data)))
    assert back[10 * 6, 10 * 6].tolist() == [255, 0, 0]  # nearest upscaling keeps the outline
    big = render_slice(np.zeros((2048, 1024)), WindowLevel(0, 1))
    assert big.size == (512, 1024)


def test_best_slice_prefers_the_most_foreground() -> None:
    labels = np.zeros((5, 4, 4), np.uint8)
    labels[3, :2] = 1
    labels[1, 0, 0] = 2
    assert best_slice(labels, 5) == 3
    assert best_slice(np.zeros((5, 4, 4)), 5) == 2
    assert best_slice(None, 1) == 0


def test_differing_and_legend() -> None:
    a = np.array([[0, 1], [1, 1]])
    b = np.array([[0, 1], [0, 2]])
    assert differing(a, b).tolist() == [[False, False], [True, True]]
    with pytest.raises(ValueError, match="different sizes"):
        differing(a, np.zeros((3, 3)))
    labels = [
        Label(index=1, name="lung", colour="#ff0000"),
        Label(index=0, name="background", colour="#000000"),
    ]
    assert legend_items(labels) == [("lung", "#ff0000")]


@pytest.mark.parametrize("source", ["ct-chest-phantom.zip", "ct-chest-phantom.nii.gz"])
def test_mask_nifti_lands_on_the_scan_it_was_made_for(source: str) -> None:
    scan = load_scans([SAMPLES / source]).raise_if_empty().scans[0]
    truth = np.load(SAMPLES / "ct-chest-phantom-truth.npz")["labels"]
    assert truth.shape == scan.shape
    data = mask_to_nifti(truth, affine_lps=scan.affine, spacing_mm=scan.spacing_mm)
    assert data[:2] == b"\x1f\x8b"
    back = load_scans([("mask.nii.gz", data)]).raise_if_empty().scans[0]
    np.testing.assert_array_equal(back.array, truth)
    assert back.affine is not None and scan.affine is not None
    np.testing.assert_allclose(back.affine, scan.affine, atol=1e-4)
    assert back.spacing_mm == pytest.approx(scan.spacing_mm)


def test_mask_nifti_without_geometry_keeps_the_image_layout() -> None:
    mask = np.zeros((1, 3, 5), np.uint8)
    mask[0, 0, 4] = 1
    raw = mask_to_nifti(mask, affine_lps=None, spacing_mm=None, compress=False)
    back = load_scans([("m.nii", raw)]).raise_if_empty().scans[0]
    np.testing.assert_array_equal(back.array, mask)
