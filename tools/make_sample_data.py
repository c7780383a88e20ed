"""Rebuild ``sample_data/``: a seeded synthetic chest CT phantom and small real scans.

Run ``make sample-data`` (or ``.venv/bin/python tools/make_sample_data.py``). Every output is
byte-for-byte reproducible: the phantom is seeded, UIDs are derived from fixed strings, dates are
fixed, and zip/gzip headers carry no timestamps. Real scans are copied (or converted) from the
installed ``pydicom``, ``pydicom-data``, ``nilearn`` and ``dipy`` packages (the ``build`` extra);
nothing is downloaded.

The phantom functions need only numpy, pydicom and nibabel, so the tests can import this file and
regenerate the series; the real-scan steps import scipy (through nibabel.processing) lazily.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import io
import math
import shutil
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"

# ---------------------------------------------------------------------------------------------
# Phantom geometry
# ---------------------------------------------------------------------------------------------

SEED = 20240102
N_SLICES = 64
N_ROWS = 256
N_COLS = 256
PIXEL_MM = 1.5
SLICE_MM = 5.0
SPACING_MM = (PIXEL_MM, PIXEL_MM, SLICE_MM)  # (x, y, z)
# LPS position of voxel [z=0, y=0, x=0]; the image is centred on the scanner axis.
ORIGIN_MM = (-(N_COLS - 1) / 2 * PIXEL_MM, -(N_ROWS - 1) / 2 * PIXEL_MM, -160.0)
RESCALE_INTERCEPT = -1024
PHANTOM_NAME = "ct-chest-phantom"
LABEL_NAMES = ("outside", "body", "lung")

HU_AIR = -1000
HU_SKIN = 30
HU_FAT = -100
HU_SOFT = 40
HU_LIVER = 60
HU_HEART = 50
HU_AORTA = 45
HU_LUNG = -850
HU_VESSEL = 40
HU_BONE = 700
HU_MARROW = 250
HU_DISC = 90
HU_CANAL = 20
HU_RIB = 550
HU_TABLE = 200
# mild smooth texture: amplitude (HU) and coarse-grid cells across the image
TEXTURE_HU, TEXTURE_CELLS = 4.0, 12
LUNG_TEXTURE_HU, LUNG_TEXTURE_CELLS = 5.0, 12


@dataclass(frozen=True)
class Phantom:
    """The phantom in Hounsfield units and its ground-truth labels, both indexed ``[z, y, x]``."""

    hu: np.ndarray  # int16
    labels: np.ndarray  # uint8: 0 outside, 1 body, 2 lung

    def volume_ml(self, *labels: int) -> float:
        """Volume in mL of the voxels whose label is one of ``labels``."""
        voxel_ml = PIXEL_MM * PIXEL_MM * SLICE_MM / 1000.0
        return float(np.isin(self.labels, labels).sum()) * voxel_ml


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates in mm relative to the image centre (x, y) and the first slice (z),
    broadcastable to ``[z, y, x]``. +x is the patient's left, +y posterior, +z superior."""
    x = ((np.arange(N_COLS) - (N_COLS - 1) / 2) * PIXEL_MM)[None, None, :]
    y = ((np.arange(N_ROWS) - (N_ROWS - 1) / 2) * PIXEL_MM)[None, :, None]
    z = (np.arange(N_SLICES) * SLICE_MM)[:, None, None]
    return x, y, z


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Per-slice smooth noise in [-1, 1]: a coarse random grid, bilinearly upsampled in-plane.

    Smooth (not white) noise keeps the RLE-compressed series small while giving soft tissue a
    mild texture. Only element-wise arithmetic, so the result does not depend on BLAS.
    """
    coarse = rng.random((N_SLICES, cells + 1, cells + 1)) * 2.0 - 1.0

    def weights(n: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.arange(n) * (cells / (n - 1))
        lo = np.minimum(pos.astype(np.int64), cells - 1)
        return lo, pos - lo

    r0, ry = weights(N_ROWS)
    c0, cx = weights(N_COLS)
    rows = coarse[:, r0, :] * (1 - ry)[None, :, None] + coarse[:, r0 + 1, :] * ry[None, :, None]
    return rows[:, :, c0] * (1 - cx)[None, None, :] + rows[:, :, c0 + 1] * cx[None, None, :]


def _body_axes(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes (mm) of the body outline per slice: a little narrower at both ends."""
    t = (z - 160.0) / 160.0
    return 165.0 - 8.0 * t * t, 112.0 - 5.0 * t * t


BODY_CY = -10.0  # body centre, mm (anterior of the scanner axis: the table is below)


