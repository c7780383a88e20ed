"""Properties (hypothesis) beyond tests/scans/test_scans_properties.py (which shuffles loose
uncompressed files and damages one uncompressed DICOM file):

* for random series geometry, the same volume comes back from loose files in any order, a zip
  (any entry order, in folders), RLE-compressed files, an RLE zip and gzipped files;
* random truncation or byte flips of RLE, deflated and multi-frame DICOM, a zipped series,
  NIfTI, .nii.gz and PNG give a clean problem or a valid scan, never another exception, never
  a hang (hypothesis ``deadline``), never a PHI marker in the result.

Seeds decoded by native C codecs (JPEG, JPEG-LS, JPEG 2000) are left to the fuzz harness
(tests/fuzz), which runs them in a child process where a crash cannot take pytest down.
"""

from __future__ import annotations

import gzip
import math
import random
import zipfile
from datetime import timedelta
from functools import cache

import numpy as np
import pytest
from conftest import (
    PHI,
    PHI_TOKENS,
    assert_no_phi,
    check_result,
    encode,
    make_ct_dataset,
    make_ct_series,
    make_enhanced_mr,
    make_nifti,
    make_png,
    make_zip,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from medmodels.config import load_settings
from medmodels.errors import MedModelsError
from medmodels.scans import load_scans

SETTINGS = load_settings(max_decompressed_mb=64, max_image_mb=64)
QUICK = settings(
    max_examples=25,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DAMAGE = settings(QUICK, max_examples=150)

C30, S30 = math.cos(math.radians(30)), math.sin(math.radians(30))
ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "coronal": (1, 0, 0, 0, 0, -1),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "oblique": (C30, S30, 0, -S30, C30, 0),
}


@st.composite
def series_specs(draw: st.DrawFn) -> dict:
    return {
        "n": draw(st.integers(2, 5)),
        "rows": draw(st.integers(2, 10)),
        "cols": draw(st.integers(2, 10)),
        "spacing": draw(st.sampled_from([(0.5, 0.5), (0.7, 0.9), (1.25, 1.0)])),
        "slice_step": draw(st.sampled_from([0.8, 2.5, 5.0, -3.0])),
        "orientation": ORIENTATIONS[draw(st.sampled_from(sorted(ORIENTATIONS)))],
        "rescale": draw(st.sampled_from([(1, -1024), (2, -1000), (1, 0), (0.5, -10.0)])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _one_scan(result):
    check_result(result)
    assert not result.problems, result.problems
    assert len(result.scans) == 1, [s.describe() for s in result.scans]
    return result.scans[0]


@QUICK
@given(spec=series_specs())
def test_order_container_and_compression_never_change_the_volume(spec: dict) -> None:
    slope, intercept = spec.pop("rescale")
    seed = spec.pop("seed")
    kwargs = dict(spec, slope=slope, intercept=intercept)
    plain = make_ct_series(**kwargs)
    rle = make_ct_series(**kwargs, transfer_syntax=RLELossless)
    np.testing.assert_array_equal(plain.expected, rle.expected)
    order = list(range(len(plain)))
    random.Random(seed).shuffle(order)

    def shuffled(files, prefix: str) -> list[tuple[str, bytes]]:
        return [(f"{prefix}/{j:02d}.dcm", files[i]) for j, i in enumerate(order)]

    uploads = {
        "loose, shuffled": shuffled(plain, "a"),
        "zip, shuffled, in folders": [("s.zip", make_zip(shuffled(plain, "study/series")))],
        "rle": shuffled(rle, "r"),
        "rle zip, stored": [
            ("r.zip", make_zip(shuffled(rle, "x"), compression=zipfile.ZIP_STORED))
        ],
        "gzipped files": [(f"{n}.gz", gzip.compress(d, mtime=0)) for n, d in shuffled(plain, "g")],
    }
    scans = {
        what: _one_scan(load_scans(files, settings=SETTINGS)) for what, files in uploads.items()
    }
    first = scans["loose, shuffled"]
    for what, scan in scans.items():
        np.testing.assert_array_equal(scan.array, plain.expected, err_msg=what)
        assert scan.array.dtype == first.array.dtype, what
        np.testing.assert_allclose(scan.spacing_mm, first.spacing_mm, err_msg=what)
        np.testing.assert_allclose(scan.affine, first.affine, atol=1e-6, err_msg=what)
        assert scan.kind == "volume" and scan.file_count == len(plain)


# --- damage --------------------------------------------------------------------------------------


@cache
def seeds() -> dict[str, bytes]:
    """Small valid inputs of every container the loader handles natively or via Python."""
    series = make_ct_series(n=3, rows=6, cols=5)
    nii = make_nifti(np.arange(120, dtype=np.int16).reshape(6, 5, 4) - 60, np.eye(4))
    emr, _ = make_enhanced_mr(frames=3, rows=6, cols=5)
    return {
        "rle.dcm": encode(make_ct_dataset(rows=12, cols=10, transfer_syntax=RLELossless)),
        "deflated.dcm": encode(
            make_ct_dataset(rows=12, cols=10, transfer_syntax=DeflatedExplicitVRLittleEndian)
        ),
        "enhanced-mr.dcm": emr,
        "series.zip": make_zip([(f"s/{i}.dcm", d) for i, d in enumerate(series)]),
        "volume.nii": nii,
        "volume.nii.gz": gzip.compress(nii, mtime=0),
        "image.png": make_png(
            np.arange(48, dtype=np.uint8).reshape(6, 8), Author=PHI["PatientName"]
        ),
    }


SEED_NAMES = sorted(seeds())


def _assert_clean(name: str, data: bytes) -> None:
    """Loading ``data`` gives valid scans or contract problems; nothing else escapes."""
    try:
        result = load_scans([(name, data)], settings=SETTINGS)
    except MedModelsError:
        return  # a deliberate error is a clean refusal too
    check_result(result)
    assert result.scans or result.problems
    assert_no_phi(result)


@DAMAGE
@given(name=st.sampled_from(SEED_NAMES), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncation_is_a_clean_problem(name: str, cut: float) -> None:
    data = seeds()[name]
    _assert_clean(name, data[: int(len(data) * cut)])


@DAMAGE
@given(
    name=st.sampled_from(SEED_NAMES),
    flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_byte_flips_are_a_clean_problem_or_a_valid_scan(
    name: str, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(seeds()[name])
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    _assert_clean(name, bytes(data))


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_loads_and_carries_markers(name: str) -> None:
    """The damage tests start from inputs that load (and, for DICOM, carry the PHI markers)."""
    result = load_scans([(name, seeds()[name])], settings=SETTINGS)
    assert len(result.scans) == 1 and not result.problems, result.problems
    if name in ("rle.dcm", "enhanced-mr.dcm", "image.png"):  # the others are compressed
        assert any(token.encode() in seeds()[name] for token in PHI_TOKENS)


# --- allow-listed technical text -----------------------------------------------------------------


def test_identifying_values_copied_into_technical_attributes_are_not_echoed() -> None:
    ds = make_ct_dataset()
    ds.Manufacturer = "Qwyzzle Xavierette"  # PatientName's components
    ds.ManufacturerModelName = PHI["PatientID"]
    ds.BodyPartExamined = "ZANZIBAR"  # a word of InstitutionName
    result = load_scans([("a.dcm", encode(ds))], settings=SETTINGS)
    assert len(result.scans) == 1
    summary = " ".join(str(v) for v in result.scans[0].summary.values()).lower()
    for token in ("qwyzzle", "xavierette", "8675309", "zanzibar"):
        assert token not in summary, f"{token!r} echoed in Scan.summary"
