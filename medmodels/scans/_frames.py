"""Length-prefixed frames over a pipe, shared by the decode pool and its worker processes."""

from __future__ import annotations

import struct
from typing import IO

HEADER = struct.Struct("!Q")


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed frame, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    return data if len(data) == size else None


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one length-prefixed frame and flush."""
    stream.write(HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()