def _lung_mask(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, side: int, exclude: np.ndarray
) -> np.ndarray:
    """One lung: an elliptic cylinder that tapers to an apex and sits on a diaphragm dome."""
    cx, cy, ax, ay = side * 82.0, -5.0, 66.0, 80.0
    # the right hemidiaphragm (side -1, over the liver) is higher than the left
    dome_low, dome_rise, apex, full = (
        (35.0, 40.0, 290.0, 170.0) if side < 0 else (30.0, 35.0, 285.0, 165.0)
    )
    rho2 = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    taper = np.where(z <= full, 1.0, np.sqrt(np.clip(1 - ((z - full) / (apex - full)) ** 2, 0, 1)))
    inside = rho2 <= taper**2
    # the dome is lower at the back: the deepest recesses (and first lung voxels) are posterior
    base = dome_low + dome_rise * np.clip(1.0 - rho2, 0.0, 1.0) - 15.0 * (y - cy) / ay
    return inside & (z >= base) & (z <= apex) & ~exclude


def _capsule(
    out: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    radius: float,
    inside: np.ndarray,
    value: float,
) -> None:
    """Raise ``out`` (HU, [z,y,x]) to ``value`` inside a capsule from p0 to p1 (mm, x/y/z),
    with a 1.5 mm soft edge for partial volume, only where ``inside`` is true."""
    lo = np.minimum(p0, p1) - radius - 1.5
    hi = np.maximum(p0, p1) + radius + 1.5
    ox, oy = -(N_COLS - 1) / 2 * PIXEL_MM, -(N_ROWS - 1) / 2 * PIXEL_MM
    i0 = max(math.floor((lo[0] - ox) / PIXEL_MM), 0)
    i1 = min(math.ceil((hi[0] - ox) / PIXEL_MM) + 1, N_COLS)
    j0 = max(math.floor((lo[1] - oy) / PIXEL_MM), 0)
    j1 = min(math.ceil((hi[1] - oy) / PIXEL_MM) + 1, N_ROWS)
    k0 = max(math.floor(lo[2] / SLICE_MM), 0)
    k1 = min(math.ceil(hi[2] / SLICE_MM) + 1, N_SLICES)
    if i0 >= i1 or j0 >= j1 or k0 >= k1:
        return
    xs = (ox + np.arange(i0, i1) * PIXEL_MM)[None, None, :]
    ys = (oy + np.arange(j0, j1) * PIXEL_MM)[None, :, None]
    zs = (np.arange(k0, k1) * SLICE_MM)[:, None, None]
    d = p1 - p0
    length2 = float(d @ d)
    t = ((xs - p0[0]) * d[0] + (ys - p0[1]) * d[1] + (zs - p0[2]) * d[2]) / length2
    t = np.clip(t, 0.0, 1.0)
    dist = np.sqrt(
        (xs - p0[0] - t * d[0]) ** 2 + (ys - p0[1] - t * d[1]) ** 2 + (zs - p0[2] - t * d[2]) ** 2
    )
    frac = np.clip((radius - dist) / 1.5 + 0.5, 0.0, 1.0)
    box = out[k0:k1, j0:j1, i0:i1]
    vessel = box + frac * (value - box)
    np.copyto(box, np.maximum(box, vessel), where=inside[k0:k1, j0:j1, i0:i1])


