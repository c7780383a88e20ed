"""De-identification: no marker value from any header reaches a Scan, warning, problem or
error; ``removed`` names the identifying attributes that were present."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    PHI_ATTRIBUTE_NAMES,
    PHI_TOKENS,
    PRIVATE_MARKER,
    assert_no_phi,
    encode,
    load,
    make_ct_dataset,
    make_ct_series,
    make_enhanced_mr,
    make_nifti,
    make_png,
    make_zip,
    named,
)

from medmodels.errors import UnreadableScanError


def test_markers_are_really_in_the_input():
    data = make_ct_series(n=1)[0]
    for token in ("Qwyzzle", "Zanzibar", "ACC77Q1984", "19340217", "Quixotic"):
        assert token.encode() in data
    assert PRIVATE_MARKER.encode() in data


def test_series_scan_has_no_phi_and_lists_removed_attributes():
    series = make_ct_series(n=3)
    result = load(named(series))
    assert len(result.scans) == 1
    scan = result.scans[0]
    assert_no_phi(result, extra=series.uids)
    assert_no_phi(scan.describe())
    for name in PHI_ATTRIBUTE_NAMES:
        assert name in scan.removed, f"{name} not reported in removed"
    # names only, never values
    for entry in scan.removed:
        assert not any(token in entry for token in PHI_TOKENS)


def test_series_without_phi_reports_nothing_identifying_removed():
    series = make_ct_series(n=2, phi=False)
    scan = load(named(series)).scans[0]
    assert "PatientName" not in scan.removed
    assert "InstitutionName" not in scan.removed


def test_multiframe_has_no_phi():
    data, _ = make_enhanced_mr()
    result = load([("emr.dcm", data)])
    assert result.scans
    assert_no_phi(result)
    assert "PatientName" in result.scans[0].removed


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(lambda: named(make_ct_series(n=5, drop=2)), id="uneven-spacing"),
        pytest.param(lambda: named(make_ct_series(n=4, duplicate=1)), id="duplicate-slices"),
        pytest.param(lambda: named(make_ct_series(n=3, sizes={1: (9, 8)})), id="bad-geometry"),
        pytest.param(lambda: [("cut.dcm", encode(make_ct_dataset())[:700])], id="truncated"),
        pytest.param(lambda: [("cut.dcm", encode(make_ct_dataset())[:-10])], id="truncated-pixels"),
    ],
)
def test_problems_and_errors_have_no_phi(make_bad):
    result = load(make_bad())
    assert result.problems
    assert_no_phi(result)
    if not result.scans:
        with pytest.raises(UnreadableScanError) as info:
            result.raise_if_empty()
        assert_no_phi(str(info.value))
        assert_no_phi(repr(info.value))
        assert_no_phi(info.value.problems)


def test_no_pixel_data_problem_has_no_phi():
    ds = make_ct_dataset()
    del ds.PixelData
    result = load([("r.dcm", encode(ds))])
    assert result.problems
    assert_no_phi(result)


def test_warnings_have_no_phi():
    series = make_ct_series(n=3, tilt_deg=12)
    result = load([*named(series), ("dup.dcm", series[0])])
    assert result.scans
    assert_no_phi(result)


def test_zip_series_has_no_phi():
    series = make_ct_series(n=3)
    result = load([("u.zip", make_zip([(f"{i}.dcm", d) for i, d in enumerate(series)]))])
    assert result.scans
    assert_no_phi(result, extra=series.uids)


def test_nifti_header_text_and_extensions_do_not_leak():
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    nii = make_nifti(
        data, np.eye(4), descrip="Qwyzzle Xavierette 19340217", extension=b"Zanzibar Zorblax"
    )
    result = load([("x.nii", nii)])
    assert result.scans
    assert_no_phi(result)


def test_png_text_chunks_do_not_leak():
    img = np.arange(30, dtype=np.uint8).reshape(5, 6)
    result = load([("x.png", make_png(img, Author="Qwyzzle Xavierette", Comment="Zanzibar"))])
    assert result.scans
    assert_no_phi(result)
