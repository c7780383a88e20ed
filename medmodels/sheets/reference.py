"""The reference input a sheet is measured on: a sample scan, or a synthetic one.

A model's reference scan is chosen from its manifest: CT models (slices or volumes) get the CT
chest phantom (``sample_data/ct-chest-phantom``, 64 slices of 256×256), MR slice and volume
models get the MNI152 T1 template (``sample_data/mni152-t1-2mm.nii.gz``); a slice model that
these do not suit tries a single real slice next (see :data:`SAMPLES`). Anything else, or no
sample that suits the model (e.g. its pixel spacing is out of the declared range), gets a
seeded synthetic scan of the declared size, and the reference says why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from medmodels.config import Settings, load_settings
from medmodels.inference import fit_problems
from medmodels.scans import load_scans
from medmodels.scans.types import Scan
from medmodels.sheets.errors import SheetError
from medmodels.store.manifest import Manifest, ResizePad

SAMPLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("CT", "slice2d"): ("ct-chest-phantom", "dicom/CT_small.dcm"),
    ("CT", "volume3d"): ("ct-chest-phantom",),
    ("MR", "slice2d"): ("mni152-t1-2mm.nii.gz", "dipy-t1-coronal-slice.nii.gz"),
    ("MR", "volume3d"): ("mni152-t1-2mm.nii.gz",),
}
"""(modality, dimensionality) → samples under ``Settings.sample_data``, in order of preference;
the first that suits the model is its reference."""

SYNTHETIC_SEED = 20240102
DEFAULT_SIZE = 256
DEFAULT_SLICES = {"image2d": 1, "slice2d": 32, "volume3d": 64}


class Reference(BaseModel):
    """What a measurement ran on (no absolute paths: sheets travel between machines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sample", "synthetic"]
    name: str
    description: str
    modality: str
    shape_zyx: tuple[int, int, int]
    spacing_mm: tuple[float, float, float] | None = None
    units: str = ""
    scan_kind: Literal["volume", "slice", "image"] = "volume"
    seed: int | None = None
    note: str | None = None

    @property
    def slices(self) -> int:
        """Slices (or 1 for an image) in one prediction."""
        return self.shape_zyx[0]


def _in_plane(manifest: Manifest) -> tuple[int, int]:
    shape = manifest.input.shape
    rows, cols = shape[-2], shape[-1]
    if isinstance(rows, int) and isinstance(cols, int):
        return rows, cols
    for step in manifest.input.preprocessing:
        if isinstance(step, ResizePad):
            return step.rows, step.cols
    return DEFAULT_SIZE, DEFAULT_SIZE


def synthetic_reference(
    manifest: Manifest,
    *,
    shape_zyx: tuple[int, int, int] | None = None,
    note: str | None = None,
) -> Reference:
    """A seeded synthetic scan of the size the manifest declares (or ``shape_zyx``)."""
    spec = manifest.input
    if shape_zyx is None:
        rows, cols = _in_plane(manifest)
        slices = DEFAULT_SLICES[spec.dimensionality]
        if spec.dimensionality == "volume3d" and isinstance(spec.shape[-3], int):
            slices = spec.shape[-3]
        shape_zyx = (slices, rows, cols)
    if spec.spacing_range_mm is not None:
        low, high = spec.spacing_range_mm
        s = round((low + high) / 2, 3)
    else:
        s = 1.0
    modality = spec.modalities[0]
    z, y, x = shape_zyx
    kind: Literal["volume", "slice", "image"] = "volume" if z > 1 else "slice"
    if spec.dimensionality == "image2d":
        kind = "image"
    return Reference(
        kind="synthetic",
        name="synthetic",
        description=f"synthetic {modality} {kind}, {z} slice(s) of {x}×{y}, seed {SYNTHETIC_SEED}",
        modality=modality,
        shape_zyx=(int(z), int(y), int(x)),
        spacing_mm=(s, s, s),
        units=spec.units,
        scan_kind=kind,
        seed=SYNTHETIC_SEED,
        note=note,
    )


def synthetic_scan(reference: Reference) -> Scan:
    """The scan a synthetic reference describes (same seed, same values, every time)."""
    rng = np.random.default_rng(reference.seed)
    shape = reference.shape_zyx
    units = reference.units
    array: np.ndarray
    if units == "HU":
        array = np.clip(rng.normal(-200.0, 400.0, shape), -1024, 3000).astype(np.int16)
    elif units == "0-1":
        array = rng.random(shape, dtype=np.float32)
    elif units == "0-255":
        array = rng.integers(0, 256, shape).astype(np.int16)
    else:
        array = rng.integers(0, 4096, shape).astype(np.int16)
    spacing = reference.spacing_mm or (1.0, 1.0, 1.0)
    affine = np.diag([*spacing, 1.0])
    return Scan(
        array=array,
        spacing_mm=spacing,
        affine=affine,
        modality=reference.modality,
        kind=reference.scan_kind,
        summary={"synthetic": True},
        source_format="synthetic",
    )


def sample_path(reference: Reference, settings: Settings | None = None) -> Path:
    """Where a sample reference's files are on this machine."""
    settings = settings or load_settings()
    return Path(settings.sample_data) / reference.name


def load_reference(reference: Reference, settings: Settings | None = None) -> Scan:
    """Read (or generate) the reference's scan."""
    if reference.kind == "synthetic":
        return synthetic_scan(reference)
    path = sample_path(reference, settings)
    result = load_scans([path], settings=settings)
    if not result.scans:
        raise SheetError(
            f"the reference scan {reference.name} cannot be read from {path}; check that "
            "MEDMODELS_SAMPLE_DATA points at the sample_data folder"
        )
    return result.scans[0]


def choose_reference(
    manifest: Manifest, settings: Settings | None = None
) -> tuple[Reference, Scan]:
    """The reference input for a model and its scan (see the module docstring)."""
    settings = settings or load_settings()
    spec = manifest.input
    names = [name for m in spec.modalities for name in SAMPLES.get((m, spec.dimensionality), ())]
    notes: list[str] = []
    for name in names:
        path = Path(settings.sample_data) / name
        if not os.path.exists(path):
            notes.append(f"the sample scan {name} is not in {settings.sample_data}")
            continue
        result = load_scans([path], settings=settings)
        if not result.scans:
            notes.append(f"the sample scan {name} could not be read")
            continue
        scan = result.scans[0]
        problems = fit_problems(scan, manifest)
        if problems:
            notes.append(f"the sample scan {name} does not suit the model: {' '.join(problems)}")
            continue
        reference = Reference(
            kind="sample",
            name=name,
            description=f"sample_data/{name}: {scan.describe()}",
            modality=scan.modality,
            shape_zyx=scan.shape,
            spacing_mm=scan.spacing_mm,
            units=spec.units,
            scan_kind=scan.kind,
        )
        return reference, scan
    if not names:
        notes.append(
            f"no sample scan for {'/'.join(spec.modalities)} {spec.dimensionality} models "
            "in sample_data"
        )
    reference = synthetic_reference(manifest, note="; ".join(notes))
    return reference, synthetic_scan(reference)
