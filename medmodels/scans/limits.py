"""Limits on what an upload may cost, enforced before the memory is spent.

:class:`Budget` counts bytes read, bytes inflated and files seen across one upload; the
``inflate_*`` helpers decompress in chunks and stop as soon as a cap or the compression-ratio
limit is passed, so a few-KB bomb never becomes gigabytes in memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from medmodels.config import Settings
from medmodels.errors import UploadLimitError

_CHUNK = 1 << 20
# Small streams may legitimately compress far beyond any sane ratio (an all-zero 8×8 image);
# the ratio limit only applies once the output is larger than this.
_RATIO_FLOOR = 1 << 20


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class Budget:
    """What one upload has used so far, against the limits in :class:`Settings`."""

    settings: Settings
    raw_bytes: int = 0
    inflated_bytes: int = 0
    files: int = 0

    def add_raw(self, n: int) -> None:
        """Count ``n`` uploaded bytes; raise when the upload gets too large."""
        self.raw_bytes += n
        if self.raw_bytes > self.settings.max_upload_bytes:
            raise UploadLimitError(
                f"The upload is larger than the limit of {self.settings.max_upload_mb} MiB. "
                "Upload fewer files, or raise MEDMODELS_MAX_UPLOAD_MB.",
                code="too-large",
            )

    def add_file(self) -> None:
        """Count one file; raise when the upload holds too many."""
        self.files += 1
        if self.files > self.settings.max_files:
            raise UploadLimitError(
                f"The upload holds more than {self.settings.max_files} files. Upload one series "
                "at a time, or raise MEDMODELS_MAX_FILES.",
                code="too-many-files",
            )

    def inflate_cap(self, compressed_size: int) -> int:
        """Most bytes a stream of ``compressed_size`` may inflate to right now."""
        left = self.settings.max_decompressed_bytes - self.inflated_bytes
        by_ratio = max(compressed_size * self.settings.max_compression_ratio, _RATIO_FLOOR)
        return max(0, min(left, by_ratio))

    def bomb(self, compressed_size: int) -> UploadLimitError:
        """The error for a stream that inflated past its cap."""
        left = self.settings.max_decompressed_bytes - self.inflated_bytes
        by_ratio = compressed_size * self.settings.max_compression_ratio
        if by_ratio < left:
            why = (
                f"it inflates more than {self.settings.max_compression_ratio} times its size, "
                "which only a decompression bomb does"
            )
        else:
            why = (
                f"inflated, the upload would exceed {self.settings.max_decompressed_mb} MiB "
                "(MEDMODELS_MAX_DECOMPRESSED_MB)"
            )
        return UploadLimitError(
            f"Refused: {why}. Upload the files uncompressed or in smaller parts.", code="bomb"
        )


def inflate(data: bytes, *, wbits: int, budget: Budget) -> bytes:
    """Decompress zlib/gzip/raw-deflate ``data`` (``wbits`` as for :mod:`zlib`) under the budget.

    Handles concatenated gzip members. Raises ``UploadLimitError(code="bomb")`` as soon as the
    output passes the cap, and ``ValueError`` for a damaged or truncated stream.
    """
    cap = budget.inflate_cap(len(data))
    out: list[bytes] = []
    size = 0
    pending = data
    while pending:
        d = zlib.decompressobj(wbits)
        buf = pending
        while True:
            try:
                chunk = d.decompress(buf, _CHUNK)
            except zlib.error:
                raise ValueError("the compressed stream is damaged") from None
            size += len(chunk)
            if size > cap:
                raise budget.bomb(len(data))
            out.append(chunk)
            buf = d.unconsumed_tail
            if not buf and len(chunk) < _CHUNK:
                break
        if not d.eof:
            raise ValueError("the compressed stream ends early (truncated)")
        pending = d.unused_data if wbits > 16 else b""
        if pending and not pending.startswith(b"\x1f\x8b"):
            break
    budget.inflated_bytes += size
    return b"".join(out)
