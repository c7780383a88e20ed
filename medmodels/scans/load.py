"""Entry point of scan ingestion: ``load_scans(inputs) -> LoadResult``.

Accepts any mix of: paths to files or folders (walked recursively), ``bytes``, ``(name, bytes)``
pairs, and file-like objects with a ``name`` and ``read()``/``getvalue()`` (Streamlit's
``UploadedFile``). Formats are detected by content, never by extension: DICOM (``DICM`` at byte
128), NIfTI-1/2 (header size and magic), PNG, JPEG, zip and gzip.

Problem codes (``FileProblem.code``), stable so they may be logged and tested:

=================  =============================================================================
``empty``          the file has no bytes
``unknown-format`` not DICOM, NIfTI, PNG/JPEG, zip or gzip (includes DICOM without the preamble)
``truncated``      the file ends before its declared content
``damaged``        the file cannot be parsed
``no-pixel-data``  a DICOM object without an image (report, DICOMDIR, ...)
``no-decoder``     a compressed transfer syntax that no installed decoder handles
``too-large``      the upload or a file exceeds ``max_upload_mb``
``too-many-files`` more than ``max_files`` files
``too-many-entries`` a zip lists more than ``max_zip_entries`` entries
``bomb``           inflating exceeds ``max_decompressed_mb`` or ``max_compression_ratio``
``unsafe-path``    a zip entry with ``..``, an absolute path or a drive letter
``nested-archive`` a zip inside a zip (or gzip inside gzip)
``image-too-large`` rows × columns × frames × bytes per pixel exceeds ``max_image_mb``
``bad-geometry``   inconsistent sizes, orientation or pixel spacing in a series; non-finite affine
``duplicate-slices`` two different slices at the same position
``uneven-spacing`` slice spacing varies beyond ``max_slice_gap_ratio`` (e.g. a missing slice)
``unsupported``    readable but not usable (e.g. NIfTI with more than 4 dimensions)
=================  =============================================================================
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from medmodels.config import Settings, load_settings
from medmodels.errors import FileProblem, UnreadableScanError, UploadLimitError
from medmodels.scans import dicom, nifti, raster
from medmodels.scans.limits import Budget, inflate
from medmodels.scans.types import LoadResult, Scan

Upload = str | os.PathLike | bytes | tuple[str, bytes] | IO[bytes] | Any
"""One input: a path (file or folder), raw bytes, a ``(name, bytes)`` pair, or a file-like
object with ``name`` and ``getvalue()``/``read()`` (e.g. Streamlit's ``UploadedFile``)."""

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
# Files that come along with exported series and are not images: skipped silently.
_IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "dicomdir"}


@dataclass
class _Item:
    name: str
    data: bytes
    in_archive: bool = False
    inflated: bool = False


def _problem(name: str, code: str, reason: str) -> FileProblem:
    return FileProblem(name, reason, code)


def _ignored(name: str) -> bool:
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    return base in _IGNORED_NAMES or base.startswith("._")


def iter_inputs(inputs: Upload | Iterable[Upload]) -> Iterator[Upload]:
    """The inputs one by one: a single path, bytes, pair or file object counts as one."""
    if isinstance(inputs, str | bytes | os.PathLike | tuple) or hasattr(inputs, "read"):
        yield inputs
        return
    yield from inputs


