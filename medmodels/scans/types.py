"""The :class:`Scan` every loader produces and the :class:`LoadResult` of one upload.

Axis and coordinate conventions (the same as SimpleITK's, which most imaging code expects):

* ``Scan.array`` is indexed ``[z, y, x]`` = ``[slice, row, column]``. A 2D image has one slice
  (shape ``(1, rows, columns)``). Values are in the scan's physical units: Hounsfield units for
  CT (rescale slope/intercept applied), stored values otherwise; MONOCHROME1 is inverted so that
  higher always means brighter. dtype is ``int16`` when the values are integers that fit,
  otherwise ``float32``.
* ``spacing_mm``, ``origin_mm`` and the columns of ``direction`` are in ``(x, y, z)`` order:
  column spacing, row spacing, slice spacing.
* ``affine`` maps a voxel index ``(x, y, z, 1)`` to patient coordinates in millimetres in the
  DICOM LPS frame (+x towards the patient's left, +y posterior, +z superior). NIfTI input (RAS)
  is converted to LPS and its voxel axes reoriented so that x runs right→left, y anterior→
  posterior and z inferior→superior, the usual order of an axial DICOM series; DICOM series keep
  their acquired in-plane orientation and are sorted along the slice normal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from medmodels.errors import FileProblem, UnreadableScanError

ScanKind = Literal["volume", "slice", "image"]
"""``volume``: several slices with 3D geometry; ``slice``: one cross-sectional slice (CT/MR) with
geometry; ``image``: a projection or photograph (radiograph, PNG/JPEG) with no 3D geometry."""


@dataclass(frozen=True, eq=False)
class Scan:
    """One de-identified image or volume, ready for a model.

    Nothing in a Scan identifies a patient: no names, IDs, dates, UIDs, institutions,
    descriptions or file names. ``removed`` lists the *names* of identifying attributes that
    were present in the input and dropped; ``summary`` holds only technical, allow-listed facts.
    """

    array: np.ndarray
    spacing_mm: tuple[float, float, float] | None
    affine: np.ndarray | None
    modality: str
    kind: ScanKind
    summary: Mapping[str, Any]
    warnings: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    source_format: str = ""
    file_count: int = 1
    fingerprint: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, columns)``."""
        z, y, x = self.array.shape
        return (int(z), int(y), int(x))

    @property
    def voxel_volume_ml(self) -> float | None:
        """Volume of one voxel in millilitres, or None when the spacing is unknown."""
        if self.spacing_mm is None:
            return None
        sx, sy, sz = self.spacing_mm
        return sx * sy * sz / 1000.0

    def describe(self) -> str:
        """A one-line PHI-free description.

        For example ``CT volume, 64 slices of 256×256, 1.50×1.50×5.00 mm``.
        """
        z, y, x = self.shape
        what = f"{self.modality} {self.kind}"
        size = f"{z} slices of {x}×{y}" if self.kind == "volume" else f"{x}×{y}"
        if self.spacing_mm is None:
            spacing = "spacing unknown"
        else:
            spacing = "×".join(f"{s:.2f}" for s in self.spacing_mm) + " mm"
        return f"{what}, {size}, {spacing}"


@dataclass
class LoadResult:
    """What one upload turned into: every scan found, and every file that could not be used.

    Several series in one upload come back as several scans, never merged. ``problems`` lists
    every rejected file with its reason (not only the first). ``warnings`` are upload-level
    remarks (e.g. ignored files).
    """

    scans: list[Scan] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_if_empty(self) -> LoadResult:
        """Return self when at least one scan loaded, else raise :class:`UnreadableScanError`."""
        if self.scans:
            return self
        if not self.problems:
            raise UnreadableScanError(
                "The upload contained no files. Choose DICOM, NIfTI, PNG/JPEG files, a folder or "
                "a zip.",
                code="empty",
            )
        lines = "; ".join(str(p) for p in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        raise UnreadableScanError(
            f"No scan could be read from the upload: {lines}{more}", self.problems
        )
