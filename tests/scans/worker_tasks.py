"""Functions the decode-worker tests run inside a worker process (importable by the child)."""

from __future__ import annotations

import os
import time

import numpy as np


def crash() -> None:
    """Stand-in for a native decoder that crashes the process."""
    os.abort()


def hang() -> None:
    """Stand-in for a decoder stuck in a loop."""
    time.sleep(600)


def allocate(mb: int) -> int:
    """Stand-in for a decompression bomb: touch ``mb`` MiB."""
    block = np.ones(mb * 1024 * 1024, dtype=np.uint8)
    return int(block.sum())


def pid() -> int:
    return os.getpid()
