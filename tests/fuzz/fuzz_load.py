"""Fuzz ``load_scans(bytes)`` with hypothesis: mutate real and synthetic seeds, check the contract.

Run it for a set time (a clean run exits 0; findings exit 1 and are saved under ``--out``)::

    .venv/bin/python tests/fuzz/fuzz_load.py --seconds 60
    .venv/bin/python tests/fuzz/fuzz_load.py --seconds 600 --seed 7 --out /tmp/fuzz

Seeds: every file in ``sample_data/dicom/``, a phantom slice, the sample NIfTI files and the
phantom zip, plus small synthetic inputs carrying the PHI markers of ``tests/conftest.py`` (RLE,
JPEG-LS, JPEG 2000, deflated and multi-frame DICOM, a zipped series, NIfTI, PNG, JPEG). Each
example applies 1-4 mutations: byte flips and sets, truncation, deletions, duplications, splices
from another seed, and tweaks of length fields (DICOM element lengths, zip header sizes and
offsets, NIfTI dims and vox_offset, the gzip size trailer) to interesting values.

The oracle, for every example: nothing but a :class:`~medmodels.errors.MedModelsError` escapes;
the result is valid (scans pass the contract invariants, every problem code is a contract code,
something is either loaded or reported); no scan is larger than ``max_image_mb``; no Python
warning escapes (pytest runs with warnings as errors); no header value that identifies a patient
(the synthetic PHI markers, the sample files' names and IDs) appears in the result. A hang
(``--hang-seconds``) or a native crash ends the run: ``<out>/current.bin`` then holds the input.
The address space is capped (``--memory-mb``) so a runaway allocation fails instead of swapping.

Hypothesis shrinks every failure to a small mutation list before it is reported.
"""

from __future__ import annotations

import argparse
import faulthandler
import gzip
import io
import json
import os
import resource
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SAMPLE = ROOT / "sample_data"
# Patient-identifying attributes whose values (from the sample files) must never come back.
_ID_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "ReferringPhysicianName",
    "OperatorsName",
    "InstitutionAddress",
)
INTERESTING = (
    0,
    1,
    2,
    7,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
)
OPS = ("flip", "set", "truncate", "delete", "duplicate", "splice", "length", "interesting")


# --------------------------------------------------------------------------- seeds


def _synthetic_seeds() -> dict[str, bytes]:
    from conftest import (
        encode,
        make_ct_dataset,
        make_ct_series,
        make_enhanced_mr,
        make_jpeg,
        make_nifti,
        make_png,
        make_zip,
    )
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGLSLossless,
        RLELossless,
    )

    series = make_ct_series(n=3, rows=8, cols=8)
    nii = make_nifti(np.arange(160, dtype=np.int16).reshape(8, 5, 4) - 80, np.eye(4))
    emr, _ = make_enhanced_mr(frames=3, rows=8, cols=6)
    grey = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) % 251).astype(np.uint8)
    out = {
        "syn-rle.dcm": encode(make_ct_dataset(rows=16, cols=12, transfer_syntax=RLELossless)),
        "syn-jpegls.dcm": encode(make_ct_dataset(rows=16, cols=16, transfer_syntax=JPEGLSLossless)),
        "syn-j2k.dcm": encode(make_ct_dataset(rows=32, cols=32, transfer_syntax=JPEG2000Lossless)),
        "syn-deflated.dcm": encode(
            make_ct_dataset(rows=16, cols=12, transfer_syntax=DeflatedExplicitVRLittleEndian)
        ),
        "syn-enhanced-mr.dcm": emr,
        "syn-series.zip": make_zip([(f"s/{i}.dcm", d) for i, d in enumerate(series)]),
        "syn-volume.nii": nii,
        "syn-volume.nii.gz": gzip.compress(nii, mtime=0),
        "syn-image.png": make_png(grey),
        "syn-image.jpg": make_jpeg(grey),
    }
    return out


def load_seeds(include_slow: bool = True) -> dict[str, bytes]:
    """Every seed: the sample files (when present) and the synthetic ones, by name."""
    seeds: dict[str, bytes] = {}
    files = sorted((SAMPLE / "dicom").glob("*.dcm"))
    files += [
        SAMPLE / "ct-chest-phantom" / "IM-0032.dcm",
        SAMPLE / "ct-chest-phantom.nii.gz",
        SAMPLE / "mni152-t1-2mm.nii.gz",
        SAMPLE / "dipy-t1-coronal-slice.nii.gz",
    ]
    if include_slow:
        files.append(SAMPLE / "ct-chest-phantom.zip")
    for path in files:
        if path.is_file():
            seeds[path.name] = path.read_bytes()
    seeds.update(_synthetic_seeds())
    return seeds


