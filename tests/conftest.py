"""Shared fixtures: tiny synthetic scans made in memory (DICOM, NIfTI, PNG/JPEG, zip, gzip).

Every synthetic DICOM carries unique PHI marker strings (see ``PHI``) so tests can assert that
none of them ever reaches a Scan, a warning, a problem or an error message.
"""

from __future__ import annotations

import gzip
import io
import math
import random
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
MPEG2_MPML = "1.2.840.10008.1.2.4.100"

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
try:  # pydicom-data is a build-only extra: tests that need it skip when it is missing.
    import data_store as _data_store

    PYDICOM_DATA_STORE: Path | None = Path(_data_store.__file__).parent / "data"
except ImportError:  # pragma: no cover - present on the development machine
    PYDICOM_DATA_STORE = None

PROBLEM_CODES = frozenset(
    {
        "empty",
        "unknown-format",
        "truncated",
        "damaged",
        "no-pixel-data",
        "no-decoder",
        "too-large",
        "too-many-files",
        "too-many-entries",
        "bomb",
        "unsafe-path",
        "nested-archive",
        "image-too-large",
        "bad-geometry",
        "duplicate-slices",
        "uneven-spacing",
        "unsupported",
    }
)

# Identifying attributes written into every synthetic DICOM, each with a unique marker value.
PHI: dict[str, str] = {
    "PatientName": "Qwyzzle^Xavierette",
    "PatientID": "PID8675309QX",
    "PatientBirthDate": "19340217",
    "PatientAddress": "17 Wobblewick Lane",
    "InstitutionName": "Grimsby Zanzibar Infirmary",
    "ReferringPhysicianName": "Plumtree^Octavius",
    "StudyDescription": "Zorblax chest protocol",
    "SeriesDescription": "Vexmoor axial series",
    "AccessionNumber": "ACC77Q1984",
    "StudyDate": "19610407",
    "OperatorsName": "Fennimore^Jolyon",
}
PRIVATE_MARKER = "Quixotic private marker"
# Substrings that must never appear in anything a load returns.
PHI_TOKENS: tuple[str, ...] = (
    "Qwyzzle",
    "Xavierette",
    "8675309",
    "19340217",
    "1934-02-17",
    "Wobblewick",
    "Zanzibar",
    "Plumtree",
    "Octavius",
    "Zorblax",
    "Vexmoor",
    "ACC77Q1984",
    "19610407",
    "1961-04-07",
    "Fennimore",
    "Jolyon",
    "Quixotic",
)
# Names that ``Scan.removed`` must list for a PHI-marked file (the private tag is not named).
PHI_ATTRIBUTE_NAMES = tuple(PHI)


def slice_pattern(k: int, rows: int, cols: int) -> np.ndarray:
    """Stored pixel values of the k-th file of a synthetic series (distinct for every k)."""
    return (k * 100 + np.arange(rows * cols, dtype=np.int32).reshape(rows, cols)).astype(np.int32)


def _unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a / np.linalg.norm(a)


def _ds_str(x: float) -> str:
    """A value that fits a DS (at most 16 characters)."""
    s = f"{x:.6g}"
    return "0" if s == "-0" else s


class DicomFiles(list):  # type: ignore[type-arg]
    """The files of a synthetic series (``bytes`` or written ``Path``s), with the truth.

    ``expected``: the [z, y, x] array a loader must return (slices ascending along the normal,
    physical values); ``positions``: ImagePositionPatient of each expected slice; ``normal``,
    ``row_dir``, ``col_dir``: unit vectors; ``uids``: every UID written (must never leak).
    """

    expected: np.ndarray
    positions: np.ndarray
    normal: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    pixel_spacing: tuple[float, float]
    series_uid: str
    study_uid: str
    frame_uid: str
    uids: list[str]


def _phi(ds: Dataset) -> None:
    for name, value in PHI.items():
        setattr(ds, name, value)
    block = ds.private_block(0x0011, "MEDMODELS TEST", create=True)
    block.add_new(0x01, "LO", PRIVATE_MARKER)