def _read_inputs(
    inputs: Upload | Iterable[Upload], budget: Budget, problems: list[FileProblem]
) -> Iterator[_Item]:
    """Yield every file of the upload (folders walked), counting bytes against the budget."""
    for i, item in enumerate(iter_inputs(inputs)):
        if isinstance(item, bytes):
            budget.add_raw(len(item))
            yield _Item(f"upload {i + 1}", item)
        elif isinstance(item, tuple):
            name, data = item
            budget.add_raw(len(data))
            yield _Item(str(name), bytes(data))
        elif isinstance(item, str | os.PathLike):
            path = Path(item)
            if path.is_dir():
                for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                    rel = str(sub.relative_to(path))
                    if any(part.startswith(".") for part in sub.relative_to(path).parts):
                        continue
                    budget.add_raw(sub.stat().st_size)
                    yield _Item(f"{path.name}/{rel}", sub.read_bytes())
            elif path.is_file():
                budget.add_raw(path.stat().st_size)
                yield _Item(str(item), path.read_bytes())
            else:
                problems.append(_problem(str(item), "unknown-format", "No such file or folder."))
        else:
            name = str(getattr(item, "name", f"upload {i + 1}"))
            size = getattr(item, "size", None)
            if isinstance(size, int):
                budget.add_raw(size)
                size_counted = True
            else:
                size_counted = False
            getvalue = getattr(item, "getvalue", None)
            data = getvalue() if callable(getvalue) else item.read()
            if not size_counted:
                budget.add_raw(len(data))
            yield _Item(name, bytes(data))


def _unsafe_member(name: str) -> bool:
    norm = name.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    return (
        norm.startswith("/")
        or (len(norm) > 1 and norm[1] == ":")
        or ".." in parts
        or "\x00" in norm
    )


def _expand_zip(item: _Item, budget: Budget, problems: list[FileProblem]) -> Iterator[_Item]:
    """Yield the entries of a zip, refusing unsafe names, nesting, bombs and too many entries."""
    try:
        archive = zipfile.ZipFile(_BytesReader(item.data))
        members = archive.infolist()
    except Exception:
        problems.append(_problem(item.name, "damaged", "The zip archive is damaged or truncated."))
        return
    if not any(not info.is_dir() for info in members):
        problems.append(_problem(item.name, "empty", "The zip archive contains no files."))
        return
    limit = budget.settings.max_zip_entries
    if len(members) > limit:
        problems.append(
            _problem(
                item.name,
                "too-many-entries",
                f"The zip lists {len(members)} entries, more than the limit of {limit} "
                "(MEDMODELS_MAX_ZIP_ENTRIES). Zip one series at a time.",
            )
        )
        return
    for info in members:
        label = f"{item.name}: {info.filename}"
        if info.is_dir() or _ignored(info.filename) or info.filename.startswith("__MACOSX/"):
            continue
        if _unsafe_member(info.filename):
            problems.append(
                _problem(
                    label,
                    "unsafe-path",
                    "The zip entry's path points outside the archive ('..' or an absolute "
                    "path); it was not extracted. Re-create the zip from the folder itself.",
                )
            )
            continue
        if info.flag_bits & 0x1:
            problems.append(
                _problem(label, "unsupported", "The zip entry is encrypted; upload it unencrypted.")
            )
            continue
        cap = budget.inflate_cap(max(info.compress_size, 1))
        if info.file_size > cap:
            problems.append(_problem(label, "bomb", str(budget.bomb(max(info.compress_size, 1)))))
            continue
        budget.add_file()
        try:
            with archive.open(info) as fh:
                chunks: list[bytes] = []
                size = 0
                while chunk := fh.read(1 << 20):
                    size += len(chunk)
                    if size > cap:
                        raise budget.bomb(max(info.compress_size, 1))
                    chunks.append(chunk)
        except UploadLimitError as exc:
            problems.append(_problem(label, "bomb", str(exc)))
            continue
        except NotImplementedError:
            problems.append(
                _problem(
                    label,
                    "unsupported",
                    "The zip entry uses a compression method this app cannot open. Re-create "
                    "the zip with standard (deflate) compression.",
                )
            )
            continue
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error):
            problems.append(_problem(label, "damaged", "The zip entry is damaged or truncated."))
            continue
        budget.inflated_bytes += size
        yield _Item(label, b"".join(chunks), in_archive=True)


class _BytesReader:
    """A seekable read-only view of bytes for zipfile (avoids a copy into BytesIO)."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        out = bytes(self._view[self._pos : end])
        self._pos = end
        return out


def detect(data: bytes) -> str | None:
    """The format of ``data`` by content: dicom, nifti, png, jpeg, zip, gzip, or None."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(ZIP_MAGIC):
        return "zip"
    if data.startswith(GZIP_MAGIC):
        return "gzip"
    if nifti.is_nifti(data[:544]):
        return "nifti"
    if data.startswith(raster.PNG_MAGIC):
        return "png"
    if data.startswith(raster.JPEG_MAGIC):
        return "jpeg"
    return None


