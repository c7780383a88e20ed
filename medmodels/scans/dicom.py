"""DICOM: parse untrusted files, group them by series, check geometry, decode into volumes.

Two passes keep memory near one copy of the volume: :func:`parse` reads each file's dataset
(headers and still-encoded pixel bytes) and checks what it declares; :func:`assemble` groups,
sorts and validates, then decodes slice by slice into one preallocated array, releasing each
file's encoded pixel bytes as soon as they are decoded.

Slices are ordered by their position along the slice normal (ImagePositionPatient ·
(row direction × column direction)); never by file name or InstanceNumber. Slice spacing comes
from those positions, never from SliceThickness.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import struct
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from medmodels.errors import FileProblem, UnreadableScanError
from medmodels.scans.deid import (
    identifying_present,
    removed_report,
    safe_number,
    technical_summary,
)
from medmodels.scans.limits import Budget, human_bytes, inflate
from medmodels.scans.types import Scan

# pydicom logs (and warns) about malformed values by quoting them; a value may be a patient's
# name. MedModels never lets those messages reach a log: warnings are silenced while a file is
# read, and this filter drops pydicom's log records below ERROR.
logging.getLogger("pydicom").addFilter(lambda record: record.levelno >= logging.ERROR)

# Modalities whose single images are projections (no slice geometry worth a 3D affine).
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "XA", "RF", "IO", "PX", "OT", "SC", "US"})
_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
# Tilt beyond this many degrees between the slice normal and the slice-to-slice step is reported.
_TILT_WARN_DEG = 0.5


_problem = UnreadableScanError.for_file


@dataclass
class Frame:
    """One 2D image inside a parsed file, with where it sits in the patient (if known)."""

    file: ParsedDicom
    index: int  # frame number inside the file (0 for single-frame files)
    position: np.ndarray | None  # ImagePositionPatient, mm, LPS
    orientation: np.ndarray | None  # ImageOrientationPatient (6 direction cosines)
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm
    slope: float = 1.0
    intercept: float = 0.0


@dataclass
class ParsedDicom:
    """A DICOM file read from an upload: its dataset (until decoded) and the facts we need."""

    name: str
    ds: Dataset | None
    rows: int
    cols: int
    frames: int
    samples: int
    modality: str
    series_key: str
    instance_key: str
    summary: dict[str, Any]
    identifying: set[str]
    private_count: int
    has_modality_lut: bool
    native: memoryview | None = None
    stack_spacing: float | None = None
    only_first: bool = False
    frame_list: list[Frame] = field(default_factory=list)


def _inflate_deflated(data: bytes, name: str, budget: Budget) -> bytes:
    """Rewrite a Deflated Explicit VR file as plain Explicit VR, inflating under the budget."""
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    meta = pydicom.filereader._read_file_meta_info(fp)
    body = data[fp.tell() :]
    try:
        inflated = inflate(body, wbits=-15, budget=budget)
    except UnreadableScanError as exc:
        raise UnreadableScanError(
            str(exc), [FileProblem(name, str(exc), exc.code)], exc.code
        ) from None
    except ValueError:
        raise _problem(
            name, "truncated", "The deflated DICOM data ends early; the file is truncated."
        ) from None
    new_meta = FileMetaDataset(meta)
    new_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = DicomBytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, new_meta, enforce_standard=True)
    out.write(inflated)
    return out.getvalue()


def _is_image_class(sop_class: Any) -> bool:
    name = UID(str(sop_class)).name if sop_class else ""
    return "Image Storage" in name or "Multi-frame" in name


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _functional(ds: Dataset, group: Dataset | None, seq: str, attr: str) -> Any:
    """An attribute from a per-frame group, else the shared group (enhanced multi-frame)."""
    for source in (group, _first_item(ds, "SharedFunctionalGroupsSequence")):
        if source is None:
            continue
        item = _first_item(source, seq)
        if item is not None and attr in item:
            return item.get(attr)
    return None


def _vector(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr


def _spacing(value: Any) -> tuple[float, float] | None:
    vec = _vector(value, 2)
    if vec is None or np.any(vec <= 0):
        return None
    return (float(vec[0]), float(vec[1]))


def _frames_of(parsed: ParsedDicom, ds: Dataset) -> list[Frame]:
    """Geometry and rescale of every frame of ``ds`` (classic or enhanced multi-frame)."""
    frames: list[Frame] = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if parsed.frames > 1 and per_frame:
        for i in range(parsed.frames):
            group = per_frame[i] if i < len(per_frame) else None
            frames.append(
                Frame(
                    parsed,
                    i,
                    _vector(
                        _functional(ds, group, "PlanePositionSequence", "ImagePositionPatient"), 3
                    ),
                    _vector(
                        _functional(
                            ds, group, "PlaneOrientationSequence", "ImageOrientationPatient"
                        ),
                        6,
                    ),
                    _spacing(_functional(ds, group, "PixelMeasuresSequence", "PixelSpacing")),
                    safe_number(
                        _functional(ds, group, "PixelValueTransformationSequence", "RescaleSlope")
                    )
                    or 1.0,
                    safe_number(
                        _functional(
                            ds, group, "PixelValueTransformationSequence", "RescaleIntercept"
                        )
                    )
                    or 0.0,
                )
            )
        return frames
    position = _vector(ds.get("ImagePositionPatient"), 3)
    orientation = _vector(ds.get("ImageOrientationPatient"), 6)
    spacing = _spacing(ds.get("PixelSpacing")) or _spacing(ds.get("ImagerPixelSpacing"))
    slope = safe_number(ds.get("RescaleSlope"))
    intercept = safe_number(ds.get("RescaleIntercept"))
    frames.append(
        Frame(
            parsed,
            0,
            position,
            orientation,
            spacing,
            1.0 if slope is None else slope,
            0.0 if intercept is None else intercept,
        )
    )
    # Classic multi-frame without per-frame positions (cine, ultrasound loops): one frame only.
    return frames


def parse(name: str, data: bytes, budget: Budget, max_image_bytes: int) -> ParsedDicom:
    """Read one DICOM file's dataset and check what it declares, before any pixel is decoded.

    Raises :class:`UnreadableScanError` with one problem (and a fixed, value-free reason).
    """
    with warnings.catch_warnings():
        # pydicom warns about malformed values, quoting them; the values may be PHI.
        warnings.simplefilter("ignore")
        try:
            return _parse(name, data, budget, max_image_bytes)
        except UnreadableScanError:
            raise
        except RecursionError:
            raise _problem(
                name, "damaged", "The DICOM header nests sequences too deeply to be read safely."
            ) from None
        except MemoryError:
            raise _problem(
                name, "image-too-large", "Reading the file needs more memory than allowed."
            ) from None
        except Exception:
            # pydicom converts values lazily: a malformed element can fail at any access.
            raise _problem(
                name, "damaged", "The DICOM header is damaged and cannot be parsed."
            ) from None


def _parse(name: str, data: bytes, budget: Budget, max_image_bytes: int) -> ParsedDicom:
    ts = _meta_transfer_syntax(data)
    if ts == DeflatedExplicitVRLittleEndian:
        data = _inflate_deflated(data, name, budget)
        ts = ExplicitVRLittleEndian
    try:
        with warnings.catch_warnings():
            # pydicom warns about malformed values, quoting them; the values may be PHI.
            warnings.simplefilter("ignore")
            ds, native = _read_dataset(data, ts)
            del data
            pixel_keyword = (
                "PixelData"
                if native is not None
                else next(
                    (k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds),
                    None,
                )
            )
            sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
            transfer = ds.file_meta.get("TransferSyntaxUID")
            rows = int(ds.get("Rows") or 0)
            cols = int(ds.get("Columns") or 0)
            frames = int(ds.get("NumberOfFrames") or 1)
            samples = int(ds.get("SamplesPerPixel") or 1)
            bits = int(ds.get("BitsAllocated") or 0)
            modality = str(ds.get("Modality") or "OT")
    except InvalidDicomError:
        raise _problem(
            name,
            "unknown-format",
            "Not a DICOM file this app can read safely (no standard 128-byte preamble and "
            "'DICM' prefix). Re-export it from the PACS or viewer as standard DICOM Part 10.",
        ) from None
    except RecursionError:
        raise _problem(
            name, "damaged", "The DICOM header nests sequences too deeply to be read safely."
        ) from None
    except (EOFError, OSError):
        raise _problem(
            name, "truncated", "The DICOM file ends early; it is truncated. Copy it again."
        ) from None
    except Exception:
        raise _problem(
            name, "damaged", "The DICOM header is damaged and cannot be parsed."
        ) from None

    if str(sop_class or "") == _DIRECTORY_SOP_CLASS:
        raise _problem(
            name, "no-pixel-data", "This is a DICOMDIR index, not an image; it was skipped."
        )
    if transfer is None:
        raise _problem(
            name,
            "truncated",
            "The DICOM file ends inside its header (no transfer syntax); it is truncated.",
        )
    if pixel_keyword is None:
        if _is_image_class(sop_class) or rows:
            raise _problem(
                name,
                "truncated",
                "The DICOM file ends before its pixel data; it is truncated. Copy it again.",
            )
        raise _problem(
            name,
            "no-pixel-data",
            "This DICOM object holds no image (for example a report or a presentation state).",
        )
    if (
        rows <= 0
        or cols <= 0
        or frames <= 0
        or samples not in (1, 3)
        or bits not in (1, 8, 16, 32, 64)
    ):
        raise _problem(
            name, "damaged", "The DICOM image declares an impossible size or pixel format."
        )
    declared = rows * cols * frames * samples * max(bits // 8, 1)
    if declared > max_image_bytes or rows * cols * frames * 4 > max_image_bytes:
        raise _problem(
            name,
            "image-too-large",
            f"The image declares {human_bytes(declared)} of pixels, more than the limit of "
            f"{human_bytes(max_image_bytes)} (MEDMODELS_MAX_IMAGE_MB).",
        )
    ts_uid = UID(str(transfer))
    if not ts_uid.is_transfer_syntax:
        raise _problem(
            name,
            "unsupported",
            "The file declares a transfer syntax this app does not know. Export it as standard "
            "uncompressed or JPEG/JPEG 2000/JPEG-LS/RLE DICOM.",
        )
    if not ts_uid.is_compressed and pixel_keyword == "PixelData":
        needed = math.ceil(rows * cols * frames * samples * bits / 8)
        if len(native if native is not None else ds.PixelData) < needed:
            raise _problem(
                name,
                "truncated",
                "The pixel data is shorter than the image size declares; the file is "
                "truncated. Copy it again.",
            )
    found, private = identifying_present(ds)
    parsed = ParsedDicom(
        name=name,
        ds=ds,
        rows=rows,
        cols=cols,
        frames=frames,
        samples=samples,
        modality=modality if modality.isalnum() and len(modality) <= 16 else "OT",
        series_key=str(ds.get("SeriesInstanceUID") or f"no-series-{name}"),
        instance_key=str(ds.get("SOPInstanceUID") or f"no-instance-{name}"),
        summary={},  # filled for the first file of a scan only (see _scan)
        identifying=found,
        private_count=private,
        has_modality_lut="ModalityLUTSequence" in ds,
        stack_spacing=safe_number(ds.get("SpacingBetweenSlices")),
    )
    parsed.native = native
    parsed.frame_list = _frames_of(parsed, ds)
    return parsed


_NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2": False, "1.2.840.10008.1.2.1": True}  # explicit VR?
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


def _meta_transfer_syntax(data: bytes) -> str | None:
    """The transfer syntax UID, read from the file meta bytes (pydicom parses the meta group
    only when the bytes do not show it plainly); None when the file names none."""
    at = data.find(b"\x02\x00\x10\x00UI", 132, 132 + (1 << 16))
    if at >= 0 and len(data) >= at + 8:
        (length,) = struct.unpack_from("<H", data, at + 6)
        return data[at + 8 : at + 8 + length].rstrip(b"\x00 ").decode("ascii", "replace")
    try:
        fp = io.BytesIO(data)
        read_preamble(fp, False)
        ts = pydicom.filereader._read_file_meta_info(fp).get("TransferSyntaxUID")
        return str(ts) if ts else None
    except Exception:
        return None


def _read_dataset(data: bytes, ts: str | None) -> tuple[Dataset, memoryview | None]:
    """The dataset of ``data``; for plain uncompressed little-endian greyscale pixels, the
    header only plus a zero-copy view of the pixel bytes (pydicom would copy them, then decode
    through its generic machinery: this is most of the time a series takes)."""
    if ts not in _NATIVE_LITTLE_ENDIAN:
        return pydicom.dcmread(io.BytesIO(data), force=False), None
    fp = io.BytesIO(data)
    ds = pydicom.dcmread(fp, force=False, stop_before_pixels=True)
    explicit = _NATIVE_LITTLE_ENDIAN.get(str(ds.file_meta.get("TransferSyntaxUID", "")))
    pos = fp.tell()
    simple = (
        explicit is not None
        and int(ds.get("SamplesPerPixel") or 1) == 1
        and int(ds.get("BitsAllocated") or 0) in (8, 16)
        and data[pos : pos + 4] == _PIXEL_DATA_TAG
    )
    if simple:
        if explicit:
            (length,) = struct.unpack_from("<I", data, pos + 8) if len(data) >= pos + 12 else (0,)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<I", data, pos + 4) if len(data) >= pos + 8 else (0,)
            start = pos + 8
        if length != 0xFFFFFFFF:
            return ds, memoryview(data)[start : start + length]
    return pydicom.dcmread(io.BytesIO(data), force=False), None


def _native_frames(parsed: ParsedDicom, ds: Dataset, native: memoryview) -> np.ndarray:
    """Stored values from uncompressed little-endian bytes, as pydicom would return them."""
    bits = int(ds.get("BitsAllocated") or 16)
    stored = int(ds.get("BitsStored") or bits)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    frames = 1 if parsed.only_first else parsed.frames
    count = frames * parsed.rows * parsed.cols
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    arr = np.frombuffer(native, dtype, count).reshape(frames, parsed.rows, parsed.cols)
    if 0 < stored < bits:  # bits above BitsStored are not part of the value
        shift = bits - stored
        arr = (arr << shift) >> shift if signed else arr & dtype.type((1 << stored) - 1)
    return arr


# --------------------------------------------------------------------------- decoding


def _decode(parsed: ParsedDicom) -> np.ndarray:
    """All frames of ``parsed`` as stored values, shape (frames, rows, cols); frees the bytes."""
    ds = parsed.ds
    assert ds is not None
    native, parsed.native = parsed.native, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if native is not None:
                arr = _native_frames(parsed, ds, native)
            elif parsed.frames > 1 and parsed.only_first:
                # Only the first frame is used (no geometry): do not decode the others.
                arr = pixel_array(ds, index=0)
            else:
                arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts = UID(str(ds.file_meta.TransferSyntaxUID))
        if "plugin" in str(exc) or "decoder" in str(exc) or isinstance(exc, NotImplementedError):
            raise _problem(
                parsed.name,
                "no-decoder",
                f"The pixels are compressed as '{ts.name}', which no installed decoder can "
                "read. Export the series uncompressed or as JPEG/JPEG 2000/JPEG-LS/RLE.",
            ) from None
        raise _problem(
            parsed.name, "damaged", "The compressed pixel data cannot be decoded."
        ) from None
    except MemoryError:
        raise _problem(
            parsed.name, "image-too-large", "Decoding the image needs more memory than allowed."
        ) from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:
        # Includes codec panics surfaced by Rust bindings (they derive from BaseException).
        raise _problem(
            parsed.name,
            "damaged",
            "The pixel data is damaged or truncated and cannot be decoded.",
        ) from None
    finally:
        # Release the encoded bytes; only the decoded array is kept from here on.
        for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if keyword in ds:
                del ds[keyword]
    if parsed.samples == 3:
        arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        arr = arr.astype(np.float32)
    frames = 1 if parsed.only_first else parsed.frames
    if frames == 1 and arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape[:3] != (frames, parsed.rows, parsed.cols):
        raise _problem(parsed.name, "damaged", "The decoded image does not have its declared size.")
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = _invert(arr, ds)
    if parsed.has_modality_lut:
        from pydicom.pixels import apply_modality_lut

        arr = np.stack([apply_modality_lut(a, ds) for a in arr]).astype(np.float32)
    return arr


def _invert(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 (white = low) to MONOCHROME2, over the stored value range."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return (-1 - arr.astype(np.int64)).astype(arr.dtype)
    top = (1 << bits) - 1
    return (top - arr.astype(np.int64)).astype(arr.dtype)


# --------------------------------------------------------------------------- assembling


def _orientation_key(frame: Frame) -> tuple[float, ...] | None:
    if frame.orientation is None:
        return None
    return tuple(np.round(frame.orientation, 3).tolist())


def _label(kind: str, frames: list[Frame]) -> str:
    files = len({id(f.file) for f in frames})
    modality = frames[0].file.modality
    return f"{modality} {kind} ({files} file{'s' if files != 1 else ''})"


def assemble(
    parsed: list[ParsedDicom], *, gap_tolerance: float
) -> tuple[list[Scan], list[FileProblem], list[str]]:
    """Group parsed files into series, check geometry, decode, and build scans.

    Returns ``(scans, problems, warnings)``; a bad series becomes a problem, never a merge.
    """
    with warnings.catch_warnings():
        # pydicom converts values lazily and warns quoting them; the values may be PHI.
        warnings.simplefilter("ignore")
        return _assemble(parsed, gap_tolerance=gap_tolerance)


def _assemble(
    parsed: list[ParsedDicom], *, gap_tolerance: float
) -> tuple[list[Scan], list[FileProblem], list[str]]:
    scans: list[Scan] = []
    problems: list[FileProblem] = []
    notes: list[str] = []
    series: dict[str, list[ParsedDicom]] = defaultdict(list)
    singles: list[ParsedDicom] = []
    for p in parsed:
        (singles if p.frames > 1 else series[p.series_key]).append(p)
    groups: list[list[Frame]] = []
    stacks: list[ParsedDicom] = []
    for p in singles:
        if (
            all(f.position is not None and f.orientation is not None for f in p.frame_list)
            and len(p.frame_list) > 1
        ):
            groups.append(p.frame_list)
        elif p.frames > 1 and p.modality not in PROJECTION_MODALITIES and p.stack_spacing:
            # A 3D acquisition stored without per-frame positions: frames in stored order.
            stacks.append(p)
        else:
            if p.frames > 1:
                notes.append(
                    f"A multi-frame {p.modality} image has no slice positions (for example a "
                    "cine loop); only its first frame is used."
                )
            p.frame_list = p.frame_list[:1]
            p.only_first = True
            groups.append(p.frame_list)
    for files in series.values():
        frames = [p.frame_list[0] for p in files]
        if len(frames) > 1 and any(f.position is None or f.orientation is None for f in frames):
            # Projection images (e.g. PA and lateral radiographs) share a series but are not
            # slices of one volume: each becomes its own image.
            groups.extend([f] for f in frames)
        else:
            groups.append(frames)
    for p in stacks:
        try:
            scans.append(_stack(p))
        except UnreadableScanError as exc:
            problems.extend(exc.problems)
        finally:
            p.ds = None
    for frames in groups:
        try:
            scan, group_notes = _build(frames, gap_tolerance=gap_tolerance)
        except UnreadableScanError as exc:
            problems.extend(exc.problems)
            continue
        finally:
            for f in frames:
                f.file.ds = None
        scans.append(scan)
        notes.extend(group_notes)
    return scans, problems, notes


def _build(frames: list[Frame], *, gap_tolerance: float) -> tuple[Scan, list[str]]:
    notes: list[str] = []
    label = _label("series", frames)
    if len(frames) > 1:
        frames, dropped = _drop_localizers(frames)
        if dropped:
            notes.append(
                f"{dropped} image(s) with a different orientation (localizer/scout) were "
                "left out of the series."
            )
        frames, dupes = _dedupe(frames)
        if dupes:
            notes.append(f"{dupes} duplicate file(s) of the same slice were ignored.")
    first = frames[0]
    sizes = {(f.file.rows, f.file.cols) for f in frames}
    if len(sizes) > 1:
        raise _problem(
            label,
            "bad-geometry",
            f"The slices of this series have {len(sizes)} different image sizes, so they are "
            "not one volume. Upload the series as exported, without other images mixed in.",
        )
    spacings = {f.pixel_spacing for f in frames}
    if len(spacings) > 1 and not _close_spacings(spacings):
        raise _problem(
            label,
            "bad-geometry",
            "The slices of this series have different pixel spacings, so they are not one "
            "volume. Upload the series as exported.",
        )
    if len(frames) == 1:
        return _single(first), notes
    normal = _normal(first.orientation)  # type: ignore[arg-type]
    positions = np.array([f.position for f in frames], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    positions = positions[order]
    along = along[order]
    steps = np.diff(along)
    step = float(np.median(steps))
    if step <= 1e-3 or float(steps.min()) <= max(1e-3, 0.01 * step):
        raise _problem(
            label,
            "duplicate-slices",
            "Several different slices share the same position (the series may hold several "
            "phases, echoes or acquisitions). Export one of them as its own series.",
        )
    deviation = np.abs(steps - step)
    if float(deviation.max()) > gap_tolerance * step:
        worst = int(deviation.argmax())
        gap = float(steps[worst])
        if gap > 1.5 * step:
            missing = round(gap / step) - 1
            what = (
                f"about {missing} slice(s) seem to be missing: slices are {step:.2f} mm apart "
                f"but {gap:.2f} mm apart between slice {worst + 1} and {worst + 2}"
            )
        else:
            what = (
                f"the slice spacing is uneven ({float(steps.min()):.2f} to "
                f"{float(steps.max()):.2f} mm, more than {gap_tolerance:.0%} apart)"
            )
        raise _problem(
            label,
            "uneven-spacing",
            f"This series cannot be used as one volume: {what}. Upload the complete series "
            "(every file), or a reconstruction with even spacing.",
        )
    step_vec = (positions[-1] - positions[0]) / (len(frames) - 1)
    cos_tilt = abs(float(step_vec @ normal)) / float(np.linalg.norm(step_vec))
    tilt = math.degrees(math.acos(min(1.0, cos_tilt)))
    if tilt > _TILT_WARN_DEG:
        notes.append(
            f"The slices are tilted by {tilt:.1f}° (gantry tilt): the volume is sheared. "
            "Volumes in mL stay correct, but a model trained on untilted scans may do worse."
        )
    array = _decode_into(frames)
    row_sp, col_sp = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None:
        notes.append("The series has no pixel spacing; 1 mm was assumed.")
    affine = _affine(first.orientation, positions[0], col_sp, row_sp, step_vec)  # type: ignore[arg-type]
    return (
        _scan(frames, array, (col_sp, row_sp, step), affine, "volume", notes),
        notes,
    )


def _stack(p: ParsedDicom) -> Scan:
    """Frames of one file with no per-frame positions but a declared slice spacing."""
    frames = [Frame(p, i, None, None, p.frame_list[0].pixel_spacing) for i in range(p.frames)]
    for f in frames:
        f.slope, f.intercept = p.frame_list[0].slope, p.frame_list[0].intercept
    array = _decode_into(frames)
    notes = [
        "The frames carry no positions; they were stacked in stored order with the declared "
        "spacing between slices, and the orientation in the patient is unknown."
    ]
    row_sp, col_sp = frames[0].pixel_spacing or (1.0, 1.0)
    if frames[0].pixel_spacing is None:
        notes.append("The image has no pixel spacing; 1 mm was assumed.")
    spacing = (col_sp, row_sp, float(p.stack_spacing or 1.0))
    return _scan(frames, array, spacing, None, "volume", notes)


def _single(frame: Frame) -> Scan:
    """One 2D image: a cross-sectional slice when it has geometry, else a projection image."""
    array = _decode_into([frame])
    p = frame.file
    has_geometry = frame.position is not None and frame.orientation is not None
    kind = "slice" if has_geometry and p.modality not in PROJECTION_MODALITIES else "image"
    spacing: tuple[float, float, float] | None = None
    affine = None
    if frame.pixel_spacing is not None:
        row_sp, col_sp = frame.pixel_spacing
        thickness = (safe_number(p.ds.get("SliceThickness")) if p.ds is not None else None) or 1.0
        spacing = (col_sp, row_sp, float(thickness) if thickness > 0 else 1.0)
        if has_geometry:
            normal = _normal(frame.orientation)  # type: ignore[arg-type]
            affine = _affine(
                frame.orientation,  # type: ignore[arg-type]
                frame.position,  # type: ignore[arg-type]
                col_sp,
                row_sp,
                normal * spacing[2],
            )
    return _scan([frame], array, spacing, affine, kind, [])


def _scan(
    frames: list[Frame],
    array: np.ndarray,
    spacing: tuple[float, float, float] | None,
    affine: np.ndarray | None,
    kind: str,
    notes: list[str],
) -> Scan:
    files = {id(f.file): f.file for f in frames}
    identifying: set[str] = set()
    private = 0
    for p in files.values():
        identifying |= p.identifying
        private = max(private, p.private_count)
    first = frames[0].file
    summary = technical_summary(first.ds) if first.ds is not None else {}
    summary["modality"] = first.modality
    summary["shape"] = list(array.shape)
    summary["spacing_mm"] = None if spacing is None else [round(s, 4) for s in spacing]
    summary["pixel_spacing_mm"] = None if spacing is None else [spacing[1], spacing[0]]
    summary["slices"] = int(array.shape[0])
    summary["files"] = len(files)
    digest = hashlib.blake2b(np.ascontiguousarray(array).data.cast("B"), digest_size=16)
    digest.update(repr((array.shape, str(array.dtype), spacing)).encode())
    return Scan(
        array=array,
        spacing_mm=None if spacing is None else tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        affine=affine,
        modality=first.modality,
        kind=kind,  # type: ignore[arg-type]
        summary=summary,
        warnings=tuple(notes),
        removed=removed_report(identifying, private),
        source_format="DICOM",
        file_count=len(files),
        fingerprint=digest.hexdigest(),
    )


def _decode_into(frames: list[Frame]) -> np.ndarray:
    """Decode ``frames`` (already ordered) into one (z, y, x) array of physical values.

    int16 when every slope/intercept is integral and the values fit, else float32.
    """
    first = frames[0].file
    shape = (len(frames), first.rows, first.cols)
    integral = all(
        float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames
    ) and not any(f.file.has_modality_lut or f.file.samples == 3 for f in frames)
    out = np.empty(shape, dtype=np.int16 if integral else np.float32)
    decoded: dict[int, np.ndarray] = {}
    for k, frame in enumerate(frames):
        key = id(frame.file)
        if key not in decoded:
            decoded = {key: _decode(frame.file)}  # keep only the current file's frames
        raw = decoded[key][frame.index]
        if raw.dtype.kind == "f" and out.dtype != np.float32:
            out = out.astype(np.float32)
        plain = frame.slope == 1.0 and frame.intercept == 0.0
        if out.dtype == np.int16 and raw.size:
            # Check the range on the stored values; the rescale itself writes in place.
            slope, intercept = int(frame.slope), int(frame.intercept)
            ends = (int(raw.min()) * slope + intercept, int(raw.max()) * slope + intercept)
            if min(ends) < -32768 or max(ends) > 32767:
                out = out.astype(np.float32)
        if plain:
            out[k] = raw
        elif out.dtype == np.int16:
            scaled = raw if frame.slope == 1.0 else raw * np.int32(frame.slope)
            np.add(scaled, np.int32(frame.intercept), out=out[k], casting="unsafe")
        else:
            np.multiply(raw, np.float32(frame.slope), out=out[k], casting="unsafe")
            out[k] += np.float32(frame.intercept)
    return out


def _close_spacings(spacings: set[tuple[float, float] | None]) -> bool:
    if None in spacings:
        return False
    arr = np.array(list(spacings), dtype=np.float64)
    return bool(np.all(np.abs(arr - arr[0]) <= 1e-3 * arr[0]))


def _normal(orientation: np.ndarray) -> np.ndarray:
    normal = np.cross(orientation[:3], orientation[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        raise _problem(
            "series", "bad-geometry", "The image orientation is invalid (parallel directions)."
        )
    return normal / norm


def _affine(
    orientation: np.ndarray,
    position: np.ndarray,
    col_spacing: float,
    row_spacing: float,
    step: np.ndarray,
) -> np.ndarray:
    """Voxel (x=column, y=row, z=slice) → LPS mm."""
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * col_spacing
    affine[:3, 1] = orientation[3:] * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = position
    return affine


def _drop_localizers(frames: list[Frame]) -> tuple[list[Frame], int]:
    keys = Counter(_orientation_key(f) for f in frames)
    if len(keys) == 1:
        return frames, 0
    main, _ = keys.most_common(1)[0]
    kept = [f for f in frames if _orientation_key(f) == main]
    return kept, len(frames) - len(kept)


def _dedupe(frames: list[Frame]) -> tuple[list[Frame], int]:
    seen: dict[tuple[str, int], Frame] = {}
    for f in frames:
        seen.setdefault((f.file.instance_key, f.index), f)
    return list(seen.values()), len(frames) - len(seen)