def _file_meta(sop_class: str, sop_uid: str, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _set_pixels(ds: Dataset, stored: np.ndarray, transfer_syntax: str, signed: bool) -> None:
    """Put ``stored`` (rows, cols) or (frames, rows, cols) into ds, compressed if asked."""
    dtype = np.int16 if signed else np.uint16
    arr = stored.astype(dtype)
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ts = UID(transfer_syntax)
    if ts in (ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        ds.PixelData = arr.astype("<" + arr.dtype.str[1:]).tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.TransferSyntaxUID = ts
    else:
        ds.compress(ts, arr, generate_instance_uid=False)


def encode(ds: Dataset, *, preamble: bool = True) -> bytes:
    """Serialise a dataset: a valid Part 10 file, or (``preamble=False``) a bare dataset."""
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
    else:
        bare = Dataset()
        bare.update(ds)
        bare.save_as(buf, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return buf.getvalue()


def make_ct_dataset(
    *,
    rows: int = 8,
    cols: int = 8,
    stored: np.ndarray | None = None,
    spacing: tuple[float, float] = (0.7, 0.7),
    position: Sequence[float] = (-10.0, -20.0, 30.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    modality: str = "CT",
    intercept: float | None = -1024,
    slope: float | None = 1,
    monochrome1: bool = False,
    transfer_syntax: str = ExplicitVRLittleEndian,
    phi: bool = True,
    signed: bool = True,
) -> Dataset:
    """One CT (or MR) Image Storage object with file meta, ready for :func:`encode`."""
    sop_class = MR_IMAGE_STORAGE if modality == "MR" else CT_IMAGE_STORAGE
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid, transfer_syntax)
    ds.preamble = b"\x00" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientSex = "O"
    ds.SliceThickness = "2.5"
    if phi:
        _phi(ds)
    ds.ImagePositionPatient = [_ds_str(v) for v in position]
    ds.ImageOrientationPatient = [_ds_str(v) for v in orientation]
    ds.PixelSpacing = [_ds_str(spacing[0]), _ds_str(spacing[1])]
    ds.Rows = rows
    ds.Columns = cols
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    if intercept is not None:
        ds.RescaleIntercept = _ds_str(intercept)
    if slope is not None:
        ds.RescaleSlope = _ds_str(slope)
        ds.RescaleType = "HU" if modality == "CT" else "US"
    if stored is None:
        stored = slice_pattern(0, rows, cols)
    _set_pixels(ds, stored, transfer_syntax, signed)
    return ds


def make_ct_series(
    dest: Path | None = None,
    *,
    n: int = 3,
    rows: int = 8,
    cols: int = 8,
    spacing: tuple[float, float] = (0.7, 0.7),
    slice_step: float = 2.5,
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    series_uid: str | None = None,
    modality: str = "CT",
    shuffle: bool | int = False,
    drop: int | Iterable[int] | None = None,
    duplicate: int | None = None,
    tilt_deg: float = 0.0,
    intercept: float | None = -1024,
    slope: float | None = 1,
    monochrome1: bool = False,
    transfer_syntax: str = ExplicitVRLittleEndian,
    phi: bool = True,
    instance_numbers: Sequence[int] | None = None,
    sizes: dict[int, tuple[int, int]] | None = None,
    name_prefix: str = "slice",
) -> DicomFiles:
    """A synthetic series of ``n`` single-frame slices (file k holds ``slice_pattern(k)``).

    Slices are acquired at ``origin + k * slice_step * normal`` (or along the table z axis when
    ``tilt_deg`` tilts the image plane about x). ``drop`` removes slice indices, ``duplicate=k``
    adds a second, different slice (new SOPInstanceUID) at slice k's position; ``sizes`` gives
    some slices another (rows, cols). ``shuffle`` (True or a seed) shuffles the file order.
    Returns ``bytes`` per file, or writes ``<name_prefix>_NNN.dcm`` files into ``dest`` (named
    in the returned order) and returns their paths.
    """
    row_dir = _unit(orientation[:3])
    col_dir = _unit(orientation[3:])
    if tilt_deg:
        t = math.radians(tilt_deg)
        row_dir = np.array([1.0, 0.0, 0.0])
        col_dir = np.array([0.0, math.cos(t), math.sin(t)])
        step_dir = np.array([0.0, 0.0, 1.0])
    normal = np.cross(row_dir, col_dir)
    if not tilt_deg:
        step_dir = normal
    iop = [*row_dir, *col_dir]
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    frame_uid = generate_uid()
    dropped = {drop} if isinstance(drop, int) else set(drop or ())
    numbers = list(instance_numbers) if instance_numbers is not None else list(range(1, n + 1))

    entries: list[tuple[np.ndarray, Dataset, np.ndarray]] = []  # (position, dataset, physical)
    uids = [series_uid, study_uid, frame_uid]
    specs = [(k, k) for k in range(n) if k not in dropped]
    if duplicate is not None:
        specs.append((duplicate, n + 50))
    for k, content in specs:
        r, c = (sizes or {}).get(k, (rows, cols))
        stored = slice_pattern(content, r, c)
        pos = np.asarray(origin, dtype=float) + k * slice_step * step_dir
        sop_uid = generate_uid()
        uids.append(sop_uid)
        ds = make_ct_dataset(
            rows=r,
            cols=c,
            stored=stored,
            spacing=spacing,
            position=pos,
            orientation=iop,
            series_uid=series_uid,
            study_uid=study_uid,
            frame_uid=frame_uid,
            sop_uid=sop_uid,
            instance_number=numbers[k % len(numbers)],
            modality=modality,
            intercept=intercept,
            slope=slope,
            monochrome1=monochrome1,
            transfer_syntax=transfer_syntax,
            phi=phi,
        )
        physical = stored * (1 if slope is None else slope) + (intercept or 0)
        entries.append((pos, ds, physical))

    order = sorted(range(len(entries)), key=lambda i: float(entries[i][0] @ normal))
    if shuffle is not False:
        file_order = list(range(len(entries)))
        random.Random(None if shuffle is True else int(shuffle)).shuffle(file_order)
    else:
        file_order = list(range(len(entries)))

    out = DicomFiles()
    for j, i in enumerate(file_order):
        data = encode(entries[i][1])
        if dest is None:
            out.append(data)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            path = dest / f"{name_prefix}_{j:03d}.dcm"
            path.write_bytes(data)
            out.append(path)
    if not sizes:
        out.expected = np.stack([entries[i][2] for i in order])
    out.positions = np.stack([entries[i][0] for i in order])
    out.normal = normal
    out.row_dir = row_dir
    out.col_dir = col_dir
    out.pixel_spacing = spacing
    out.series_uid = series_uid
    out.study_uid = study_uid
    out.frame_uid = frame_uid
    out.uids = uids
    return out


def make_enhanced_mr(
    *,
    frames: int = 4,
    rows: int = 8,
    cols: int = 6,
    spacing: tuple[float, float] = (0.5, 0.75),
    slice_step: float = 3.0,
    origin: Sequence[float] = (5.0, -7.0, -12.0),
    phi: bool = True,
) -> tuple[bytes, np.ndarray]:
    """A multi-frame Enhanced MR object (axial frames in ascending z) and its expected array."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(ENHANCED_MR_IMAGE_STORAGE, sop_uid, ExplicitVRLittleEndian)
    ds.preamble = b"\x00" * 128
    ds.SOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "MR"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    if phi:
        _phi(ds)
    ds.Rows = rows
    ds.Columns = cols
    ds.NumberOfFrames = frames
    ds.PhotometricInterpretation = "MONOCHROME2"
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds_str(spacing[0]), _ds_str(spacing[1])]
    measures.SliceThickness = _ds_str(slice_step)
    shared.PixelMeasuresSequence = [measures]
    orient = Dataset()
    orient.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PlaneOrientationSequence = [orient]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for f in range(frames):
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [
            _ds_str(origin[0]),
            _ds_str(origin[1]),
            _ds_str(origin[2] + f * slice_step),
        ]
        item.PlanePositionSequence = [plane]
        content = Dataset()
        content.InStackPositionNumber = f + 1
        content.StackID = "1"
        item.FrameContentSequence = [content]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    stored = np.stack([slice_pattern(f, rows, cols) for f in range(frames)])
    _set_pixels(ds, stored, ExplicitVRLittleEndian, signed=False)
    return encode(ds), stored


def make_nifti(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    gz: bool = False,
    version: int = 1,
    extension: bytes | None = None,
    descrip: str | None = None,
    zooms: Sequence[float] | None = None,
) -> bytes:
    """A single-file NIfTI (.nii, or .nii.gz bytes when ``gz``) built with nibabel."""
    import nibabel as nib

    cls = nib.Nifti2Image if version == 2 else nib.Nifti1Image
    img = cls(data, affine)
    hdr = img.header
    hdr.set_sform(affine, code=1)
    hdr.set_qform(affine, code=1)
    if zooms is not None:
        hdr.set_zooms(zooms)
    if descrip is not None:
        hdr["descrip"] = descrip.encode()
    if extension is not None:
        hdr.extensions.append(nib.nifti1.Nifti1Extension(6, extension))
    raw = img.to_bytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def make_png(arr: np.ndarray, mode: str | None = None, **info: str) -> bytes:
    """PNG bytes of ``arr`` (h, w) or (h, w, 3); ``info`` becomes tEXt chunks."""
    from PIL import Image, PngImagePlugin

    img = Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)
    meta = PngImagePlugin.PngInfo()
    for k, v in info.items():
        meta.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def make_jpeg(arr: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of a greyscale (h, w) or RGB (h, w, 3) uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_zip(
    entries: dict[str, bytes] | Sequence[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """Zip bytes with the given entry names kept verbatim (``../x`` and ``/x`` included)."""
    items = entries.items() if isinstance(entries, dict) else entries
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


def zeros_gzip(n_bytes: int) -> bytes:
    """A gzip stream that inflates to ``n_bytes`` zero bytes (a few KB per 10 MB)."""
    import zlib

    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\x00" * (1 << 20)
    parts = []
    left = n_bytes
    while left > 0:
        parts.append(comp.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(comp.flush())
    return b"".join(parts)


def fake_encapsulated(ds: Dataset, transfer_syntax: str, n_frames: int = 1) -> None:
    """Replace ds's pixels with encapsulated junk fragments under ``transfer_syntax``."""
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x17" * 60 for _ in range(n_frames)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = transfer_syntax


# --- checks shared by many tests ------------------------------------------------------------


def walk_text(obj: Any) -> str:
    """Every piece of text reachable from a LoadResult/Scan/problem/summary, concatenated."""
    parts: list[str] = []

    def visit(o: Any, depth: int = 0) -> None:
        if depth > 20:
            return
        if isinstance(o, np.ndarray):
            return
        if isinstance(o, str | bytes | int | float | bool) or o is None:
            parts.append(repr(o))
            if isinstance(o, str):
                parts.append(o)
            return
        if isinstance(o, dict) or hasattr(o, "items"):
            for k, v in o.items():
                visit(k, depth + 1)
                visit(v, depth + 1)
            return
        if isinstance(o, list | tuple | set | frozenset):
            for v in o:
                visit(v, depth + 1)
            return
        parts.append(repr(o))
        parts.append(str(o))
        for name in ("scans", "problems", "warnings", "summary", "removed", "reason", "name"):
            if hasattr(o, name):
                visit(getattr(o, name), depth + 1)
        for name in ("modality", "kind", "source_format", "fingerprint", "code"):
            if hasattr(o, name):
                visit(getattr(o, name), depth + 1)

    visit(obj)
    return "\n".join(parts)


def assert_no_phi(obj: Any, extra: Iterable[str] = ()) -> None:
    """No PHI marker (nor any of ``extra``, e.g. UIDs) appears in ``obj``'s text."""
    text = walk_text(obj)
    for token in (*PHI_TOKENS, *extra):
        assert token not in text, f"PHI marker {token!r} leaked"


def check_scan(scan: Any) -> None:
    """Invariants every Scan must satisfy (types.py)."""
    arr = scan.array
    assert isinstance(arr, np.ndarray)
    assert arr.ndim == 3, arr.shape
    assert arr.dtype in (np.int16, np.float32), arr.dtype
    if arr.dtype == np.float32 and arr.size and np.isfinite(arr).all():
        integral = np.array_equal(arr, np.round(arr))
        fits = arr.min() >= -32768 and arr.max() <= 32767
        assert not (integral and fits), "float32 although the values are integers that fit int16"
    assert scan.kind in ("volume", "slice", "image")
    if scan.kind == "volume":
        assert arr.shape[0] > 1
    else:
        assert arr.shape[0] == 1
    assert scan.source_format in ("DICOM", "NIfTI", "PNG", "JPEG")
    if scan.spacing_mm is not None:
        assert len(scan.spacing_mm) == 3
        assert all(s > 0 and math.isfinite(s) for s in scan.spacing_mm)
    if scan.affine is not None:
        assert scan.affine.shape == (4, 4)
        assert np.isfinite(scan.affine).all()
        np.testing.assert_allclose(scan.affine[3], [0, 0, 0, 1])
    assert scan.file_count >= 1
    assert isinstance(scan.fingerprint, str)
    assert isinstance(scan.warnings, tuple)
    assert isinstance(scan.removed, tuple)
    assert all(isinstance(r, str) for r in scan.removed)


def check_result(result: Any) -> None:
    """Invariants of a LoadResult: valid scans, problem codes from the contract."""
    for scan in result.scans:
        check_scan(scan)
    for p in result.problems:
        assert p.code in PROBLEM_CODES, p
        assert p.reason
    assert all(isinstance(w, str) for w in result.warnings)


def codes(result: Any) -> list[str]:
    """The problem codes of a LoadResult, in order."""
    return [p.code for p in result.problems]


def all_warnings(result: Any) -> list[str]:
    """Upload-level warnings plus every scan's warnings."""
    out = list(result.warnings)
    for s in result.scans:
        out.extend(s.warnings)
    return out


FIX_WORDS = (
    "upload",
    "export",
    "send",
    "check",
    "include",
    "remove",
    "use ",
    "try",
    "choose",
    "save",
    "convert",
    "raise",
    "split",
    "select",
    "re-",
    "add",
    "ask",
)


def says_what_to_do(text: str) -> bool:
    """Crude check that a message suggests an action (our messages say how to fix things)."""
    low = text.lower()
    return any(w in low for w in FIX_WORDS)


def settings(**overrides: Any) -> Any:
    """Settings with overrides, without touching the environment."""
    from medmodels.config import load_settings

    return load_settings(**overrides)


@pytest.fixture
def ct_series():
    """The factory :func:`make_ct_series`, as a fixture."""
    return make_ct_series


@pytest.fixture
def pydicom_file():
    """Path of one of pydicom's own test files (a runtime dependency)."""

    def get(name: str) -> Path:
        path = PYDICOM_TEST_FILES / name
        assert path.exists(), name
        return path

    return get


@pytest.fixture
def data_store_file():
    """Path of one of pydicom-data's files; skips when pydicom-data is not installed."""

    def get(name: str) -> Path:
        if PYDICOM_DATA_STORE is None:
            pytest.skip("pydicom-data (a build extra) is not installed")
        path = PYDICOM_DATA_STORE / name
        if not path.exists():
            pytest.skip(f"{name} is not in this pydicom-data")
        return path

    return get


def load(inputs: Any, **overrides: Any) -> Any:
    """``load_scans(inputs)`` with settings overrides, checked against the contract invariants."""
    from medmodels.scans import load_scans

    result = load_scans(inputs, settings=settings(**overrides) if overrides else None)
    check_result(result)
    return result


def named(files: Sequence[bytes], prefix: str = "f") -> list[tuple[str, bytes]]:
    """``(name, bytes)`` pairs for a list of file contents."""
    return [(f"{prefix}{i}.dcm", b) for i, b in enumerate(files)]
