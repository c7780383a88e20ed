"""NIfTI ingestion: spacing from zooms, reorientation to the documented canonical axes, LPS."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from conftest import all_warnings, codes, load, make_nifti

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_affine(zooms=(0.8, 0.9, 2.0), origin=(-20.0, 15.0, -30.0)) -> np.ndarray:
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = origin
    return aff


def noise(shape, seed=0, dtype=np.int16) -> np.ndarray:
    return np.random.default_rng(seed).integers(-500, 500, size=shape).astype(dtype)


def only_scan(result):
    assert not result.problems, result.problems
    assert len(result.scans) == 1
    return result.scans[0]


def _voxel_of_marker(arr: np.ndarray, value) -> tuple[int, int, int]:
    """(x, y, z) of the unique voxel holding ``value`` in a [z, y, x] array."""
    hits = np.argwhere(arr == value)
    assert len(hits) == 1, hits
    z, y, x = (int(v) for v in hits[0])
    return x, y, z


def mark(data: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A copy of ``data`` with unique values at three voxels (two corners and one inside)."""
    marked = data.copy()
    voxels = [(0, 0, 0), tuple(int(s) - 1 for s in data.shape[:3]), (1, 2, 3)]
    for m, ijk in enumerate(voxels):
        marked[ijk] = 30000 + m
    return marked, voxels


def assert_canonical(scan, voxels, affine: np.ndarray) -> None:
    """Axes run x right→left, y anterior→posterior, z inferior→superior, the affine is in LPS,
    and every marked voxel keeps its physical position."""
    aff = scan.affine
    assert aff is not None
    lin = aff[:3, :3]
    assert np.allclose(lin, np.diag(np.diag(lin)), atol=1e-6), "axes are not LPS-aligned"
    assert (np.diag(lin) > 0).all(), "an axis runs the wrong way"
    np.testing.assert_allclose(np.diag(lin), scan.spacing_mm, rtol=1e-5)
    for m, ijk in enumerate(voxels):
        x, y, z = _voxel_of_marker(scan.array, 30000 + m)
        expected = RAS_TO_LPS @ affine @ [*ijk, 1]
        np.testing.assert_allclose(aff @ [x, y, z, 1], expected, atol=1e-4)


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
def test_ras_nifti_is_reoriented_to_lps(gz):
    shape = (5, 7, 9)  # i (R), j (A), k (S)
    data = noise(shape)
    data[1, 2, 3] = 30000
    affine = ras_affine()
    name = "brain.nii.gz" if gz else "brain.nii"
    scan = only_scan(load([(name, make_nifti(data, affine, gz=gz))]))
    assert scan.source_format == "NIfTI"
    assert scan.kind == "volume"
    assert scan.shape == (9, 7, 5)
    assert scan.array.dtype == np.int16
    np.testing.assert_allclose(scan.spacing_mm, (0.8, 0.9, 2.0), rtol=1e-6)
    # i runs left→right in RAS, so x = 4 - i; j runs posterior→anterior, so y = 6 - j
    assert _voxel_of_marker(scan.array, 30000) == (5 - 1 - 1, 7 - 1 - 2, 3)
    assert scan.array[3, 4, 3] == 30000
    assert_canonical(scan, [(1, 2, 3)], affine)
    # the whole array is the flipped, transposed data
    np.testing.assert_array_equal(scan.array, data[::-1, ::-1, :].transpose(2, 1, 0))
    np.testing.assert_allclose(
        scan.affine @ [3, 4, 3, 1], RAS_TO_LPS @ affine @ [1, 2, 3, 1], atol=1e-4
    )


def test_lps_nifti_needs_no_flip():
    # a voxel grid already running R→L, A→P, I→S (as DICOM-converted files often are)
    data, voxels = mark(noise((4, 5, 6), seed=1))
    affine = np.diag([-1.5, -1.2, 3.0, 1.0])
    affine[:3, 3] = (40, 50, -10)
    scan = only_scan(load([("x.nii", make_nifti(data, affine))]))
    np.testing.assert_array_equal(scan.array, data.transpose(2, 1, 0))
    assert_canonical(scan, voxels, affine)


