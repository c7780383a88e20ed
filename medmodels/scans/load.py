"""Entry point of scan ingestion: ``load_scans(inputs) -> LoadResult``.

Problem codes (``FileProblem.code``), stable so they may be logged and tested:
``empty``, ``unknown-format``, ``truncated``, ``damaged``, ``no-pixel-data``, ``no-decoder``,
``too-large``, ``too-many-files``, ``too-many-entries``, ``bomb``, ``unsafe-path``,
``nested-archive``, ``image-too-large``, ``bad-geometry``, ``duplicate-slices``,
``uneven-spacing``, ``unsupported``.
"""

from __future__ import annotations

from medmodels.scans.types import LoadResult


def load_scans(inputs, *, settings=None) -> LoadResult:  # type: ignore[no-untyped-def]
    """(being written)"""
    raise NotImplementedError
