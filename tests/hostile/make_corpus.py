"""Generate the hostile-input corpus: one folder per case, plus ``corpus.json`` (expectations).

Every case is made here from the shared synthetic factories in ``tests/conftest.py``; nothing is
committed but this script. Run it by hand to get the files (e.g. to drag them into the app)::

    .venv/bin/python tests/hostile/make_corpus.py /tmp/hostile

Each case says what a correct loader does with it under :data:`LIMITS` (low limits, so the bombs
stay small and fast): which problem codes it may report, which it must report, how many scans
load, and which warning a scan that loads must carry. Bomb cases are also measured with
tracemalloc by the tests (``BOMB_IDS``).
"""

from __future__ import annotations

import gzip
import json
import random
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from conftest import (  # noqa: E402  (conftest lives in tests/, added to the path above)
    MPEG2_MPML,
    PHI_TOKENS,
    encode,
    fake_encapsulated,
    make_ct_dataset,
    make_ct_series,
    make_enhanced_mr,
    make_nifti,
    make_png,
    make_zip,
    zeros_gzip,
)
from pydicom.dataelem import RawDataElement  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless  # noqa: E402

MiB = 1 << 20

LIMITS: dict[str, Any] = {
    "max_upload_mb": 4,
    "max_files": 300,
    "max_zip_entries": 1000,
    "max_decompressed_mb": 16,
    "max_compression_ratio": 200,
    "max_image_mb": 32,
    "decode_workers": 1,
    "decode_memory_mb": 1024,
    "decode_timeout_s": 30.0,
}
"""Settings every case is loaded with (see :func:`medmodels.config.load_settings`)."""

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
XSS_TOKENS = ("<script", "alert(", "onerror", "<img", "</script>")
"""Fragments of the XSS strings: none may appear in anything a load returns."""

BOMB_PEAK_BYTES = 64 * MiB
"""What a bomb case may allocate in-process at most (limits: 16 MiB inflated, 32 MiB image)."""


@dataclass
class Case:
    """One hostile upload and what a correct loader does with it."""

    id: str
    what: str
    files: list[tuple[str, bytes]]
    allowed: frozenset[str]
    """Every problem must have one of these codes (empty: no problem at all)."""
    required: frozenset[str] = frozenset()
    """Codes that must be among the problems."""
    scans: int | tuple[int, int] = 0
    """Exactly this many scans, or a (min, max) range."""
    warning: str | None = None
    """A word some warning (upload-level or a scan's) must contain, lower case."""
    secrets: tuple[str, ...] = ()
    """Header values (besides the PHI markers and XSS strings) that must never be echoed."""
    extra: dict[str, Any] = field(default_factory=dict)

    def expectation(self) -> dict[str, Any]:
        """The JSON-able expectation written to corpus.json."""
        return {
            "what": self.what,
            "files": [name for name, _ in self.files],
            "allowed_codes": sorted(self.allowed),
            "required_codes": sorted(self.required),
            "scans": self.scans,
            "warning": self.warning,
        }


_BUILDERS: dict[str, Callable[[], Case]] = {}
BOMB_IDS: list[str] = []
"""Cases measured with tracemalloc (known without building them)."""


def case(fn: Callable[[], Case]) -> Callable[[], Case]:
    """Register a case builder under its function name (``case_`` stripped, ``_`` → ``-``)."""
    _BUILDERS[fn.__name__.removeprefix("case_").replace("_", "-")] = fn
    return fn


def bomb_case(fn: Callable[[], Case]) -> Callable[[], Case]:
    """Register a case whose point is a resource limit (see :data:`BOMB_IDS`)."""
    case(fn)
    BOMB_IDS.append(fn.__name__.removeprefix("case_").replace("_", "-"))
    return fn


def _dcm(**kwargs: Any) -> bytes:
    return encode(make_ct_dataset(**kwargs))


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --- not an image, empty, truncated ----------------------------------------------------------


@case
def case_empty_file() -> Case:
    return Case("", "a 0-byte file", [("empty.dcm", b"")], frozenset({"empty"}), {"empty"})


@case
def case_text_file() -> Case:
    text = b"Patient Qwyzzle^Xavierette looked fine. " * 40
    return Case("", "plain text", [("notes.dcm", text)], frozenset({"unknown-format"}))


