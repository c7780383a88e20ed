"""pydicom's own test files: every compressed transfer syntax decodes like its uncompressed
counterpart, and values equal pydicom's ``apply_modality_lut(ds.pixel_array, ds)``.

Files from pydicom's ``test_files`` are a runtime dependency; files from pydicom-data (a build
extra) are used through the ``data_store_file`` fixture, which skips when it is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PYDICOM_DATA_STORE, PYDICOM_TEST_FILES, codes, load
from pydicom import dcmread
from pydicom.pixels import apply_modality_lut


def _path(name: str):
    p = PYDICOM_TEST_FILES / name
    if p.exists():
        return p
    if PYDICOM_DATA_STORE is None or not (PYDICOM_DATA_STORE / name).exists():
        pytest.skip(f"{name} needs pydicom-data (a build extra), which is not installed")
    return PYDICOM_DATA_STORE / name


def _load_one(name: str):
    return load([_path(name)])


# (reference, other) pairs whose pixel data pydicom decodes identically. The loader must give
# the same outcome for both and, when they load, exactly the same array.
MUST_LOAD_PAIRS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_expb.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("MR_small.dcm", "MR_small_padded.dcm"),
    # pydicom-data
    ("JPEG2000_UNC.dcm", "JPEG2000.dcm"),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG lossless P14 SV1
    ("SC_rgb.dcm", "SC_rgb_gdcm_KY.dcm"),  # JPEG 2000
    ("SC_rgb_16bit.dcm", "SC_rgb_rle_16bit.dcm"),
    ("SC_rgb_2frame.dcm", "SC_rgb_rle_2frame.dcm"),
    ("SC_rgb_16bit_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),  # palette colour
    ("693_UNCR.dcm", "693_J2KR.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),  # YBR_RCT
]
# Pairs whose loading the contract does not pin down (multi-frame without functional groups,
# RT dose grids, 32-bit RGB): both members must simply behave identically.
SAME_OUTCOME_PAIRS = [
    ("rtdose_1frame.dcm", "rtdose_rle_1frame.dcm"),
    ("rtdose.dcm", "rtdose_rle.dcm"),
    ("rtdose.dcm", "rtdose_expb.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm"),
]


def _assert_same(ra, rb) -> None:
    assert codes(ra) == codes(rb)
    assert len(ra.scans) == len(rb.scans)
    for a, b in zip(ra.scans, rb.scans, strict=True):
        assert a.kind == b.kind
        assert a.array.dtype == b.array.dtype
        np.testing.assert_array_equal(a.array, b.array)
        if a.spacing_mm is None:
            assert b.spacing_mm is None
        else:
            np.testing.assert_allclose(a.spacing_mm, b.spacing_mm)


@pytest.mark.parametrize(("ref", "other"), MUST_LOAD_PAIRS, ids=[p[1] for p in MUST_LOAD_PAIRS])
def test_lossless_pair_decodes_identically(ref, other):
    ra, rb = _load_one(ref), _load_one(other)
    assert len(ra.scans) == 1, codes(ra)
    assert len(rb.scans) == 1, codes(rb)
    _assert_same(ra, rb)


@pytest.mark.parametrize(
    ("ref", "other"), SAME_OUTCOME_PAIRS, ids=[p[1] for p in SAME_OUTCOME_PAIRS]
)
def test_pair_behaves_identically(ref, other):
    _assert_same(_load_one(ref), _load_one(other))


# Greyscale (MONOCHROME2) files: medmodels's array equals pydicom's modality-LUT output.
# (JPEG-lossy.dcm is left out: no installed plugin, not even pydicom's, decodes it.)
GREY_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",  # RLE
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "MR_small_bigendian.dcm",  # explicit big endian
    "MR_small_implicit.dcm",  # implicit little endian
    "JPEG2000.dcm",  # JPEG 2000
    "JPGExtended.dcm",  # JPEG extended (12-bit)
    "JPEGLSNearLossless_08.dcm",  # JPEG-LS near-lossless, 8 bit
    "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless, 16 bit
    "image_dfl.dcm",  # deflated explicit little endian
    # pydicom-data
    "693_J2KI.dcm",
    "693_J2KR.dcm",
    "MR2_J2KI.dcm",  # float rescale slope
    "JPEG-LL.dcm",  # JPEG lossless P14 SV1
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
]


@pytest.mark.parametrize("name", GREY_FILES)
def test_grey_file_equals_pydicom_modality_lut(name):
    path = _path(name)
    result = load([path])
    assert len(result.scans) == 1, codes(result)
    scan = result.scans[0]
    ds = dcmread(path)
    expected = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)
    expected = expected.reshape(scan.shape)
    np.testing.assert_allclose(scan.array.astype(np.float64), expected, rtol=1e-6, atol=0)


def test_rgb_jpeg_baseline_loads_as_one_image():
    result = _load_one("SC_rgb_jpeg.dcm")
    assert len(result.scans) == 1, codes(result)
    assert result.scans[0].shape == (1, 256, 256)


def test_monochrome1_radiograph_is_inverted(data_store_file):
    path = data_store_file("RG3_J2KR.dcm")
    scan = load([path]).scans[0]
    stored = dcmread(path).pixel_array.astype(np.float64)
    total = scan.array.astype(np.float64)[0] + stored
    assert np.all(total == total.flat[0])
    assert scan.kind == "image"  # a projection radiograph has no 3D geometry


EXPECTED_CODES = {
    "MR_truncated.dcm": {"truncated", "damaged"},
    "rtplan_truncated.dcm": {"truncated", "damaged", "no-pixel-data"},
    "rtplan.dcm": {"no-pixel-data"},
    "reportsi.dcm": {"no-pixel-data"},
    "test-SR.dcm": {"no-pixel-data"},
    "waveform_ecg.dcm": {"no-pixel-data"},
    "no_meta.dcm": {"unknown-format"},
    "ExplVR_LitEndNoMeta.dcm": {"unknown-format"},
    "ExplVR_BigEndNoMeta.dcm": {"unknown-format"},
    "emri_small_jpeg_2k_lossless_too_short.dcm": {"truncated", "damaged"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_unusable_test_file_gets_its_code(name):
    result = _load_one(name)
    assert not result.scans
    assert len(result.problems) == 1
    assert result.problems[0].code in EXPECTED_CODES[name]


def test_every_pydicom_test_file_loads_or_is_reported():
    """No file in pydicom's test suite makes the loader raise; each is a scan or a problem."""
    names = sorted(p.name for p in PYDICOM_TEST_FILES.glob("*.dcm"))
    assert len(names) > 50
    for name in names:
        result = load([PYDICOM_TEST_FILES / name])
        assert result.scans or result.problems, name