def load_scans(
    inputs: Upload | Iterable[Upload], *, settings: Settings | None = None
) -> LoadResult:
    """Read an upload into de-identified scans, reporting every file that could not be used.

    Never raises for bad files (they become ``problems``); raises only
    :class:`~medmodels.errors.UploadLimitError` when the upload as a whole is over a limit
    (too many bytes or files), since nothing after that point could be trusted to be complete.
    Call :meth:`LoadResult.raise_if_empty` to turn "nothing loaded" into an error.
    """
    settings = settings or load_settings()
    budget = Budget(settings)
    result = LoadResult()
    parsed: list[dicom.ParsedDicom] = []
    others: list[Scan] = []

    def handle(item: _Item) -> None:
        if not item.data:
            result.problems.append(_problem(item.name, "empty", "The file is empty (0 bytes)."))
            return
        kind = detect(item.data)
        if kind == "gzip":
            if item.inflated:
                result.problems.append(
                    _problem(item.name, "nested-archive", "Nested compression is not accepted.")
                )
                return
            try:
                inner = inflate(item.data, wbits=31, budget=budget)
            except UploadLimitError as exc:
                result.problems.append(_problem(item.name, "bomb", str(exc)))
                return
            except (ValueError, EOFError, OSError):
                result.problems.append(
                    _problem(item.name, "truncated", "The gzip data is truncated or damaged.")
                )
                return
            handle(_Item(item.name, inner, item.in_archive, inflated=True))
            return
        try:
            if kind == "dicom":
                parsed.append(dicom.parse(item.name, item.data, budget, settings.max_image_bytes))
            elif kind == "nifti":
                others.append(
                    nifti.load(item.name, item.data, max_image_bytes=settings.max_image_bytes)
                )
            elif kind in ("png", "jpeg"):
                others.append(
                    raster.load(item.name, item.data, max_image_bytes=settings.max_image_bytes)
                )
            elif kind == "zip":
                if item.in_archive or item.inflated:
                    result.problems.append(
                        _problem(
                            item.name,
                            "nested-archive",
                            "Archives inside archives are not opened. Unzip the inner archive "
                            "and upload its files.",
                        )
                    )
                    return
                for entry in _expand_zip(item, budget, result.problems):
                    handle(entry)
            else:
                result.problems.append(
                    _problem(
                        item.name,
                        "unknown-format",
                        "Not a medical image this app reads (DICOM, NIfTI, PNG or JPEG). If it "
                        "is DICOM without the standard 'DICM' header, re-export it as DICOM "
                        "Part 10 from the PACS or viewer.",
                    )
                )
        except UploadLimitError as exc:
            if exc.code in ("too-large", "too-many-files"):
                raise
            result.problems.extend(exc.problems or [_problem(item.name, exc.code, str(exc))])
        except UnreadableScanError as exc:
            result.problems.extend(exc.problems or [_problem(item.name, exc.code, str(exc))])
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:
            # Last line of defence: a reader or codec failed in a way not foreseen above
            # (codec panics from Rust bindings derive from BaseException).
            result.problems.append(
                _problem(item.name, "damaged", "The file is damaged and cannot be read.")
            )

    try:
        for item in _read_inputs(inputs, budget, result.problems):
            if _ignored(item.name):
                continue
            budget.add_file()
            handle(item)
    except UploadLimitError as exc:
        result.problems.append(_problem("upload", exc.code, str(exc)))
        return result
    scans, problems, notes = dicom.assemble(parsed, gap_tolerance=settings.max_slice_gap_ratio)
    result.scans.extend(scans)
    result.scans.extend(others)
    result.problems.extend(problems)
    result.warnings.extend(notes)
    return result