@case
def case_pdf() -> Case:
    pdf = b"%PDF-1.4\n1 0 obj << /Title (Qwyzzle Xavierette) >> endobj\n" + _rand(3000, 1)
    return Case("", "a PDF report", [("report.pdf", pdf)], frozenset({"unknown-format"}))


@case
def case_dicom_without_preamble() -> Case:
    data = encode(make_ct_dataset(), preamble=False)
    return Case("", "a bare DICOM dataset", [("bare.dcm", data)], frozenset({"unknown-format"}))


@case
def case_dicm_random_bytes() -> Case:
    data = b"\x00" * 128 + b"DICM" + _rand(4000, 2)
    return Case(
        "", "DICM prefix then random bytes", [("x.dcm", data)], frozenset({"damaged", "truncated"})
    )


@case
def case_dicm_only() -> Case:
    data = b"\x00" * 128 + b"DICM"
    return Case(
        "", "preamble and DICM only", [("x.dcm", data)], frozenset({"damaged", "truncated"})
    )


def _cut_points(data: bytes) -> dict[str, int]:
    name_at = data.index(b"Qwyzzle")
    pixel_tag = data.rindex(b"\xe0\x7f\x10\x00")
    return {
        "in-preamble": 64,
        "before-dicm-end": 131,
        "in-file-meta": 140,
        "in-patient-name": name_at + 3,
        "in-pixel-header": pixel_tag + 6,
        "in-pixel-data": pixel_tag + 12 + 100,
        "last-byte": len(data) - 1,
    }


@case
def case_truncated_dicom() -> Case:
    data = _dcm(rows=16, cols=16)
    files = [(f"cut-{where}.dcm", data[:at]) for where, at in _cut_points(data).items()]
    # too short for 'DICM' at byte 128: not recognisable as DICOM at all
    return Case(
        "",
        "one DICOM file truncated at 7 offsets (preamble, meta, a name, pixels, last byte)",
        files,
        frozenset({"truncated", "damaged", "unknown-format"}),
        extra={"per_file": True},
    )


@case
def case_truncated_rle() -> Case:
    data = _dcm(rows=16, cols=16, transfer_syntax=RLELossless)
    files = [(f"rle-cut{n}.dcm", data[:-n]) for n in (1, 40, 200)]
    # Cut by one byte, only the sequence delimiter is damaged: the image itself is complete.
    return Case(
        "", "an RLE DICOM cut short", files, frozenset({"truncated", "damaged"}), scans=(0, 1)
    )