def test_permuted_axes_nifti_is_reoriented():
    # i → superior, j → right, k → anterior (a sagittal-ish storage order)
    data, voxels = mark(noise((6, 4, 5), seed=2))
    affine = np.array(
        [
            [0.0, 1.1, 0.0, -5.0],
            [0.0, 0.0, 0.9, 7.0],
            [2.5, 0.0, 0.0, 11.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    scan = only_scan(load([("perm.nii", make_nifti(data, affine))]))
    assert scan.shape == (6, 5, 4)  # z from i, y from k, x from j
    np.testing.assert_allclose(scan.spacing_mm, (1.1, 0.9, 2.5), rtol=1e-6)
    assert_canonical(scan, voxels, affine)


def test_float_nifti_keeps_fractions():
    data = np.random.default_rng(3).normal(size=(4, 4, 3)).astype(np.float32)
    scan = only_scan(load([("f.nii", make_nifti(data, ras_affine()))]))
    assert scan.array.dtype == np.float32
    np.testing.assert_allclose(
        scan.array, data[::-1, ::-1, :].transpose(2, 1, 0), rtol=1e-6, atol=1e-7
    )


def test_scaled_nifti_applies_slope_and_intercept():
    import nibabel as nib

    data = noise((3, 4, 5), seed=4)
    img = nib.Nifti1Image(data, ras_affine())
    img.header.set_slope_inter(0.5, -3.0)
    scan = only_scan(load([("s.nii", img.to_bytes())]))
    expected = (data * 0.5 - 3.0)[::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_allclose(scan.array, expected, rtol=1e-6)


def test_nifti2_loads():
    data = noise((3, 4, 5), seed=5)
    scan = only_scan(load([("n2.nii", make_nifti(data, ras_affine(), version=2))]))
    assert scan.shape == (5, 4, 3)
    np.testing.assert_array_equal(scan.array, data[::-1, ::-1, :].transpose(2, 1, 0))


def test_4d_nifti_gives_the_first_volume_and_a_warning():
    data = noise((3, 4, 5, 2), seed=6)
    result = load([("fmri.nii.gz", make_nifti(data, ras_affine(), gz=True))])
    scan = only_scan(result)
    assert scan.shape == (5, 4, 3)
    np.testing.assert_array_equal(scan.array, data[..., 0][::-1, ::-1, :].transpose(2, 1, 0))
    assert all_warnings(result)


def test_5d_nifti_is_unsupported():
    data = noise((3, 4, 5, 1, 2), seed=7)
    result = load([("x.nii", make_nifti(data, ras_affine()))])
    assert codes(result) == ["unsupported"]


def test_2d_nifti_is_one_slice():
    data = noise((6, 4), seed=8)
    scan = only_scan(load([("x.nii", make_nifti(data, ras_affine()))]))
    assert scan.shape == (1, 4, 6)
    assert scan.kind == "slice"
    np.testing.assert_array_equal(scan.array[0], data[::-1, ::-1].T)


def _set_srow(nii: bytes, row: int, values) -> bytes:
    """Overwrite srow_x/y/z (byte offsets 280/296/312 of a NIfTI-1 header)."""
    raw = bytearray(nii)
    off = 280 + 16 * row
    raw[off : off + 16] = struct.pack("<4f", *values)
    return bytes(raw)


def test_nifti_with_nan_affine_is_bad_geometry():
    nii = make_nifti(noise((3, 4, 5)), ras_affine())
    # sform NaN, qform code 0 so no reader can fall back to a finite affine
    nii = _set_srow(nii, 0, (float("nan"), 0.0, 0.0, 0.0))
    raw = bytearray(nii)
    raw[252:254] = struct.pack("<h", 0)  # qform_code
    result = load([("nan.nii", bytes(raw))])
    assert codes(result) == ["bad-geometry"]
    assert not result.scans


def test_nifti_with_inf_affine_is_bad_geometry():
    nii = make_nifti(noise((3, 4, 5)), ras_affine())
    nii = _set_srow(nii, 2, (0.0, 0.0, float("inf"), 0.0))
    raw = bytearray(nii)
    raw[252:254] = struct.pack("<h", 0)
    assert codes(load([("inf.nii.gz", gzip.compress(bytes(raw)))])) == ["bad-geometry"]


def test_nifti_with_header_extension_loads():
    data = noise((3, 4, 5), seed=9)
    nii = make_nifti(data, ras_affine(), extension=b"<xml>anything at all</xml>" * 10)
    scan = only_scan(load([("ext.nii", nii)]))
    np.testing.assert_array_equal(scan.array, data[::-1, ::-1, :].transpose(2, 1, 0))


def test_truncated_nifti():
    nii = make_nifti(noise((8, 8, 8)), ras_affine())
    result = load([("cut.nii", nii[:-100])])
    assert codes(result) in (["truncated"], ["damaged"])


def test_truncated_nifti_gz():
    nii = make_nifti(noise((8, 8, 8)), ras_affine(), gz=True)
    result = load([("cut.nii.gz", nii[: len(nii) // 2])])
    assert codes(result) in (["truncated"], ["damaged"])


def test_nifti_with_singular_affine_is_bad_geometry():
    affine = ras_affine()
    nii = _set_srow(make_nifti(noise((3, 4, 5)), affine), 1, (0.0, 0.0, 0.0, affine[1, 3]))
    raw = bytearray(nii)  # the j axis has no direction; no qform to fall back on
    raw[252:254] = struct.pack("<h", 0)
    result = load([("flat.nii", bytes(raw))])
    assert codes(result) == ["bad-geometry"]


def test_nifti_with_two_axes_along_one_direction_is_bad_geometry():
    # found by fuzzing: i and j both point mostly along x, so no axis order exists
    nii = _set_srow(make_nifti(noise((3, 4, 5)), np.eye(4)), 0, (1.0, -1e20, 0.0, 0.0))
    raw = bytearray(nii)
    raw[252:254] = struct.pack("<h", 0)
    result = load([("odd.nii", bytes(raw))])
    assert codes(result) == ["bad-geometry"]