def forbidden_tokens(seeds: dict[str, bytes]) -> tuple[str, ...]:
    """Text that must never come back: the synthetic PHI markers and the sample files'
    patient-identifying values (5 characters or more)."""
    import pydicom
    from conftest import PHI_TOKENS

    tokens = set(PHI_TOKENS)
    for name, data in seeds.items():
        if not name.endswith(".dcm") or name.startswith("syn-"):
            continue
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        except Exception:
            continue
        for keyword in _ID_KEYWORDS:
            value = str(ds.get(keyword, "") or "").strip()
            if len(value) >= 8 or (len(value) >= 5 and not value.isdigit()):
                tokens.add(value)
            if "^" in value:  # person names: each distinctive component too
                tokens.update(part for part in value.split("^") if len(part) >= 7)
    return tuple(sorted(tokens))


# --------------------------------------------------------------------------- mutations


def dicom_length_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the length field of every element header found by a linear walk of a
    Part 10 file (explicit or implicit VR little endian, into sequences and items)."""
    long_vrs = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR"}
    long_vrs |= {b"SV", b"UV"}
    out: list[tuple[int, int]] = []
    pos, end = 132, len(data)
    in_pixels = False
    while pos + 8 <= end and len(out) < 4000:
        group, elem = struct.unpack_from("<HH", data, pos)
        if group == 0xFFFE:
            (length,) = struct.unpack_from("<I", data, pos + 4)
            out.append((pos + 4, 4))
            if elem == 0xE0DD:
                in_pixels = False
            if elem == 0xE000 and length != 0xFFFFFFFF and in_pixels:
                pos += 8 + length
            else:
                pos += 8
            continue
        vr = data[pos + 4 : pos + 6]
        if vr.isalpha() and vr.isupper():
            if vr in long_vrs:
                (length,) = struct.unpack_from("<I", data, pos + 8)
                out.append((pos + 8, 4))
                header = 12
            else:
                (length,) = struct.unpack_from("<H", data, pos + 6)
                out.append((pos + 6, 2))
                header = 8
        else:
            (length,) = struct.unpack_from("<I", data, pos + 4)
            out.append((pos + 4, 4))
            header = 8
        if (group, elem) == (0x7FE0, 0x0010) and length == 0xFFFFFFFF:
            in_pixels = True
        if vr == b"SQ" or length == 0xFFFFFFFF:
            pos += header
        else:
            pos += header + length
    return out


def zip_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the sizes, name/extra lengths, counts and offsets in zip headers."""
    out: list[tuple[int, int]] = []
    layouts = {
        b"PK\x03\x04": [(18, 4), (22, 4), (26, 2), (28, 2), (8, 2), (6, 2)],
        b"PK\x01\x02": [(20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4), (10, 2)],
        b"PK\x05\x06": [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
    }
    for sig, fields in layouts.items():
        at = data.find(sig)
        while at != -1 and len(out) < 4000:
            out += [(at + off, size) for off, size in fields if at + off + size <= len(data)]
            at = data.find(sig, at + 4)
    return out


def nifti_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of sizeof_hdr, dim[0..7], datatype, bitpix, vox_offset, scl_slope,
    qform/sform codes of a NIfTI-1 header."""
    fields = [(0, 4), (70, 2), (72, 2), (108, 4), (112, 4), (252, 2), (254, 2), (344, 4)]
    fields += [(40 + 2 * i, 2) for i in range(8)]
    return [(o, s) for o, s in fields if o + s <= len(data)]


def length_fields(name: str, data: bytes) -> list[tuple[int, int]]:
    """The length-like fields of a seed, by its format."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return dicom_length_fields(data)
    if data.startswith(b"PK"):
        return zip_fields(data)
    if data.startswith(b"\x1f\x8b"):
        return [(len(data) - 4, 4), (len(data) - 8, 4)]  # ISIZE, CRC32
    if len(data) >= 348 and data[344:347] in (b"n+1", b"ni1"):
        return nifti_fields(data)
    if data.startswith(b"\x89PNG"):
        return [(8, 4), (16, 4), (20, 4), (24, 1), (25, 1)]  # IHDR length, width, height, ...
    return []


Op = tuple[int, int, int, int]


def mutate(data: bytes, ops: list[Op], fields: list[tuple[int, int]], others: list[bytes]) -> bytes:
    """Apply ``ops`` (op index, a, b, c; see :data:`OPS`) to ``data``."""
    buf = bytearray(data)
    for kind, a, b, c in ops:
        n = len(buf)
        op = OPS[kind % len(OPS)]
        if op == "truncate":
            del buf[a % (n + 1) :]
        elif n == 0:
            continue
        elif op == "flip":
            buf[a % n] ^= b % 255 + 1
        elif op == "set":
            buf[a % n] = b % 256
        elif op == "delete":
            start = a % n
            del buf[start : start + 1 + b % max(1, min(4096, n // 4))]
        elif op == "duplicate":
            start = a % n
            chunk = buf[start : start + 1 + b % 512]
            at = c % (n + 1)
            buf[at:at] = chunk
        elif op == "splice":
            other = others[b % len(others)]
            if other:
                start = c % len(other)
                chunk = other[start : start + 1 + (a >> 8) % 1024]
                at = a % n
                if c & 1:
                    buf[at:at] = chunk
                else:
                    buf[at : at + len(chunk)] = chunk
        elif op in ("length", "interesting"):
            if op == "length" and fields:
                offset, size = fields[a % len(fields)]
            else:
                offset, size = a % n, 2 if c & 1 else 4
            if offset + size > len(buf):
                continue
            current = int.from_bytes(buf[offset : offset + size], "little")
            choices = (*INTERESTING, current + 1, current - 1, current * 2, n, n - offset)
            value = choices[b % len(choices)] % (1 << (8 * size))
            buf[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(buf)


def ops_strategy() -> st.SearchStrategy[list[Op]]:
    word = st.integers(0, 2**32 - 1)
    op = st.tuples(st.integers(0, len(OPS) - 1), word, word, word)
    return st.lists(op, min_size=1, max_size=4)


# --------------------------------------------------------------------------- oracle


class Finding(AssertionError):
    """A contract violation found by the fuzzer; ``kind`` groups findings in the report."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass
class Stats:
    examples: int = 0
    per_seed: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    seconds_per_seed: Counter = field(default_factory=Counter)
    max_rss_mb: float = 0.0


def check_one(
    name: str, data: bytes, settings_obj: Any, tokens: tuple[str, ...], stats: Stats
) -> None:
    """Load ``data`` and raise :class:`Finding` if the result breaks the contract."""
    from conftest import PROBLEM_CODES, check_scan, walk_text

    from medmodels.errors import MedModelsError
    from medmodels.scans import load_scans

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = load_scans([(name, data)], settings=settings_obj)
        except MedModelsError as exc:
            stats.outcomes[f"raised {type(exc).__name__}"] += 1
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            where = next(
                (f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)),
                "?",
            )
            raise Finding(f"{type(exc).__name__} escaped at {where}", str(exc)[:200]) from exc
    escaped = [w for w in caught if "hypothesis" not in str(w.filename)]
    if escaped:
        w = escaped[0]
        where = f"{Path(str(w.filename)).name}:{w.lineno}"
        raise Finding(f"{w.category.__name__} escaped at {where}", str(w.message)[:200])
    for scan in result.scans:
        try:
            check_scan(scan)
        except AssertionError as exc:
            raise Finding("invalid scan", str(exc)[:200]) from None
        if scan.array.nbytes > settings_obj.max_image_bytes:
            raise Finding("scan over max_image_mb", f"{scan.array.nbytes} bytes")
    for problem in result.problems:
        if problem.code not in PROBLEM_CODES:
            raise Finding(f"problem code {problem.code!r} not in the contract", problem.reason)
        if not problem.reason:
            raise Finding("problem without a reason", problem.code)
    if not result.scans and not result.problems:
        raise Finding("nothing loaded and nothing reported")
    text = walk_text(result) + "\n".join(s.describe() for s in result.scans)
    leaked = [t for t in tokens if t in text]
    if leaked:
        raise Finding(
            "header value echoed", f"{len(leaked)} token(s), e.g. a {len(leaked[0])}-char one"
        )
    key = ",".join(sorted({p.code for p in result.problems})) or "ok"
    stats.outcomes[f"{len(result.scans)} scan(s), {key}"] += 1


# --------------------------------------------------------------------------- runner


@dataclass
class Run:
    seeds: dict[str, bytes]
    tokens: tuple[str, ...]
    out: Path
    settings_obj: Any
    hang_seconds: float
    stats: Stats = field(default_factory=Stats)
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def example(self, name: str, ops: list[Op]) -> None:
        seed = self.seeds[name]
        fields = _fields_cache(name, seed)
        others = [self.seeds[k] for k in sorted(self.seeds)]
        data = mutate(seed, ops, fields, others)
        (self.out / "current.bin").write_bytes(data)
        (self.out / "current.json").write_text(json.dumps({"seed": name, "ops": ops}))
        faulthandler.dump_traceback_later(self.hang_seconds, exit=True)
        start = time.perf_counter()
        try:
            check_one(name, data, self.settings_obj, self.tokens, self.stats)
        finally:
            faulthandler.cancel_dump_traceback_later()
            self.stats.examples += 1
            self.stats.per_seed[name] += 1
            self.stats.seconds_per_seed[name] += time.perf_counter() - start
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.stats.max_rss_mb = max(self.stats.max_rss_mb, rss)

    def record(self, exc: BaseException) -> None:
        failures = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        for failure in failures:
            kind = getattr(failure, "kind", None) or f"{type(failure).__name__}: {failure}"[:200]
            if kind in self.findings:
                self.findings[kind]["count"] += 1
                continue
            index = len(self.findings) + 1
            saved = self.out / f"finding-{index}.bin"
            current = self.out / "last-failing.bin"
            if current.exists():
                saved.write_bytes(current.read_bytes())
            self.findings[kind] = {
                "count": 1,
                "detail": str(failure)[:300],
                "example": getattr(failure, "_fuzz_example", None),
                "file": str(saved),
            }


_FIELDS: dict[str, list[tuple[int, int]]] = {}


def _fields_cache(name: str, data: bytes) -> list[tuple[int, int]]:
    if name not in _FIELDS:
        _FIELDS[name] = length_fields(name, data)
    return _FIELDS[name]


def run_chunk(run: Run, examples: int, chunk_seed: int, shrink: bool) -> None:
    """Run up to ``examples`` examples under one hypothesis seed; record what fails."""
    names = sorted(run.seeds)
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @hypothesis_seed(chunk_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        print_blob=False,
    )
    @given(name=st.sampled_from(names), ops=ops_strategy())
    def fuzz(name: str, ops: list[Op]) -> None:
        try:
            run.example(name, ops)
        except Finding as exc:
            (run.out / "last-failing.bin").write_bytes((run.out / "current.bin").read_bytes())
            exc._fuzz_example = {"seed": name, "ops": ops}  # type: ignore[attr-defined]
            raise

    try:
        fuzz()
    except BaseException as exc:  # hypothesis re-raises the shrunk failure(s)
        if isinstance(exc, KeyboardInterrupt):
            raise
        run.record(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--max-examples", type=int, default=0, help="stop after N (0: no cap)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of the first chunk")
    parser.add_argument("--out", type=Path, default=None, help="folder for findings")
    parser.add_argument("--hang-seconds", type=float, default=60.0, help="one example at most")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space cap")
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    parser.add_argument("--fast", action="store_true", help="leave out the 64-file phantom zip")
    args = parser.parse_args(argv)

    faulthandler.enable()
    # Rust codecs (pylibjpeg-rle) print a panic message per damaged frame (the loader turns the
    # panic into a problem); without this each one also prints a full backtrace.
    os.environ["RUST_BACKTRACE"] = "0"
    if args.memory_mb:
        limit = args.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = args.out or Path(tempfile.mkdtemp(prefix="medmodels-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)

    from medmodels.config import load_settings

    settings_obj = load_settings(max_decompressed_mb=256, max_image_mb=256, max_files=500)
    seeds = load_seeds(include_slow=not args.fast)
    run = Run(seeds, forbidden_tokens(seeds), out, settings_obj, args.hang_seconds)
    start = time.monotonic()
    chunk_seed = args.seed
    while True:
        elapsed = time.monotonic() - start
        left = args.seconds - elapsed
        done = run.stats.examples
        if left <= 0 or (args.max_examples and done >= args.max_examples):
            break
        per_example = elapsed / done if done else 0.05
        size = int(max(5, min(100, left / max(per_example, 1e-3) / 2)))
        if args.max_examples:
            size = max(1, min(size, args.max_examples - done))
        run_chunk(run, size, chunk_seed, shrink=not args.no_shrink)
        chunk_seed += 1

    elapsed = time.monotonic() - start
    stats = run.stats
    print(f"fuzz_load: {stats.examples} examples in {elapsed:.1f} s over {len(seeds)} seeds")
    print(f"peak RSS {stats.max_rss_mb:.0f} MiB; findings under {out}")
    slowest = sorted(stats.seconds_per_seed.items(), key=lambda kv: -kv[1])[:3]
    print("slowest seeds: " + ", ".join(f"{k} {v:.1f} s/{stats.per_seed[k]}" for k, v in slowest))
    print("outcomes:")
    for outcome, count in stats.outcomes.most_common(12):
        print(f"  {count:6d}  {outcome}")
    report = {
        "examples": stats.examples,
        "seconds": round(elapsed, 1),
        "findings": run.findings,
        "outcomes": dict(stats.outcomes),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    if not run.findings:
        print("no findings")
        return 0
    print(f"{len(run.findings)} finding(s):")
    for kind, info in run.findings.items():
        print(f"  {kind} (x{info['count']}): {info['example']} -> {info['file']}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