@case
def case_truncated_nifti() -> Case:
    nii = make_nifti(np.arange(8 * 8 * 8, dtype=np.int16).reshape(8, 8, 8), np.eye(4))
    gz = gzip.compress(nii, mtime=0)
    files = [
        ("cut-header.nii", nii[:200]),
        ("cut-voxels.nii", nii[: len(nii) - 50]),
        ("cut.nii.gz", gz[: len(gz) // 2]),
        ("cut-trailer.nii.gz", gz[:-4]),
    ]
    return Case(
        "",
        "NIfTI and .nii.gz cut short",
        files,
        frozenset({"truncated", "damaged", "unknown-format"}),
    )


@case
def case_truncated_zip() -> Case:
    archive = make_zip({f"s/{i}.dcm": d for i, d in enumerate(make_ct_series(n=3))})
    files = [("half.zip", archive[: len(archive) // 2]), ("no-end.zip", archive[:-10])]
    return Case("", "a zip cut short", files, frozenset({"damaged", "truncated"}))


# --- what the header says ----------------------------------------------------------------------


@case
def case_no_pixel_data() -> Case:
    ds = make_ct_dataset()
    del ds.PixelData
    for keyword in ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.Modality = "SR"
    return Case(
        "", "a structured report", [("report.dcm", encode(ds))], frozenset({"no-pixel-data"})
    )


@case
def case_no_decoder() -> Case:
    ds = make_ct_dataset()
    fake_encapsulated(ds, MPEG2_MPML)
    return Case("", "MPEG-2 video in DICOM", [("video.dcm", encode(ds))], frozenset({"no-decoder"}))


@bomb_case
def case_lying_dimensions() -> Case:
    ds = make_ct_dataset(rows=8, cols=8)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 10000
    rle = make_ct_dataset(rows=8, cols=8, transfer_syntax=RLELossless)
    rle.Rows = rle.Columns = 65535
    return Case(
        "",
        "rows × columns × frames of 80 TB (uncompressed) and 8 GB (RLE)",
        [("huge.dcm", encode(ds)), ("huge-rle.dcm", encode(rle))],
        frozenset({"image-too-large"}),
    )


@case
def case_lying_rows() -> Case:
    ds = make_ct_dataset(rows=8, cols=8)
    ds.Rows = ds.Columns = 512
    frames = make_ct_dataset(rows=8, cols=8)
    frames.NumberOfFrames = 40
    return Case(
        "",
        "512×512 (and 40 frames) declared, 8×8×1 stored",
        [("short.dcm", encode(ds)), ("frames.dcm", encode(frames))],
        frozenset({"truncated", "damaged"}),
    )


@bomb_case
def case_lying_nifti_and_png() -> Case:
    nii = bytearray(make_nifti(np.zeros((4, 4, 4), np.int16), np.eye(4)))
    struct.pack_into("<8h", nii, 40, 3, 4096, 4096, 4096, 1, 1, 1, 1)  # dim[]
    png = bytearray(make_png(np.zeros((4, 4), np.uint8)))
    struct.pack_into(">II", png, 16, 100_000, 100_000)  # IHDR width, height
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))  # keep the chunk CRC valid
    return Case(
        "",
        "NIfTI declaring 4096³ voxels; PNG declaring 100000×100000",
        [("huge.nii", bytes(nii)), ("huge.png", bytes(png))],
        frozenset({"image-too-large", "damaged", "truncated"}),
        frozenset({"image-too-large"}),
    )


def _nested(depth: int, *, defined: bool) -> bytes:
    """A valid CT file with a private sequence nested ``depth`` deep before its pixels."""
    ds = make_ct_dataset()
    pixels = ds.PixelData
    del ds.PixelData
    head = encode(ds)
    creator = b"\xdf\x7f\x10\x00LO" + struct.pack("<H", 8) + b"MMTEST  "
    leaf = creator
    if defined:
        nested = b""
        for _ in range(depth):
            item = leaf + nested
            item_el = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(item)) + item
            nested = b"\xdf\x7f\x00\x10SQ\x00\x00" + struct.pack("<I", len(item_el)) + item_el
    else:
        nested = b""
        for _ in range(depth):
            nested = (
                b"\xdf\x7f\x00\x10SQ\x00\x00\xff\xff\xff\xff"
                + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
                + leaf
                + nested
                + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
                + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
            )
    pixel_el = b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", len(pixels)) + pixels
    return head + creator + nested + pixel_el


@case
def case_deep_nesting() -> Case:
    return Case(
        "",
        "a sequence nested 300 deep (undefined and defined lengths)",
        [
            ("deep-undefined.dcm", _nested(300, defined=False)),
            ("deep-defined.dcm", _nested(300, defined=True)),
        ],
        frozenset({"damaged", "unsupported"}),
        scans=(0, 2),
    )


# --- bombs and limits ------------------------------------------------------------------------


@bomb_case
def case_deflate_bomb() -> Case:
    ds = make_ct_dataset()
    block = ds.private_block(0x0013, "MMTEST PADDING", create=True)
    block.add_new(0x01, "OB", b"\x00" * (32 * MiB))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = encode(ds)
    assert len(data) < 200_000, len(data)
    return Case(
        "",
        "Deflated Explicit VR file inflating to 32 MiB",
        [("deflated.dcm", data)],
        frozenset({"bomb"}),
    )


@bomb_case
def case_nii_gz_bomb() -> Case:
    header = make_nifti(np.zeros((1, 1, 1), np.int16), np.eye(4))[:352]
    nii = bytearray(header)
    struct.pack_into("<8h", nii, 40, 3, 256, 256, 128, 1, 1, 1, 1)  # 16 MiB of int16 voxels
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(bytes(nii))]
    chunk = b"\x00" * MiB
    for _ in range(64):  # 64 MiB of zeros after the header
        parts.append(comp.compress(chunk))
    parts.append(comp.flush())
    data = b"".join(parts)
    assert len(data) < 400_000, len(data)
    return Case(
        "",
        ".nii.gz inflating to 64 MiB (and a plain .gz to 32 MiB)",
        [("brain.nii.gz", data), ("plain.gz", zeros_gzip(32 * MiB))],
        frozenset({"bomb"}),
        frozenset({"bomb"}),
    )


@bomb_case
def case_zip_bomb_single_entry() -> Case:
    archive = make_zip({"a.dcm": b"\x00" * (16 * MiB)})
    ratio = 16 * MiB / len(archive)
    assert ratio > 900, ratio
    return Case(
        "",
        f"one zip entry at {ratio:.0f}:1",
        [("bomb.zip", archive)],
        frozenset({"bomb"}),
        frozenset({"bomb"}),
    )


def _overlapping_zip(kernel: bytes, names: list[str]) -> bytes:
    """One local file, and one central-directory entry per name, all pointing at it (the
    overlapping-file zip bomb: the archive is the size of one entry, the content N times it)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(kernel) + comp.flush()
    crc = zlib.crc32(kernel)
    first = names[0].encode()
    local = struct.pack(
        "<4sHHHHHIIIHH",
        b"PK\x03\x04",
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(body),
        len(kernel),
        len(first),
        0,
    )
    out = bytearray(local + first + body)
    cd_start = len(out)
    for name in names:
        raw = name.encode()
        out += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(body),
            len(kernel),
            len(raw),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        out += raw
    cd_size = len(out) - cd_start
    out += struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(names), len(names), cd_size, cd_start, 0
    )
    return bytes(out)


@bomb_case
def case_zip_bomb_overlapping() -> Case:
    # A real 256×256 slice of zeros (128 KiB, deflated to ~300 bytes): each entry is under the
    # 1 MiB floor of the ratio check, so only the upload's total (max_decompressed_mb, reached
    # after 128 of the 900 entries) can stop the 112 MiB this ~60 KB archive inflates to.
    kernel = _dcm(rows=256, cols=256, stored=np.zeros((256, 256), np.int32))
    archive = _overlapping_zip(kernel, ["slice.dcm"] * 900)
    assert len(archive) < 100_000, len(archive)
    return Case(
        "",
        "900 central-directory entries pointing at one local file",
        [("overlap.zip", archive)],
        frozenset({"bomb", "damaged"}),
        frozenset({"bomb"}),
        scans=(0, 1),
    )


@bomb_case
def case_zip_bomb_overlapping_names() -> Case:
    # The same with a different name per entry (as in the classic construction, where each
    # entry's local header is quoted inside the previous one's data; here they all share one).
    kernel = _dcm(rows=256, cols=256, stored=np.zeros((256, 256), np.int32))
    archive = _overlapping_zip(kernel, [f"s{i:03d}.dcm" for i in range(250)])
    return Case(
        "",
        "250 differently named central-directory entries pointing at one local file",
        [("overlap-names.zip", archive)],
        frozenset({"bomb", "damaged"}),
        scans=(0, 1),
    )


@case
def case_too_many_entries() -> Case:
    archive = make_zip(
        [(f"e{i:04d}.dcm", b"") for i in range(1001)], compression=zipfile.ZIP_STORED
    )
    return Case(
        "", "a zip listing 1001 entries", [("many.zip", archive)], frozenset({"too-many-entries"})
    )


@case
def case_too_many_files() -> Case:
    files = [(f"f{i:03d}.dcm", b"\x00" * 8) for i in range(301)]
    return Case(
        "",
        "301 loose files",
        files,
        frozenset({"too-many-files", "unknown-format"}),
        frozenset({"too-many-files"}),
    )


@case
def case_too_large() -> Case:
    return Case(
        "",
        "one file over max_upload_mb",
        [("big.dcm", b"\x00" * 128 + b"DICM" + _rand(4 * MiB + 1000, 3))],
        frozenset({"too-large"}),
        frozenset({"too-large"}),
    )


# --- archives ------------------------------------------------------------------------------------


@case
def case_zip_unsafe_paths() -> Case:
    good = make_ct_series(n=3)
    evil = make_ct_series(n=3)
    archive = make_zip(
        [
            ("series/0.dcm", good[0]),
            ("../evil.dcm", evil[0]),
            ("series/1.dcm", good[1]),
            ("/etc/evil.dcm", evil[1]),
            ("C:/evil.dcm", evil[2]),
            ("series/../../evil2.dcm", evil[2]),
            ("..\\evil3.dcm", evil[0]),
            ("series/2.dcm", good[2]),
        ]
    )
    return Case(
        "",
        "zip entries with '..', absolute, drive-letter and backslash paths beside a good series",
        [("upload.zip", archive)],
        frozenset({"unsafe-path"}),
        frozenset({"unsafe-path"}),
        scans=1,
        secrets=tuple(good.uids + evil.uids),
        extra={"unsafe": 5, "expected": good.expected},
    )


@case
def case_nested_archives() -> Case:
    inner = make_zip({"a.dcm": make_ct_series(n=1)[0]})
    nii = make_nifti(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    return Case(
        "",
        "zip in zip, gzip in gzip, zip in gzip",
        [
            ("outer.zip", make_zip({"inner.zip": inner})),
            ("twice.nii.gz.gz", gzip.compress(gzip.compress(nii, mtime=0), mtime=0)),
            ("zip.gz", gzip.compress(inner, mtime=0)),
        ],
        frozenset({"nested-archive"}),
        frozenset({"nested-archive"}),
    )


# --- series ------------------------------------------------------------------------------------


@case
def case_mixed_series() -> Case:
    ct = make_ct_series(n=3)
    mr = make_ct_series(n=4, modality="MR", rows=6, cols=6)
    files = [(f"ct{i}.dcm", d) for i, d in enumerate(ct)]
    files += [(f"mr{i}.dcm", d) for i, d in enumerate(mr)]
    files.append(("both.zip", make_zip({**dict(files[:3]), **dict(files[3:])})))
    return Case(
        "",
        "a CT and an MR series, loose and again in one zip: never merged",
        files,
        frozenset(),
        scans=2,
        secrets=tuple(ct.uids + mr.uids),
        extra={"shapes": {(3, 8, 8), (4, 6, 6)}},
    )


@case
def case_missing_slice() -> Case:
    series = make_ct_series(n=6, drop=3)
    return Case(
        "",
        "a series with a missing slice",
        [(f"s{i}.dcm", d) for i, d in enumerate(series)],
        frozenset({"uneven-spacing"}),
        frozenset({"uneven-spacing"}),
        secrets=tuple(series.uids),
    )


@case
def case_uneven_spacing() -> Case:
    series_uid, study = "1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72"
    files = []
    for k, z in enumerate((0.0, 2.5, 5.0, 8.1, 10.0)):
        data = _dcm(
            position=(0.0, 0.0, z),
            series_uid=series_uid,
            study_uid=study,
            frame_uid="1.2.826.0.1.3680043.8.498.73",
            instance_number=k + 1,
        )
        files.append((f"u{k}.dcm", data))
    return Case(
        "",
        "slices 2.5 mm apart but one 3.1 mm gap",
        files,
        frozenset({"uneven-spacing"}),
        frozenset({"uneven-spacing"}),
    )


@case
def case_duplicate_positions() -> Case:
    series = make_ct_series(n=4, duplicate=1)
    return Case(
        "",
        "two different slices at one position",
        [(f"d{i}.dcm", d) for i, d in enumerate(series)],
        frozenset({"duplicate-slices"}),
        frozenset({"duplicate-slices"}),
        secrets=tuple(series.uids),
    )


@case
def case_gantry_tilt() -> Case:
    series = make_ct_series(n=4, tilt_deg=15)
    return Case(
        "",
        "a series acquired with 15° gantry tilt",
        [(f"t{i}.dcm", d) for i, d in enumerate(series)],
        frozenset(),
        scans=1,
        warning="tilt",
        secrets=tuple(series.uids),
    )


@case
def case_inconsistent_geometry() -> Case:
    sizes = make_ct_series(n=3, sizes={1: (9, 8)})
    spacing = make_ct_series(n=3)
    files = [(f"size{i}.dcm", d) for i, d in enumerate(sizes)]
    other = make_ct_dataset(
        spacing=(0.9, 0.9),
        position=(-10.0, -20.0, 30.0 + 2 * 2.5),
        series_uid=spacing.series_uid,
        study_uid=spacing.study_uid,
        frame_uid=spacing.frame_uid,
    )
    files += [(f"sp{i}.dcm", d) for i, d in enumerate(spacing[:2])]
    files.append(("sp2.dcm", encode(other)))
    return Case(
        "",
        "slices of different sizes; slices of different pixel spacing",
        files,
        frozenset({"bad-geometry"}),
        frozenset({"bad-geometry"}),
        secrets=tuple(sizes.uids + spacing.uids),
    )


# --- NIfTI ---------------------------------------------------------------------------------------


def _patch_nifti(nii: bytes, *pairs: tuple[int, str, tuple[float | int, ...]]) -> bytes:
    raw = bytearray(nii)
    for offset, fmt, values in pairs:
        struct.pack_into(fmt, raw, offset, *values)
    return bytes(raw)


@case
def case_nifti_bad_affine() -> Case:
    nii = make_nifti(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.diag([0.8, 0.9, 2, 1]))
    nan = float("nan")
    # NIfTI-1: qform_code at 252, sform_code at 254, quatern_b..qoffset_z at 256, srow_x at 280
    files = [
        ("sform-nan.nii", _patch_nifti(nii, (280, "<4f", (nan, 0, 0, 0)), (252, "<h", (0,)))),
        ("qform-nan.nii", _patch_nifti(nii, (256, "<f", (nan,)), (254, "<h", (0,)))),
        (
            "sform-inf.nii.gz",
            gzip.compress(
                _patch_nifti(nii, (312, "<4f", (0, 0, float("inf"), 0)), (252, "<h", (0,))),
                mtime=0,
            ),
        ),
    ]
    return Case(
        "",
        "NIfTI with a NaN sform, a NaN qform, an infinite sform",
        files,
        frozenset({"bad-geometry"}),
        frozenset({"bad-geometry"}),
    )


@case
def case_nifti_extensions() -> Case:
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    ext = ("Qwyzzle Xavierette 19340217 " + XSS[0] + XSS[1]).encode()
    nii = make_nifti(data, np.eye(4), extension=ext, descrip="Zanzibar " + XSS[0][:60])
    return Case(
        "",
        "NIfTI with a header extension and description holding a name and markup",
        [("ext.nii", nii)],
        frozenset(),
        scans=1,
        warning="extension",
    )


# --- markup in every text attribute ------------------------------------------------------------

_FREE_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC"})
_FREE_TEXT_VRS |= {"UR", "UT"}
# Needed to decode the pixels: an XSS string there makes the file unreadable, which another case
# covers (every string, below).
_KEEP = frozenset({"PhotometricInterpretation", "TransferSyntaxUID"})
_EXTRA_TEXT = {
    "Manufacturer": "LO",
    "ManufacturerModelName": "LO",
    "BodyPartExamined": "CS",
    "StationName": "SH",
    "ImageComments": "LT",
    "ProtocolName": "LO",
    "StudyID": "SH",
    "DeviceSerialNumber": "LO",
    "SoftwareVersions": "LO",
    "ContrastBolusAgent": "LO",
    "InstitutionalDepartmentName": "LO",
    "PerformingPhysicianName": "PN",
    "AdditionalPatientHistory": "LT",
    "DerivationDescription": "ST",
}


def _xss_everywhere(ds: Dataset, vrs: frozenset[str], keep: frozenset[str]) -> None:
    """Put an XSS string into every element of ``ds`` (and its file meta, and sequences) whose
    VR is in ``vrs``, except ``keep``; add the common technical text attributes first."""
    for keyword, vr in _EXTRA_TEXT.items():
        ds.add_new(keyword, vr, "")
    ds.file_meta.ImplementationVersionName = ""
    ds.file_meta.SourceApplicationEntityTitle = ""
    n = 0
    for dataset in (ds.file_meta, ds):
        for elem in list(dataset.iterall()):
            if elem.VR in vrs and elem.keyword not in keep:
                _set_raw(dataset, elem.tag, elem.VR, XSS[n % 2])
                n += 1
    assert n >= 20, n


def _set_raw(dataset: Dataset, tag: Any, vr: str, text: str) -> None:
    """Store ``text`` as the raw bytes of an element wherever it sits (numbers and UIDs too:
    pydicom would refuse to convert them, a hostile writer does not care)."""
    raw = text.encode()
    raw += b" " if len(raw) % 2 else b""
    for holder in [dataset, *(d for d in _datasets(dataset))]:
        if tag in holder:
            holder._dict[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)


def _datasets(ds: Dataset) -> list[Dataset]:
    out: list[Dataset] = []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out.append(item)
                out.extend(_datasets(item))
    return out


def _xss_series(vrs: frozenset[str], keep: frozenset[str], n: int) -> list[bytes]:
    series_uid = "1.2.826.0.1.3680043.8.498.81"
    study_uid = "1.2.826.0.1.3680043.8.498.82"
    frame_uid = "1.2.826.0.1.3680043.8.498.83"
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about values that break their VR
        for k in range(n):
            ds = make_ct_dataset(
                stored=np.full((8, 8), k, np.int32),
                position=(0.0, 0.0, 2.5 * k),
                series_uid=series_uid,
                study_uid=study_uid,
                frame_uid=frame_uid,
                instance_number=k + 1,
            )
            _xss_everywhere(ds, vrs, keep)
            out.append(encode(ds))
    return out


@case
def case_xss_text_attributes() -> Case:
    files = [(f"x{k}.dcm", d) for k, d in enumerate(_xss_series(_FREE_TEXT_VRS, _KEEP, 3))]
    nii = bytearray(make_nifti(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4)))
    for offset, size in ((148, 80), (228, 24), (328, 16), (4, 10), (14, 18)):
        # descrip, aux_file, intent_name, data_type, db_name
        text = (XSS[offset % 2] * 4).encode()[:size]
        nii[offset : offset + size] = text.ljust(size, b"\x00")
    png = make_png(np.arange(30, dtype=np.uint8).reshape(5, 6), Author=XSS[0], Comment=XSS[1])
    files += [("x.nii", bytes(nii)), ("x.png", png)]
    return Case(
        "",
        "XSS strings in every text attribute of a DICOM series (file meta included), in the "
        "NIfTI header text fields and in PNG text chunks",
        files,
        frozenset(),
        scans=3,
    )


def _xss_transfer_syntax(data: bytes) -> bytes:
    """``data`` with its transfer syntax UID replaced by an XSS string (group length fixed)."""
    at = data.index(b"\x02\x00\x10\x00UI")
    (length,) = struct.unpack_from("<H", data, at + 6)
    value = XSS[0].encode() + b"\x00"
    patched = data[: at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length :]
    group = patched.index(b"\x02\x00\x00\x00UL\x04\x00")
    (meta_length,) = struct.unpack_from("<I", patched, group + 8)
    fixed = struct.pack("<I", meta_length + len(value) - length)
    return patched[: group + 8] + fixed + patched[group + 12 :]


@case
def case_xss_every_string() -> Case:
    vrs = _FREE_TEXT_VRS | {"UI", "DS", "IS"}
    files = [("all.dcm", _xss_series(vrs, frozenset({"TransferSyntaxUID"}), 1)[0])]
    files.append(("ts.dcm", _xss_transfer_syntax(_dcm())))
    return Case(
        "",
        "XSS strings in every string-valued element, UIDs, numbers and the photometric "
        "interpretation included",
        files,
        frozenset({"damaged", "unsupported", "truncated", "unknown-format"}),
        scans=(0, 1),
    )


# --- one more PHI check: a multi-frame object with a name in a nested sequence --------------


@case
def case_phi_in_sequences() -> Case:
    data, _ = make_enhanced_mr()
    return Case(
        "", "an enhanced MR object (PHI markers)", [("emr.dcm", data)], frozenset(), scans=1
    )


# --------------------------------------------------------------------------------------------


CASE_IDS: tuple[str, ...] = tuple(_BUILDERS)


def make_case(case_id: str) -> Case:
    """Build one case (in memory)."""
    made = _BUILDERS[case_id]()
    made.id = case_id
    return made


def build(dest: Path) -> dict[str, Case]:
    """Write every case to ``dest/<case id>/`` and the expectations to ``dest/corpus.json``."""
    dest.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Case] = {}
    for case_id in CASE_IDS:
        made = make_case(case_id)
        folder = dest / case_id
        folder.mkdir(exist_ok=True)
        for name, data in made.files:
            (folder / name).write_bytes(data)
        cases[case_id] = made
    index = {
        "limits": LIMITS,
        "never_echoed": [*PHI_TOKENS, *XSS_TOKENS],
        "cases": {cid: c.expectation() for cid, c in cases.items()},
    }
    (dest / "corpus.json").write_text(json.dumps(index, indent=2) + "\n")
    return cases


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], "\nusage: make_corpus.py OUTPUT_FOLDER")
        return 2
    cases = build(Path(argv[0]))
    total = sum(len(d) for c in cases.values() for _, d in c.files)
    print(f"{len(cases)} cases, {total / MiB:.1f} MiB, in {argv[0]} (see corpus.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


__all__ = ["BOMB_IDS", "CASE_IDS", "LIMITS", "XSS", "XSS_TOKENS", "Case", "build", "make_case"]
