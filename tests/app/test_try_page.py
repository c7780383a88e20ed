"""The Try page through AppTest: real uploads of the sample data, series choice, fit check,
run, result, downloads, compare, deep links, page switches."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile

import nibabel as nib
import numpy as np
import pydicom

from medmodels import load_scans

from .conftest import SAMPLES, errors, texts, upload

PHANTOM_ZIP = SAMPLES / "ct-chest-phantom.zip"


def _run_model(at):
    at.button(key="try_run").click().run()
    assert not at.exception, at.exception
    return at


def test_every_page_says_research_use_only(make_app) -> None:
    at = make_app().run()
    assert not at.exception
    assert any("Research use only" in w.value for w in at.warning)
    at.switch_page("app_pages/models.py").run()
    assert any("Research use only" in w.value for w in at.warning)


def test_the_default_model_and_version_are_the_production_alias(make_app) -> None:
    at = make_app().run()
    assert at.selectbox(key="try_model").value == "air-mask"
    version = at.selectbox(key="try_version")
    assert version.value == "production"
    assert version.options[:1] == ["production → 1.1.0"]
    text = texts(at)
    assert "Marks air on axial CT slices" in text
    assert "Made for tests: it marks air, not lungs." in text  # the card's limitations


def test_upload_the_phantom_zip_run_and_read_the_result(make_app) -> None:
    at = make_app().run()
    upload(at, "try_files", ("phantom.zip", PHANTOM_ZIP.read_bytes()))
    assert not at.exception
    text = texts(at)
    assert "CT volume, 64 slices of 256×256, 1.50×1.50×5.00 mm" in text
    assert "PatientName" in text and "PHANTOM" not in text  # names only, never values
    assert "The scan fits air-mask@1.1.0" in text
    _run_model(at)
    table = at.dataframe[0].value
    assert list(table["Label"]) == ["air"]
    volume = float(table["Volume (mL)"][0])
    assert volume > 1000  # the air around the phantom
    assert "1.1.0" in texts(at)
    assert len(at.image) == 1
    assert at.slider(key="try_view_slice").value >= 1

    # The result survives reruns caused by other widgets.
    at.slider(key="try_view_opacity").set_value(0.8).run()
    at.radio(key="try_view_style").set_value("Outline").run()
    assert float(at.dataframe[0].value["Volume (mL)"][0]) == volume
    assert len(at.image) == 1

    # Downloads: the result as JSON and the mask as NIfTI in the scan's geometry.
    json_button = at.get("download_button")[0]
    assert json_button.proto.label.startswith("Download the result")
    result = at.session_state["try_result"]
    data = json.loads(result.downloads["json"])
    assert data["version"] == "1.1.0"
    assert round(data["result"]["volumes_ml"]["air"], 1) == volume
    mask = nib.Nifti1Image.from_bytes(__import__("gzip").decompress(result.downloads["nifti"]))
    assert mask.shape == (256, 256, 64)
    back = load_scans([("mask.nii.gz", result.downloads["nifti"])]).scans[0]
    np.testing.assert_array_equal(back.array, result.prediction.label_volume)


def test_a_jump_button_moves_the_slider_to_the_largest_finding(make_app) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    assert "Result" in texts(at)
    jump = at.button(key="try_view_jump_1")
    target = at.session_state["try_result"].prediction.labels[1].largest_slice + 1
    at.slider(key="try_view_slice").set_value(1).run()
    jump.click().run()
    assert at.slider(key="try_view_slice").value == target


def test_several_series_are_listed_and_a_misfit_says_why(make_app) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(SAMPLES / "dicom" / "MR_small.dcm", "mr/MR_small.dcm")
        for path in sorted((SAMPLES / "ct-chest-phantom").glob("*.dcm")):
            zf.write(path, f"ct/{path.name}")
    at = make_app().run()
    upload(at, "try_files", ("two.zip", buf.getvalue()))
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table["Modality"]) == ["CT", "MR"]
    series = at.radio(key="try_series")
    mr = next(o for o in series.options if "MR" in o)
    series.set_value(mr).run()
    text = "\n".join(errors(at))
    assert "does not fit" in text and "the upload is MR" in text
    assert at.button(key="try_run").disabled
    ct = next(o for o in series.options if "CT" in o)
    at.radio(key="try_series").set_value(ct).run()
    assert not at.button(key="try_run").disabled


def test_bad_files_are_reported_one_line_each(make_app) -> None:
    at = make_app().run()
    upload(
        at,
        "try_files",
        ("empty.dcm", b""),
        ("notes.txt", b"hello"),
        ("cut.dcm", (SAMPLES / "dicom" / "CT_small.dcm").read_bytes()[:2000]),
    )
    assert not at.exception
    (message,) = errors(at)
    lines = [line for line in message.splitlines() if line.startswith("- ")]
    assert len(lines) == 3
    assert "empty" in message and "notes" in message and "cut" in message
    assert "Traceback" not in texts(at)
    assert "Nothing in this upload could be read" in texts(at)


def test_a_deep_link_selects_and_runs_and_the_url_follows_the_user(make_app) -> None:
    at = make_app(model="air-mask", version="1.0.0", sample="ct-chest-phantom").run()
    assert not at.exception
    assert at.selectbox(key="try_version").value == "1.0.0"
    assert at.radio(key="try_source").value == "Sample scan"
    result = at.session_state["try_result"]
    assert result.prediction.version == "1.0.0"
    at.selectbox(key="try_version").set_value("production").run()
    assert at.query_params["version"] == "production"
    assert "run the model again" in texts(at)  # the old result is not shown as current
    at.selectbox(key="try_sample").set_value("mr-small").run()
    assert at.query_params["sample"] == "mr-small"
    assert "does not fit" in "\n".join(errors(at))


def test_parameters_survive_switching_pages(make_app) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    at.switch_page("app_pages/models.py").run()
    assert at.query_params.get("model") == "air-mask"
    assert at.selectbox(key="models_model").value == "air-mask"
    at.switch_page("app_pages/try_model.py").run()
    assert at.selectbox(key="try_sample").value == "ct-chest-phantom"
    assert "Result" in texts(at)  # the result is still there


def test_a_deep_link_to_something_missing_says_so(make_app) -> None:
    at = make_app(model="no-such-model", sample="nope").run()
    assert not at.exception
    assert "not here" in texts(at)
    at = make_app(model="air-mask", version="9.9.9").run()
    assert "has no version or alias 9.9.9" in texts(at)
    assert at.selectbox(key="try_version").value == "production"


def test_compare_two_versions_on_the_same_scan(make_app) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    at.selectbox(key="try_compare_version").set_value("1.0.0")
    at.button(key="try_compare_run").click().run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "Δ (mL)" in d.value.columns)
    row = table.iloc[0]
    assert row["Label"] == "air"
    assert row["Δ (mL)"] < 0  # 1.0.0 marks less air than 1.1.0
    assert "voxels differ" in texts(at)
    assert len(at.image) == 4  # the result, both versions and the difference


def test_a_classifier_shows_probability_bars_and_its_decision(make_app) -> None:
    at = make_app(model="dark-classifier", sample="ct-spine-small").run()
    assert not at.exception
    bars = [p.proto.text for p in at.get("progress")]
    assert any(b.startswith("bright:") for b in bars) and any(b.startswith("dark:") for b in bars)
    assert "Decision:" in texts(at)
    table = next(d.value for d in at.dataframe if "Probability" in d.value.columns)
    assert abs(table["Probability"].sum() - 1.0) < 1e-3


def test_a_radiograph_and_an_mr_show_in_the_viewer_with_their_own_windows(make_app) -> None:
    for sample, first in (("cr-chest", "DICOM window"), ("mr-brain-template", "Auto")):
        at = make_app(model="air-mask", sample=sample).run()
        assert not at.exception
        assert "does not fit" in "\n".join(errors(at))
        assert len(at.image) == 1  # the scan is shown before (without) a result
        preset = at.selectbox(key="try_view_preset")
        assert preset.value == first
        assert not any(o.startswith("Lung") for o in preset.options)
    assert at.slider(key="try_view_slice").max == 95  # MNI152 at 2 mm: 95 axial slices


def test_a_misfit_suggests_the_models_that_fit_and_switches(make_app) -> None:
    ds = pydicom.dcmread(SAMPLES / "dicom" / "CT_small.dcm")
    ds.PixelSpacing = [3.0, 3.0]  # coarser than air-mask accepts (0.3–2 mm)
    buf = io.BytesIO()
    ds.save_as(buf)
    at = make_app().run()
    upload(at, "try_files", ("coarse.dcm", buf.getvalue()))
    assert "pixel spacing between 0.3 and 2 mm" in "\n".join(errors(at))
    suggestion = at.button(key="try_suggest_dark-classifier")
    assert suggestion.proto.label == "Dark image classifier (dark-classifier)"
    suggestion.click().run()
    assert at.selectbox(key="try_model").value == "dark-classifier"
    assert "The scan fits dark-classifier@1.0.0" in texts(at)
    assert not at.button(key="try_run").disabled


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_hostile_uploads_are_refused_one_line_each_and_the_app_carries_on(make_app) -> None:
    ct = (SAMPLES / "dicom" / "CT_small.dcm").read_bytes()
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KB
    nan_nifti = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)).to_bytes())
    nan_nifti[252:256] = struct.pack("<hh", 0, 1)  # no qform: the (broken) sform counts
    nan_nifti[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]
    files = {
        "escape.zip": _zip({"../../etc/evil.dcm": ct}),
        "nested.zip": _zip({"inner.zip": _zip({"a.dcm": ct})}),
        "bomb.nii.gz": bomb,
        "nan.nii": bytes(nan_nifti),
        "no-pixels.dcm": _without_pixels(ct),
        "truncated.dcm": ct[: len(ct) // 2],
    }
    at = make_app().run()
    upload(at, "try_files", *files.items())
    assert not at.exception
    (message,) = errors(at)
    lines = [line for line in message.splitlines() if line.startswith("- ")]
    assert len(lines) == len(files)
    for name in files:
        assert name in message
    assert "Traceback" not in texts(at)
    # The app still works: a good upload right after.
    upload(at, "try_files", ("ct.dcm", ct))
    assert not errors(at)
    assert "CT slice, 128×128" in texts(at)


def _without_pixels(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()