def _vessel_tree(
    rng: np.random.Generator, hilum: np.ndarray, directions: Iterable[tuple[float, float, float]]
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Segments (start, end, radius) of a branching vessel tree rooted at the hilum (mm)."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    stack = [(hilum, np.asarray(d, dtype=float), 40.0, 4.0, 0) for d in directions]
    while stack:
        start, direction, length, radius, depth = stack.pop()
        direction = direction / math.sqrt(float(direction @ direction))
        end = start + direction * length
        segments.append((start, end, radius))
        if depth == 5:
            continue
        outward = end - hilum
        outward = outward / math.sqrt(float(outward @ outward))
        for _ in range(2):
            jitter = rng.random(3) * 2.0 - 1.0
            child = direction + 0.6 * jitter + 0.4 * outward
            stack.append((end, child, length * 0.78, max(radius * 0.7, 0.8), depth + 1))
    return segments


def phantom_volume() -> Phantom:
    """Build the seeded chest phantom (HU and labels, ``[z, y, x]``), numpy only."""
    rng = np.random.default_rng(SEED)
    x, y, z = _grid()
    shape = (N_SLICES, N_ROWS, N_COLS)
    hu = np.full(shape, float(HU_AIR))
    noise = _smooth_noise(rng, TEXTURE_CELLS)
    lung_noise = _smooth_noise(rng, LUNG_TEXTURE_CELLS)

    # patient table: a curved carbon top and a flat base plate, both separated from the body by air
    table_top = 112.0 - 20.0 * (x / 180.0) ** 2
    top = (y >= table_top) & (y <= table_top + 4.5) & (np.abs(x) <= 180.0)
    base = (y >= 128.0) & (y <= 133.0) & (np.abs(x) <= 170.0)
    hu[np.broadcast_to(top | base, shape)] = HU_TABLE

    # body outline with skin, a subcutaneous fat layer and soft tissue
    a, b = _body_axes(z)
    yb = y - BODY_CY

    def ellipse(inset: float | np.ndarray) -> np.ndarray:
        return (x / (a - inset)) ** 2 + (yb / (b - inset)) ** 2 <= 1.0

    body = ellipse(0.0)
    fat = ellipse(2.0)
    inner = ellipse(14.0)
    hu[body] = HU_SKIN
    hu[fat] = HU_FAT + np.round(0.75 * TEXTURE_HU * noise[fat])
    hu[inner] = HU_SOFT + np.round(TEXTURE_HU * noise[inner])

    # liver under the right hemidiaphragm (patient's right is -x)
    liver = inner & (((x + 40.0) / 105.0) ** 2 + ((y + 5.0) / 80.0) ** 2 <= 1.0)
    liver &= z <= 75.0 - 40.0 * np.clip(((x + 75.0) / 55.0) ** 2 + ((y + 5.0) / 75.0) ** 2, 0, 1)
    hu[liver] = HU_LIVER + np.round(0.75 * TEXTURE_HU * noise[liver])

    # heart and descending aorta in the mediastinum
    heart = ((x - 10.0) / 45.0) ** 2 + ((y + 35.0) / 40.0) ** 2 + ((z - 120.0) / 55.0) ** 2 <= 1.0
    heart = np.broadcast_to(heart, shape)
    aorta = ((x - 30.0) ** 2 + (y - 26.0) ** 2 <= 13.0**2) & (z >= 50.0) & (z <= 270.0)
    aorta = np.broadcast_to(aorta, shape)
    hu[heart] = HU_HEART + np.round(0.75 * TEXTURE_HU * noise[heart])
    hu[aorta] = HU_AORTA

    # spine: vertebral body (cortex, softer marrow, discs), canal and posterior arch
    vb = ((x / 20.0) ** 2 + ((y - 55.0) / 17.0) ** 2 <= 1.0) & (z >= -10.0)
    marrow = (x / 16.0) ** 2 + ((y - 55.0) / 13.0) ** 2 <= 1.0
    disc = (z % 30.0) < 5.0
    arch = ((x**2 + (y - 82.0) ** 2) <= 13.0**2) | ((np.abs(x) <= 3.5) & (y >= 82.0) & (y <= 96.0))
    canal = (x**2 + (y - 82.0) ** 2) <= 8.0**2
    spine = np.broadcast_to(vb | arch, shape)

    # lungs: exclude the mediastinum (heart with a pericardial margin, aorta, spine) and keep
    # a chest wall inside the body outline: 20 mm in the upper chest, a thin 13 mm in the lower
    # chest (z < 120 mm), as in a slim patient — thin enough that a 7×7 (10.5 mm) morphological
    # opening breaks it where it runs diagonally, thick enough for a 5×5 (7.5 mm) one
    wall = np.where(z < 120.0, 13.0, 20.0)
    margin = (
        (((x - 10.0) / 50.0) ** 2 + ((y + 35.0) / 45.0) ** 2 + ((z - 120.0) / 60.0) ** 2 <= 1.0)
        | ((x - 30.0) ** 2 + (y - 26.0) ** 2 <= 17.0**2)
        | ((x / 26.0) ** 2 + ((y - 62.0) / 28.0) ** 2 <= 1.0)
        | ~ellipse(wall)
    )
    lungs = np.zeros(shape, dtype=bool)
    hilums = {}
    for side in (-1, 1):
        lung = _lung_mask(x, y, z, side, margin)
        lungs |= lung
        hilums[side] = np.array([side * 40.0, 0.0, 160.0])
    hu[lungs] = HU_LUNG + np.round(LUNG_TEXTURE_HU * lung_noise[lungs])

    # vessels: branching trees from each hilum, drawn only inside the lungs
    for side in (-1, 1):
        directions = [
            (side * 0.5, -0.3, 1.0),
            (side * 0.6, 0.5, 1.0),
            (side * 1.0, -0.8, 0.3),
            (side * 1.0, 0.0, 0.0),
            (side * 1.0, 0.8, -0.2),
            (side * 0.6, -0.6, -0.8),
            (side * 0.4, 0.3, -1.0),
            (side * 0.3, 1.0, -0.5),
        ]
        for p0, p1, radius in _vessel_tree(rng, hilums[side], directions):
            _capsule(hu, p0, p1, radius, lungs, HU_VESSEL)

    # ribs: small bony ovals in the chest wall from front to back on both sides, their angle
    # drifting with height (ribs slope); a sternum in front
    for k in range(N_SLICES):
        zk = k * SLICE_MM
        if not 40.0 <= zk <= 290.0:
            continue
        ak, bk = (float(s) - 16.0 for s in _body_axes(np.float64(zk)))
        for j in range(7):
            phi = math.radians(-72.0 + j * 24.0 + (k % 6) * 4.0)
            for side in (-1, 1):
                rx, ry = side * ak * math.cos(phi), BODY_CY + bk * math.sin(phi)
                rib = (((x[0] - rx) / 5.0) ** 2 + ((y[0] - ry) / 3.5) ** 2 <= 1.0) & ~lungs[k]
                hu[k][rib] = HU_RIB
        if 120.0 <= zk <= 250.0:
            sternum = ((x[0] / 12.0) ** 2 + ((y[0] - BODY_CY + bk) / 5.0) ** 2 <= 1.0) & ~lungs[k]
            hu[k][sternum] = HU_RIB

    hu[spine] = HU_BONE
    hu[np.broadcast_to(vb & marrow, shape)] = HU_MARROW
    hu[np.broadcast_to(vb & disc, shape)] = HU_DISC
    hu[np.broadcast_to(canal, shape)] = HU_CANAL

    labels = np.zeros(shape, dtype=np.uint8)
    labels[body] = 1
    labels[lungs] = 2
    # the table must be separated from the body by at least 3 voxels of air in every column
    table = np.broadcast_to(top | base, shape)
    rows = np.arange(N_ROWS)[None, :, None]
    body_bottom = np.where(body, rows, -1).max(axis=1)
    table_top_row = np.where(table, rows, N_ROWS).min(axis=1)
    if np.any(table_top_row - body_bottom <= 3):
        raise AssertionError("the table touches the body")
    return Phantom(hu=np.round(hu).astype(np.int16), labels=labels)


# ---------------------------------------------------------------------------------------------
# Phantom DICOM series, zip, NIfTI and ground truth
# ---------------------------------------------------------------------------------------------

UID_SEED = "medmodels-sample-data-ct-chest-phantom-v1"


def _uid(*parts: str) -> str:
    return generate_uid(entropy_srcs=[UID_SEED, *parts])


def _slice_dataset(index: int, stored: np.ndarray) -> Dataset:
    """The CT Image Storage dataset of slice ``index`` (0-based), RLE Lossless compressed."""
    sop_uid = _uid("instance", str(index + 1))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _uid("implementation")
    meta.ImplementationVersionName = "MEDMODELS_PH1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = "20240102"
    ds.InstanceCreationTime = "101500"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240102"
    ds.StudyTime = "101500"
    ds.SeriesTime = ds.AcquisitionTime = "101530"
    ds.ContentTime = f"1016{index % 60:02d}"
    ds.AccessionNumber = "ACC-PHANTOM-0001"
    ds.Modality = "CT"
    ds.Manufacturer = "MedModels"
    ds.InstitutionName = "MedModels Phantom Hospital"
    ds.InstitutionAddress = "1 Invented Street, Nowhere"
    ds.ReferringPhysicianName = "INVENTED^REFERRER"
    ds.StationName = "PHANTOM-CT-1"
    ds.StudyDescription = "CT CHEST PHANTOM (SYNTHETIC)"
    ds.SeriesDescription = "AXIAL 5 MM SYNTHETIC PHANTOM"
    ds.OperatorsName = "INVENTED^OPERATOR"
    ds.ManufacturerModelName = "Phantom 1"
    ds.PatientName = "PHANTOM^CHEST"
    ds.PatientID = "PHANTOM-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientAge = "054Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "5"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid("study")
    ds.SeriesInstanceUID = _uid("series")
    ds.StudyID = "PH0001"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    x0, y0, z0 = ORIGIN_MM
    z_mm = z0 + index * SLICE_MM
    ds.ImagePositionPatient = [f"{x0:g}", f"{y0:g}", f"{z_mm:g}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = _uid("frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z_mm:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = N_ROWS
    ds.Columns = N_COLS
    ds.PixelSpacing = [f"{PIXEL_MM:g}", f"{PIXEL_MM:g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    block = ds.private_block(0x0011, "MEDMODELS PHANTOM", create=True)
    block.add_new(0x01, "LO", "INVENTED-PRIVATE-ID-0001")
    block.add_new(0x02, "LO", "Invented note: fictitious patient for de-identification tests")
    ds.compress(RLELossless, stored, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    return ds


def make_phantom(out_dir: Path, phantom: Phantom | None = None) -> list[Path]:
    """Write the phantom series as ``IM-0001.dcm`` … ``IM-0064.dcm`` into ``out_dir``."""
    phantom = phantom or phantom_volume()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("IM-*.dcm"):
        old.unlink()
    stored = (phantom.hu.astype(np.int32) - RESCALE_INTERCEPT).astype(np.uint16)
    paths = []
    for k in range(N_SLICES):
        path = out_dir / f"IM-{k + 1:04d}.dcm"
        _slice_dataset(k, stored[k]).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


ZIP_DATE = (2024, 1, 2, 10, 15, 0)


def _zip_entry(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = compress_type
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def write_phantom_zip(series_dir: Path, zip_path: Path) -> Path:
    """Zip the series folder (entries ``<folder name>/IM-….dcm``, sorted, fixed timestamps)."""
    series_dir, zip_path = Path(series_dir), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(series_dir.glob("*.dcm")):
            info = _zip_entry(f"{series_dir.name}/{path.name}", zipfile.ZIP_STORED)
            zf.writestr(info, path.read_bytes())
    return zip_path


def phantom_affine_ras() -> np.ndarray:
    """NIfTI (RAS) affine of the phantom for data indexed ``[x, y, z]``: the DICOM LPS geometry
    with the first two rows negated."""
    lps = np.diag([PIXEL_MM, PIXEL_MM, SLICE_MM, 1.0])
    lps[:3, 3] = ORIGIN_MM
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _write_nifti_gz(img: nib.Nifti1Image, path: Path) -> Path:
    """Save ``img`` as .nii.gz with a gzip header free of timestamps and file names."""
    Path(path).write_bytes(gzip.compress(img.to_bytes(), compresslevel=9, mtime=0))
    return Path(path)


def write_phantom_nifti(phantom: Phantom, path: Path) -> Path:
    """Write the phantom in HU (int16) as NIfTI, voxel order ``[x, y, z]``, RAS affine."""
    data = np.ascontiguousarray(phantom.hu.transpose(2, 1, 0))
    affine = phantom_affine_ras()
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header["descrip"] = b"MedModels synthetic CT chest phantom, HU"
    return _write_nifti_gz(img, path)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            zf.writestr(_zip_entry(f"{name}.npy", zipfile.ZIP_DEFLATED), buf.getvalue())
    return Path(path)


def write_truth(phantom: Phantom, path: Path) -> Path:
    """Ground truth: ``labels`` uint8 ``[z, y, x]`` (0 outside, 1 body, 2 lung), spacing and
    origin in mm ``(x, y, z)`` (LPS), and the label names."""
    return _write_npz(
        path,
        {
            "labels": phantom.labels,
            "spacing_mm": np.array(SPACING_MM, dtype=np.float64),
            "origin_mm": np.array(ORIGIN_MM, dtype=np.float64),
            "label_names": np.array(LABEL_NAMES),
        },
    )


# ---------------------------------------------------------------------------------------------
# Real scans from installed packages
# ---------------------------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"Package {package!r} is not installed; install the build extra: "
            "pip install -e '.[test,build]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _need(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"Sample file not found: {path} (is the build extra installed?)")
    return path


# (file name, package folder, path inside the package, distribution)
REAL_DICOM = [
    ("explicit_VR-UN.dcm", "data_store", "data", "pydicom-data"),
    ("693_J2KR.dcm", "data_store", "data", "pydicom-data"),
    ("RG1_J2KI.dcm", "data_store", "data", "pydicom-data"),
    ("MR2_J2KI.dcm", "data_store", "data", "pydicom-data"),
    ("emri_small.dcm", "data_store", "data", "pydicom-data"),
    ("CT_small.dcm", "pydicom", "data/test_files", "pydicom"),
    ("MR_small.dcm", "pydicom", "data/test_files", "pydicom"),
]


def _find_real_dicom(name: str, package: str, sub: str) -> Path:
    path = _package_dir(package) / sub / name
    if not path.is_file() and package == "data_store":
        # older layouts ship some of these inside pydicom itself
        alt = _package_dir("pydicom") / "data" / "test_files" / name
        if alt.is_file():
            return alt
    return _need(path)


def copy_real_dicoms(out_dir: Path) -> list[Path]:
    """Copy the real DICOM test files, byte for byte, into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, package, sub, _dist in REAL_DICOM:
        dst = out_dir / name
        shutil.copyfile(_find_real_dicom(name, package, sub), dst)
        out.append(dst)
    return out


MNI_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def make_mni152(path: Path) -> tuple[Path, tuple[int, ...]]:
    """The nilearn MNI152 2009 T1 template resampled to 2 mm (trilinear), uint8."""
    from nibabel.processing import resample_to_output

    src = _need(_package_dir("nilearn") / "datasets" / "data" / MNI_FILE)
    img = nib.load(src)
    res = resample_to_output(img, voxel_sizes=(2.0, 2.0, 2.0), order=1)
    data = np.clip(np.round(np.asarray(res.dataobj, dtype=np.float64)), 0, 255).astype(np.uint8)
    out = nib.Nifti1Image(data, res.affine)
    out.header.set_data_dtype(np.uint8)
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_qform(res.affine, code=4)  # MNI152 space
    out.header.set_sform(res.affine, code=4)
    out.header["descrip"] = b"ICBM152 2009a sym T1, 2 mm (nilearn)"
    return _write_nifti_gz(out, path), data.shape


# Assumed geometry of dipy's t1_coronal_slice.npy (the array carries none): 1 mm pixels, rows run
# superior -> inferior, columns run from the patient's right to the patient's left.
DIPY_AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 127.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -127.5], [0.0, 0.0, 0.0, 1.0]]
)


def make_dipy_slice(path: Path) -> tuple[Path, tuple[int, ...]]:
    """dipy's coronal T1 slice as a NIfTI of shape (256, 1, 256): [x, y, z] with z superior."""
    src = _need(_package_dir("dipy") / "data" / "files" / "t1_coronal_slice.npy")
    arr = np.load(src)
    img8 = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)  # values are k/255
    # data[i, 0, k] = row (255 - k), column i: k runs inferior -> superior
    data = np.ascontiguousarray(img8[::-1, :].T[:, None, :])
    out = nib.Nifti1Image(data, DIPY_AFFINE)
    out.header.set_data_dtype(np.uint8)
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_qform(DIPY_AFFINE, code=2)  # aligned to an assumed anatomy, not scanner
    out.header.set_sform(DIPY_AFFINE, code=2)
    out.header["descrip"] = b"dipy t1_coronal_slice; geometry assumed"
    return _write_nifti_gz(out, path), data.shape


# ---------------------------------------------------------------------------------------------
# README and main
# ---------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _kb(path: Path) -> str:
    return f"{path.stat().st_size / 1024:.0f} KB"


def _dicom_row(path: Path) -> str:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    size = f"{ds.Columns}×{ds.Rows}" + (f"×{frames} frames" if frames > 1 else "")
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is None and "SharedFunctionalGroupsSequence" in ds:
        try:
            spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError):
            spacing = None
    if spacing and all(float(s) > 0 for s in spacing):
        sp = f"pixels {float(spacing[1]):.3g}×{float(spacing[0]):.3g} mm"
    else:
        sp = "no pixel spacing given"
    return f"{ds.Modality}, {size}, {sp}, {ds.file_meta.TransferSyntaxUID.name}"


ICBM_NOTICE = """\
Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University. Permission to use, copy, modify, and distribute this software and
its documentation for any purpose and without fee is hereby granted, provided that the above
copyright notice appear in all copies. The authors and McGill University make no representations
about the suitability of this software for any purpose. It is provided "as is" without express or
implied warranty. The authors are not responsible for any data loss, equipment damage, property
loss, or injury to subjects or patients resulting from the use or misuse of this software
package."""

DICOM_NOTES = {
    "explicit_VR-UN.dcm": "CT abdomen (pancreas study, one axial slice). From The Cancer Imaging "
    "Archive (de-identified), re-encoded with gdcmconv so most tags have VR UN (pydicom issue "
    "#968). Its ImageOrientationPatient is 1\\0\\0\\0\\-1\\0: the column direction points "
    "anterior, so the image is upside down compared with the usual axial view (table at the top).",
    "693_J2KR.dcm": "CT head, one axial slice, JPEG 2000 lossless (pydicom issue #693 regression "
    "file).",
    "RG1_J2KI.dcm": "Chest radiograph (CR, MONOCHROME1, 15 bits stored), JPEG 2000 lossy; the "
    "largest file here. From the NEMA WG04 compression test set.",
    "MR2_J2KI.dcm": "MR shoulder, one oblique slice, JPEG 2000 lossy. From the NEMA WG04 set.",
    "emri_small.dcm": "Enhanced MR Image Storage (multi-frame), BodyPartExamined HEAD, 10 "
    "frames, uncompressed. It has no functional-group sequences, hence no pixel spacing or "
    "slice geometry.",
    "CT_small.dcm": "CT, one axial slice through a thoracic vertebra, downsized to 128×128 from "
    "NEMA WG04 'CT1_UNC'.",
    "MR_small.dcm": "MR, one slice, downsized to 64×64 from NEMA WG04 'MR1_UNC'.",
}


def write_readme(path: Path, facts: dict) -> Path:
    """Write ``sample_data/README.md`` from the facts gathered while building."""
    sd = path.parent
    v = {d: _version(d) for d in ("pydicom", "pydicom-data", "nilearn", "dipy", "numpy")}
    rows = []
    phantom_dir = sd / PHANTOM_NAME
    folder_kb = sum(p.stat().st_size for p in phantom_dir.glob("*.dcm")) / 1024
    rows.append(
        f"| `{PHANTOM_NAME}/IM-0001.dcm` … `IM-{N_SLICES:04d}.dcm` ({N_SLICES} files, "
        f"{folder_kb:.0f} KB) | Synthetic chest CT phantom: CT volume, {N_SLICES} axial slices of "
        f"{N_COLS}×{N_ROWS}, 1.5×1.5 mm pixels, 5 mm slices, RLE Lossless, stored uint16 with "
        "RescaleIntercept −1024 | generated by `tools/make_sample_data.py` (seed "
        f"{SEED}) | Apache-2.0 (this project) |"
    )
    rows.append(
        f"| `{PHANTOM_NAME}.zip` ({_kb(sd / f'{PHANTOM_NAME}.zip')}) | The same {N_SLICES} DICOM "
        f"files in one zip (entries `{PHANTOM_NAME}/IM-….dcm`, stored) | generated | Apache-2.0 |"
    )
    rows.append(
        f"| `{PHANTOM_NAME}.nii.gz` ({_kb(sd / f'{PHANTOM_NAME}.nii.gz')}) | The same phantom as "
        f"NIfTI-1, int16 HU, shape {N_COLS}×{N_ROWS}×{N_SLICES} (x, y, z), RAS affine equal to "
        "the DICOM geometry (LPS with the first two rows negated) | generated | Apache-2.0 |"
    )
    rows.append(
        f"| `{PHANTOM_NAME}-truth.npz` ({_kb(sd / f'{PHANTOM_NAME}-truth.npz')}) | Ground truth: "
        "`labels` uint8 `[z, y, x]` (z = InstanceNumber order = ascending position; 0 outside "
        "incl. table, 1 body, 2 lung incl. its vessels), `spacing_mm` (1.5, 1.5, 5.0) as "
        "(x, y, z), `origin_mm` (LPS of voxel [0,0,0]), `label_names` | generated | Apache-2.0 |"
    )
    for name, package, sub, dist in REAL_DICOM:
        src = _find_real_dicom(name, package, sub)
        rel = src.relative_to(_package_dir(package).parent)
        lic = (
            "MIT (pydicom-data package); the image's own origin is listed in pydicom's "
            "test_files/README.txt"
            if dist == "pydicom-data"
            else "MIT (pydicom package); origin per pydicom's test_files/README.txt"
        )
        rows.append(
            f"| `dicom/{name}` ({_kb(sd / 'dicom' / name)}) | {_dicom_row(sd / 'dicom' / name)}. "
            f"{DICOM_NOTES[name]} | {dist} {v[dist]}: `{rel.as_posix()}` (copied unchanged) "
            f"| {lic} |"
        )
    mshape = "×".join(str(s) for s in facts["mni_shape"])
    rows.append(
        f"| `mni152-t1-2mm.nii.gz` ({_kb(sd / 'mni152-t1-2mm.nii.gz')}) | MR T1 brain template "
        "(ICBM152 2009a nonlinear symmetric per its file name; an average of 152 adults), "
        "NIfTI uint8 (0–255), "
        f"{mshape} at 2 mm isotropic, MNI space; resampled from 1 mm with trilinear "
        "interpolation (`nibabel.processing.resample_to_output`, order=1) | nilearn "
        f"{v['nilearn']}: `nilearn/datasets/data/{MNI_FILE}` | ICBM notice below (nilearn itself "
        "is BSD-3-Clause; its description file `icbm152_2009.rst` states the template licence "
        "as “unknown”) |"
    )
    dshape = "×".join(str(s) for s in facts["dipy_shape"])
    rows.append(
        f"| `dipy-t1-coronal-slice.nii.gz` ({_kb(sd / 'dipy-t1-coronal-slice.nii.gz')}) | MR T1, "
        f"one coronal brain slice (a different subject from the template), NIfTI uint8, shape "
        f"{dshape} (x, y, z). **Geometry assumed**: the array has none; we assume 1 mm pixels, "
        "rows superior→inferior, columns from the patient's right to left, centred on the "
        "origin | dipy "
        f"{v['dipy']}: `dipy/data/files/t1_coronal_slice.npy` (float 0–1 = k/255, stored ×255) "
        "| BSD-3-Clause (dipy package licence; no separate licence for the file) |"
    )
    total_kb = facts["total_bytes"] / 1024
    lung_range = (
        f"lung appears in slices {facts['lung_first'] + 1}–{facts['lung_last'] + 1} of "
        f"{N_SLICES} (InstanceNumber), widest from about slice {facts['lung_wide'] + 1}"
    )
    body = f"{facts['body_ml']:.1f} mL"
    text = f"""# Sample data

Small scans for trying MedModels, for tests and for demos. **Research use only.** Everything
here is rebuilt, byte for byte, by

    make sample-data        # runs: .venv/bin/python tools/make_sample_data.py

which generates the phantom (seeded, numpy {v["numpy"]}) and copies or converts the real scans
from installed packages (the `build` extra of `pyproject.toml`); nothing is downloaded.
Total size: {total_kb:.0f} KB.

| File | What it is | Source | Licence |
|---|---|---|---|
{chr(10).join(rows)}

## The CT chest phantom

A synthetic chest CT made of simple shapes in Hounsfield units: air −1000 around a body ellipse
(skin 30, a fat layer −100 about 12 mm deep, soft tissue 40 with mild seeded texture), two lungs
(−850, mild texture) that sit on diaphragm domes (lowest at the back) and taper to apices:
{lung_range}; branching vessels inside the lungs
(40 HU, radius 4 mm down to 0.8 mm, soft-edged for partial volume), a heart, the descending
aorta, a liver under the right hemidiaphragm, a spine (bone 700 with a softer 250 HU centre,
discs every 30 mm, canal and posterior arch), ribs in a chest wall 20 mm thick in the upper chest
and a thin 13 mm in the lower chest (below z = 120 mm, as in a slim patient: a 10.5 mm
morphological opening breaks it where it runs diagonally), and a
patient table (a curved top and a flat base plate, 200 HU) separated from the body by air.
Orientation: axial, ImageOrientationPatient 1\\0\\0\\0\\1\\0,
ImagePositionPatient stepping +5 mm in z (InstanceNumber 1 is the most inferior slice).

Ground truth (`{PHANTOM_NAME}-truth.npz`, computed by the script on the exact voxel grid):

| Region | Volume |
|---|---|
| Lungs (label 2, including vessels inside them) | {facts["lung_ml"]:.1f} mL |
| Body outline (labels 1 and 2: all inside the skin, lungs included, not the table) | {body} |
| Body without the lungs (label 1) | {facts["body_only_ml"]:.1f} mL |

**Fictitious patient.** The patient and study attributes of the phantom (PatientName
`PHANTOM^CHEST`, PatientID `PHANTOM-0001`, birth date, sex, age, institution "MedModels Phantom
Hospital" and address, referring physician, operator, station, dates and times, accession
number, study ID, descriptions, and a private block `MEDMODELS PHANTOM` in group 0011) are
invented. They are present only so that de-identification can be tested. UIDs are derived
deterministically from fixed strings (`pydicom.uid.generate_uid(entropy_srcs=…)`).

## Licences

- **pydicom** ({v["pydicom"]}) and **pydicom-data** ({v["pydicom-data"]}) are MIT-licensed
  (“Copyright (c) 2020 Dicom in Python”). The test images come from various origins, listed in
  pydicom's `pydicom/data/test_files/README.txt` (NEMA WG04 compression test sets, The Cancer
  Imaging Archive, GDCM, pydicom issues); its author notes the files were downsized or edited to
  remove anything looking like a patient name and believes “there is no restriction on using
  any of these files in this manner”.
- **nilearn** ({v["nilearn"]}) is BSD-3-Clause. The MNI ICBM152 2009 template it ships is
  distributed by the McConnell Brain Imaging Centre under the following notice (from the
  `COPYING` file of the original template archive; nilearn's own description file says
  “License: unknown”), which must appear in all copies:

  > {ICBM_NOTICE.replace(chr(10), chr(10) + "  > ")}

  References (as cited by nilearn): Collins et al. 1999; Fonov et al. 2009 and 2011.
- **dipy** ({v["dipy"]}) is BSD-3-Clause (“Copyright (c) 2008-2026, dipy developers”).
- The phantom and its derived files are generated by this project and share its licence
  (Apache-2.0).
"""
    path.write_text(text, encoding="utf-8")
    return path


def _owned_paths(sd: Path) -> list[Path]:
    return [
        sd / PHANTOM_NAME,
        sd / f"{PHANTOM_NAME}.zip",
        sd / f"{PHANTOM_NAME}.nii.gz",
        sd / f"{PHANTOM_NAME}-truth.npz",
        sd / "mni152-t1-2mm.nii.gz",
        sd / "dipy-t1-coronal-slice.nii.gz",
        sd / "README.md",
        *(sd / "dicom" / name for name, *_ in REAL_DICOM),
    ]


def main(out: Path = SAMPLE_DATA) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for p in _owned_paths(out):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    phantom = phantom_volume()
    series = make_phantom(out / PHANTOM_NAME, phantom)
    write_phantom_zip(out / PHANTOM_NAME, out / f"{PHANTOM_NAME}.zip")
    write_phantom_nifti(phantom, out / f"{PHANTOM_NAME}.nii.gz")
    write_truth(phantom, out / f"{PHANTOM_NAME}-truth.npz")
    copy_real_dicoms(out / "dicom")
    _, mni_shape = make_mni152(out / "mni152-t1-2mm.nii.gz")
    _, dipy_shape = make_dipy_slice(out / "dipy-t1-coronal-slice.nii.gz")

    lung_slices = np.flatnonzero((phantom.labels == 2).any(axis=(1, 2)))
    lung_area = (phantom.labels == 2).sum(axis=(1, 2))
    lung_ml = phantom.volume_ml(2)
    body_ml = phantom.volume_ml(1, 2)
    body_only_ml = phantom.volume_ml(1)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "README.md"]
    total = sum(p.stat().st_size for p in files)
    facts = {
        "lung_ml": lung_ml,
        "lung_first": int(lung_slices[0]),
        "lung_last": int(lung_slices[-1]),
        "lung_wide": int(np.flatnonzero(lung_area >= 0.9 * lung_area.max())[0]),
        "body_ml": body_ml,
        "body_only_ml": body_only_ml,
        "mni_shape": mni_shape,
        "dipy_shape": dipy_shape,
        "total_bytes": total,
    }
    readme = write_readme(out / "README.md", facts)
    total += readme.stat().st_size

    series_kb = sum(p.stat().st_size for p in series) / 1024
    print(f"phantom: {len(series)} slices, {series_kb:.0f} KB")
    print(f"true lung volume: {lung_ml:.1f} mL")
    print(f"true body volume (inside the body outline, lungs included): {body_ml:.1f} mL")
    print(f"body without lungs (label 1): {body_only_ml:.1f} mL")
    for p in sorted(files):
        if p.parent.name != PHANTOM_NAME:
            print(f"  {p.relative_to(out).as_posix():40s} {p.stat().st_size / 1024:8.1f} KB")
    print(f"sample_data total: {total / 1024 / 1024:.2f} MB")
    if total > 5.5 * 1024 * 1024:
        print("WARNING: sample_data is larger than ~5 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
