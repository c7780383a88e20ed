"""The committed sample data: reproducible, decodable, geometrically consistent, documented."""

from __future__ import annotations

import importlib.util
import re
import zipfile
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, RLELossless

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
PHANTOM_DIR = SAMPLE / "ct-chest-phantom"
N_SLICES = 64


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    """tools/make_sample_data.py, imported from its file (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", ROOT / "tools" / "make_sample_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def series() -> list[pydicom.Dataset]:
    files = sorted(PHANTOM_DIR.glob("*.dcm"))
    return [pydicom.dcmread(f) for f in files]


@pytest.fixture(scope="module")
def dicom_hu(series: list[pydicom.Dataset]) -> np.ndarray:
    """The phantom in HU, [z, y, x], slices sorted by position along the slice normal."""
    ordered = sorted(series, key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack(
        [
            ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
            for ds in ordered
        ]
    )


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    with np.load(SAMPLE / "ct-chest-phantom-truth.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _dicom_affine_lps(series: list[pydicom.Dataset]) -> np.ndarray:
    """Voxel (x, y, z) -> LPS mm from the DICOM headers of an axial series."""
    ordered = sorted(series, key=lambda ds: float(ds.ImagePositionPatient[2]))
    first, second = ordered[0], ordered[1]
    iop = np.array(first.ImageOrientationPatient, dtype=float)
    row_sp, col_sp = (float(v) for v in first.PixelSpacing)
    p0 = np.array(first.ImagePositionPatient, dtype=float)
    step = np.array(second.ImagePositionPatient, dtype=float) - p0
    affine = np.eye(4)
    affine[:3, 0] = iop[:3] * col_sp
    affine[:3, 1] = iop[3:] * row_sp
    affine[:3, 2] = step
    affine[:3, 3] = p0
    return affine


def test_regenerated_phantom_is_byte_identical(tool: ModuleType, tmp_path: Path) -> None:
    written = tool.make_phantom(tmp_path / "ct-chest-phantom")
    committed = sorted(PHANTOM_DIR.glob("*.dcm"))
    assert [p.name for p in written] == [p.name for p in committed]
    for new, old in zip(written, committed, strict=True):
        assert new.read_bytes() == old.read_bytes(), f"{old.name} differs when regenerated"

    zipped = tool.write_phantom_zip(tmp_path / "ct-chest-phantom", tmp_path / "phantom.zip")
    assert zipped.read_bytes() == (SAMPLE / "ct-chest-phantom.zip").read_bytes()


def test_phantom_series_is_rle_ct_matching_the_truth(
    series: list[pydicom.Dataset], dicom_hu: np.ndarray, truth: dict[str, np.ndarray]
) -> None:
    assert len(series) == N_SLICES
    assert [int(ds.InstanceNumber) for ds in series] == list(range(1, N_SLICES + 1))
    for ds in series:
        assert ds.file_meta.TransferSyntaxUID == RLELossless
        assert ds.SOPClassUID == CTImageStorage
        assert ds.Modality == "CT"
        assert (ds.Rows, ds.Columns) == (256, 256)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    z = [float(ds.ImagePositionPatient[2]) for ds in series]
    assert np.allclose(np.diff(z), 5.0), "InstanceNumber order must be ascending z, 5 mm apart"
    assert len({ds.SeriesInstanceUID for ds in series}) == 1
    assert len({ds.SOPInstanceUID for ds in series}) == N_SLICES

    labels = truth["labels"]
    assert labels.dtype == np.uint8 and labels.shape == dicom_hu.shape == (N_SLICES, 256, 256)
    spacing = (*(float(v) for v in series[0].PixelSpacing[::-1]), z[1] - z[0])
    assert np.allclose(truth["spacing_mm"], spacing)
    assert np.allclose(truth["spacing_mm"], (1.5, 1.5, 5.0))

    lung, body = labels == 2, labels >= 1
    assert dicom_hu[lung].mean() < -700
    assert np.all(dicom_hu[~body] <= 300), "only air and the table lie outside the body"
    assert np.all(dicom_hu[~body][dicom_hu[~body] > -1000] >= 100), "table is the only non-air"
    assert dicom_hu[body & ~lung].mean() > -150
    # like a real chest: no lung in the first and last slices
    per_slice = lung.any(axis=(1, 2))
    assert not per_slice[:2].any() and not per_slice[-2:].any() and per_slice[N_SLICES // 2]


def test_phantom_volumes_in_readme_match_the_truth(truth: dict[str, np.ndarray]) -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    voxel_ml = float(np.prod(truth["spacing_mm"])) / 1000.0
    lung_ml = float((truth["labels"] == 2).sum()) * voxel_ml
    body_ml = float((truth["labels"] >= 1).sum()) * voxel_ml
    lung_row = re.search(r"\| Lungs [^|]*\| ([\d.]+) mL \|", readme)
    body_row = re.search(r"\| Body outline [^|]*\| ([\d.]+) mL \|", readme)
    assert lung_row and body_row
    assert float(lung_row.group(1)) == pytest.approx(lung_ml, abs=0.05)
    assert float(body_row.group(1)) == pytest.approx(body_ml, abs=0.05)
    assert 3000 < lung_ml < 7000 and lung_ml < body_ml


def test_phantom_nifti_matches_the_dicom(
    series: list[pydicom.Dataset], dicom_hu: np.ndarray
) -> None:
    img = nib.load(SAMPLE / "ct-chest-phantom.nii.gz")
    data = np.asarray(img.dataobj)
    assert data.dtype == np.int16
    assert data.shape == (256, 256, N_SLICES)
    np.testing.assert_array_equal(data.transpose(2, 1, 0), dicom_hu)

    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    expected = lps_to_ras @ _dicom_affine_lps(series)
    np.testing.assert_allclose(img.affine, expected, atol=1e-4)
    np.testing.assert_allclose(img.header.get_qform(), expected, atol=1e-4)
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")


def test_phantom_zip_holds_the_series() -> None:
    with zipfile.ZipFile(SAMPLE / "ct-chest-phantom.zip") as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert names == [f"ct-chest-phantom/IM-{i:04d}.dcm" for i in range(1, N_SLICES + 1)]
        assert zf.read(names[0]) == (PHANTOM_DIR / "IM-0001.dcm").read_bytes()


def test_real_scans_decode() -> None:
    for path in sorted((SAMPLE / "dicom").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.size > 0, path.name
    for name in ("mni152-t1-2mm.nii.gz", "dipy-t1-coronal-slice.nii.gz"):
        img = nib.load(SAMPLE / name)
        assert np.asarray(img.dataobj).max() > 0, name
        assert np.allclose(np.abs(img.header.get_zooms()), (2.0,) * 3 if "mni" in name else 1.0)


def test_sample_data_is_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 6 * 1024 * 1024, f"sample_data is {total / 1024 / 1024:.1f} MB"


def test_every_file_is_in_the_readme() -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    files = sorted(p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file())
    phantom = [f for f in files if f.startswith("ct-chest-phantom/")]
    # the series is listed as one row: `ct-chest-phantom/IM-0001.dcm` … `IM-0064.dcm`
    assert phantom == [f"ct-chest-phantom/IM-{i:04d}.dcm" for i in range(1, N_SLICES + 1)]
    assert f"`ct-chest-phantom/IM-0001.dcm` … `IM-{N_SLICES:04d}.dcm`" in readme
    missing = [f for f in files if f not in phantom and f != "README.md" and f"`{f}`" not in readme]
    assert not missing, f"not listed in sample_data/README.md: {missing}"
