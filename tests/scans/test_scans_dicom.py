"""DICOM ingestion: single files, series (grouping, sorting, geometry), pixel values."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import (
    all_warnings,
    codes,
    encode,
    load,
    make_ct_dataset,
    make_ct_series,
    make_enhanced_mr,
    make_zip,
    named,
    says_what_to_do,
)
from pydicom import dcmread
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

SAME_SERIES = {
    "series_uid": "1.2.826.0.1.3680043.8.498.11",
    "study_uid": "1.2.826.0.1.3680043.8.498.12",
    "frame_uid": "1.2.826.0.1.3680043.8.498.13",
}


def only_scan(result):
    assert not result.problems, result.problems
    assert len(result.scans) == 1, [s.describe() for s in result.scans]
    return result.scans[0]


def assert_series_geometry(scan, series) -> None:
    """Slices ascend along the normal and the affine maps voxels onto the written positions."""
    proj = series.positions @ series.normal
    assert np.all(np.diff(proj) > 0), "expected positions are not ascending (fixture bug)"
    aff = scan.affine
    assert aff is not None
    for k, pos in enumerate(series.positions):
        np.testing.assert_allclose(aff @ [0, 0, k, 1], [*pos, 1], atol=1e-4)
    row_spacing, col_spacing = series.pixel_spacing
    np.testing.assert_allclose(aff[:3, 0], series.row_dir * col_spacing, atol=1e-4)
    np.testing.assert_allclose(aff[:3, 1], series.col_dir * row_spacing, atol=1e-4)


# --- single files -----------------------------------------------------------------------------


def test_ct_small_single_file(pydicom_file):
    path = pydicom_file("CT_small.dcm")
    scan = only_scan(load([path]))
    ds = dcmread(path)
    assert scan.kind == "slice"
    assert scan.modality == "CT"
    assert scan.source_format == "DICOM"
    assert scan.shape == (1, 128, 128)
    assert scan.array.dtype == np.int16
    np.testing.assert_array_equal(scan.array[0], apply_modality_lut(ds.pixel_array, ds))
    assert scan.array.min() < 0  # HU, intercept -1024 applied
    assert "PatientName" in scan.removed
    row_sp, col_sp = (float(v) for v in ds.PixelSpacing)
    assert scan.spacing_mm is not None
    np.testing.assert_allclose(scan.spacing_mm[:2], (col_sp, row_sp), rtol=1e-6)


def test_single_synthetic_slice_is_a_slice():
    scan = only_scan(load([encode(make_ct_dataset())]))
    assert scan.kind == "slice"
    assert scan.shape == (1, 8, 8)
    assert scan.file_count == 1


# --- one series ---------------------------------------------------------------------------------


def test_three_slice_series_is_one_volume():
    series = make_ct_series(n=3)
    scan = only_scan(load(named(series)))
    assert scan.kind == "volume"
    assert scan.modality == "CT"
    assert scan.source_format == "DICOM"
    assert scan.shape == (3, 8, 8)
    assert scan.file_count == 3
    assert scan.array.dtype == np.int16
    np.testing.assert_allclose(scan.spacing_mm, (0.7, 0.7, 2.5), rtol=1e-6)
    np.testing.assert_array_equal(scan.array, series.expected)
    assert_series_geometry(scan, series)
    assert scan.voxel_volume_ml == pytest.approx(0.7 * 0.7 * 2.5 / 1000)
    assert scan.describe().startswith("CT volume, 3 slices of 8×8")


def test_anisotropic_pixel_spacing_is_x_y_z_ordered():
    # PixelSpacing is (row spacing, column spacing); spacing_mm is (x=column, y=row, z).
    series = make_ct_series(n=3, rows=6, cols=10, spacing=(0.6, 0.8), slice_step=3.0)
    scan = only_scan(load(named(series)))
    assert scan.shape == (3, 6, 10)
    np.testing.assert_allclose(scan.spacing_mm, (0.8, 0.6, 3.0), rtol=1e-6)
    np.testing.assert_array_equal(scan.array, series.expected)
    assert_series_geometry(scan, series)


def test_shuffled_files_and_names_give_the_same_array(tmp_path):
    ordered = load(named(make_ct_series(n=6))).scans[0]
    shuffled_bytes = make_ct_series(n=6, shuffle=7)
    scan = only_scan(load(named(shuffled_bytes)))
    np.testing.assert_array_equal(scan.array, ordered.array)
    np.testing.assert_allclose(scan.affine, ordered.affine)
    # names in an order that disagrees with positions, loaded from a folder
    paths = make_ct_series(tmp_path / "upload", n=6, shuffle=3)
    scan = only_scan(load([tmp_path / "upload"]))
    np.testing.assert_array_equal(scan.array, ordered.array)
    np.testing.assert_array_equal(scan.array, paths.expected)


def test_sorting_uses_position_not_instance_number():
    series = make_ct_series(n=4, instance_numbers=[3, 1, 4, 2], shuffle=1)
    scan = only_scan(load(named(series)))
    np.testing.assert_array_equal(scan.array, series.expected)
    assert_series_geometry(scan, series)


def test_descending_z_series_is_sorted_along_the_normal():
    series = make_ct_series(n=4, slice_step=-2.5)  # acquired head to feet
    scan = only_scan(load(named(series)))
    # file 3 is the lowest slice: it must come first
    np.testing.assert_array_equal(scan.array, series.expected)
    np.testing.assert_array_equal(scan.array[0], series.expected[0])
    assert series.expected[0][0, 0] == 300 - 1024
    np.testing.assert_allclose(scan.spacing_mm[2], 2.5, rtol=1e-6)
    assert_series_geometry(scan, series)


def test_sagittal_series_is_sorted_along_its_normal():
    series = make_ct_series(
        n=4, rows=6, cols=10, orientation=(0, 1, 0, 0, 0, -1), slice_step=1.5, shuffle=5
    )
    scan = only_scan(load(named(series)))
    assert scan.shape == (4, 6, 10)
    np.testing.assert_array_equal(scan.array, series.expected)
    np.testing.assert_allclose(scan.spacing_mm, (0.7, 0.7, 1.5), rtol=1e-6)
    assert_series_geometry(scan, series)


def test_rescale_integer_slope_stays_int16():
    series = make_ct_series(n=3, slope=2, intercept=-1000)
    scan = only_scan(load(named(series)))
    assert scan.array.dtype == np.int16
    np.testing.assert_array_equal(scan.array, series.expected)


def test_rescale_fractional_slope_gives_float32():
    series = make_ct_series(n=3, slope=0.5, intercept=-10.25)
    scan = only_scan(load(named(series)))
    assert scan.array.dtype == np.float32
    np.testing.assert_allclose(scan.array, series.expected, rtol=0, atol=1e-4)


def test_values_beyond_int16_give_float32():
    series = make_ct_series(n=3, slope=1, intercept=40000)
    scan = only_scan(load(named(series)))
    assert scan.array.dtype == np.float32
    np.testing.assert_array_equal(scan.array, series.expected)


def test_mr_without_rescale_keeps_stored_values():
    series = make_ct_series(n=3, modality="MR", slope=None, intercept=None)
    scan = only_scan(load(named(series)))
    assert scan.modality == "MR"
    assert scan.array.dtype == np.int16
    np.testing.assert_array_equal(scan.array, series.expected)


def test_monochrome1_is_inverted():
    series = make_ct_series(n=3, monochrome1=True, modality="MR", slope=None, intercept=None)
    scan = only_scan(load(named(series)))
    total = scan.array.astype(np.float64) + series.expected
    # inverted: higher stored value -> darker, by a mirror (out = c - value)
    assert np.all(total == total.flat[0]), "MONOCHROME1 not inverted by a mirror"
    assert not np.array_equal(scan.array, series.expected)


# --- several series, bad series ---------------------------------------------------------------


def test_two_series_in_one_zip_are_never_merged():
    a = make_ct_series(n=3)
    b = make_ct_series(n=4)  # same geometry, different SeriesInstanceUID
    entries = [(f"a/{i}.dcm", d) for i, d in enumerate(a)]
    entries += [(f"b/{i}.dcm", d) for i, d in enumerate(b)]
    result = load([("study.zip", make_zip(entries))])
    assert not result.problems
    assert sorted(s.shape[0] for s in result.scans) == [3, 4]
    by_len = {s.shape[0]: s for s in result.scans}
    np.testing.assert_array_equal(by_len[3].array, a.expected)
    np.testing.assert_array_equal(by_len[4].array, b.expected)
    assert by_len[3].fingerprint != by_len[4].fingerprint


def test_two_series_as_loose_files_are_never_merged():
    a = make_ct_series(n=2)
    b = make_ct_series(n=3)
    result = load(named([*a, *b]))
    assert sorted(s.shape[0] for s in result.scans) == [2, 3]


def test_missing_slice_is_uneven_spacing():
    series = make_ct_series(n=5, drop=2)
    result = load(named(series))
    assert "uneven-spacing" in codes(result)
    assert not result.scans
    reason = next(p.reason for p in result.problems if p.code == "uneven-spacing")
    low = reason.lower()
    assert "missing" in low or "spacing" in low, reason
    assert says_what_to_do(reason), reason


def test_uneven_spacing_within_tolerance_loads():
    # 0.5 % jitter is inside the default 1 % tolerance
    files = [
        encode(make_ct_dataset(position=(0, 0, z), **SAME_SERIES)) for z in (0.0, 2.5, 5.0125, 7.5)
    ]
    result = load(named(files))
    assert [s.shape[0] for s in result.scans] == [4], codes(result)


def test_duplicate_positions_with_different_uids():
    series = make_ct_series(n=4, duplicate=1)
    result = load(named(series))
    assert "duplicate-slices" in codes(result)
    assert not result.scans


def test_every_position_twice_is_duplicate_slices():
    # two phases of one series sharing positions, e.g. a multi-phase acquisition
    a = make_ct_series(n=3)
    b = make_ct_series(n=3, series_uid=a.series_uid)
    result = load(named([*a, *b]))
    assert "duplicate-slices" in codes(result)
    assert not any(s.shape[0] in (3, 6) and s.kind == "volume" for s in result.scans)


def test_exact_duplicate_file_loads_with_a_warning():
    series = make_ct_series(n=3)
    result = load(named([*series, series[1]]))
    scan = only_scan(result)
    assert scan.shape[0] == 3
    np.testing.assert_array_equal(scan.array, series.expected)
    assert all_warnings(result)


def test_gantry_tilt_loads_with_a_warning():
    series = make_ct_series(n=4, tilt_deg=15)
    result = load(named(series))
    scan = only_scan(result)
    assert scan.shape[0] == 4
    np.testing.assert_array_equal(scan.array, series.expected)
    assert any("tilt" in w.lower() for w in all_warnings(result)), all_warnings(result)


def test_inconsistent_slice_size_is_bad_geometry():
    series = make_ct_series(n=4, sizes={1: (10, 8)})
    result = load(named(series))
    assert "bad-geometry" in codes(result)
    assert not any(s.shape[0] == 4 for s in result.scans)


def test_inconsistent_pixel_spacing_is_bad_geometry():
    files = [
        encode(make_ct_dataset(position=(0, 0, 2.5 * k), spacing=sp, **SAME_SERIES))
        for k, sp in enumerate([(0.7, 0.7), (0.7, 0.7), (0.9, 0.9)])
    ]
    result = load(named(files))
    assert "bad-geometry" in codes(result)
    assert not any(s.shape[0] == 3 for s in result.scans)


def test_localizer_in_a_series_is_dropped_with_a_warning():
    series = make_ct_series(n=4)
    localizer = make_ct_dataset(
        series_uid=series.series_uid,
        study_uid=series.study_uid,
        frame_uid=series.frame_uid,
        orientation=(0, 1, 0, 0, 0, -1),
        position=(0, -100, 100),
        instance_number=99,
    )
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    result = load(named([encode(localizer), *series]))
    volumes = [s for s in result.scans if s.kind == "volume"]
    assert len(volumes) == 1
    np.testing.assert_array_equal(volumes[0].array, series.expected)
    assert all_warnings(result)


# --- multi-frame and compressed -------------------------------------------------------------


def test_enhanced_multiframe_mr_is_a_volume():
    data, stored = make_enhanced_mr(frames=4, rows=8, cols=6, spacing=(0.5, 0.75), slice_step=3)
    scan = only_scan(load([("emr.dcm", data)]))
    assert scan.kind == "volume"
    assert scan.modality == "MR"
    assert scan.shape == (4, 8, 6)
    np.testing.assert_array_equal(scan.array, stored)
    np.testing.assert_allclose(scan.spacing_mm, (0.75, 0.5, 3.0), rtol=1e-6)
    np.testing.assert_allclose(scan.affine @ [0, 0, 2, 1], [5, -7, -12 + 6, 1], atol=1e-4)


@pytest.mark.parametrize(
    ("transfer_syntax", "size"),
    [
        (RLELossless, 8),
        (JPEGLSLossless, 8),
        (JPEG2000Lossless, 32),
        (DeflatedExplicitVRLittleEndian, 8),
    ],
    ids=["rle", "jpeg-ls", "j2k", "deflate"],
)
def test_compressed_synthetic_series_decodes_exactly(transfer_syntax, size):
    series = make_ct_series(n=3, rows=size, cols=size, transfer_syntax=transfer_syntax)
    scan = only_scan(load(named(series)))
    np.testing.assert_array_equal(scan.array, series.expected)
    for data, plane in zip(series, series.expected, strict=True):
        ds = dcmread(io.BytesIO(data))
        np.testing.assert_array_equal(apply_modality_lut(ds.pixel_array, ds), plane)
