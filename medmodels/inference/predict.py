"""Run one model version on one scan, exactly as its manifest declares.

``check_fit`` says in plain words why a scan does not suit a model; ``predict`` checks, then
preprocesses, runs onnxruntime (``slice2d`` models in batches of slices), applies the activation
and postprocessing, maps the result back onto the scan's grid and measures every stage. Nothing
here knows any particular model: a new model needs only its folder in the store.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medmodels.errors import ScanMismatchError
from medmodels.inference import ops
from medmodels.inference.runtime import get_session, runtime_version
from medmodels.scans.types import Scan
from medmodels.store.manifest import (
    Argmax,
    ChannelRepeat,
    Clip,
    FillHoles,
    KeepLargest,
    Manifest,
    MinMax,
    RemoveSmall,
    ResampleSpacing,
    ResizePad,
    ScaleOffset,
    Threshold,
    Window,
    ZScore,
)
from medmodels.store.store import ModelVersion

# Slices per onnxruntime call for slice2d models whose batch axis is dynamic.
BATCH_SLICES = 16
_UNITS_MODALITY = {"HU": {"CT"}}
_UNITS_TEXT = {
    "HU": "Hounsfield units",
    "MR-arbitrary": "MR signal (arbitrary units)",
    "0-255": "8-bit grey values (0–255)",
    "0-1": "values scaled to 0–1",
    "raw": "stored values",
}
_NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "uint8": np.uint8,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}


@dataclass(frozen=True)
class LabelResult:
    """One output label: its probability (classification) or its size (segmentation)."""

    index: int
    name: str
    colour: str
    probability: float | None = None
    voxels: int | None = None
    volume_ml: float | None = None
    largest_slice: int | None = None


@dataclass(frozen=True, eq=False)
class Prediction:
    """What one model version said about one scan, and how it got there."""

    model: str
    version: str
    task: str
    model_sha256: str
    manifest_sha256: str
    onnxruntime_version: str
    provider: str
    timings_ms: dict[str, float]
    labels: tuple[LabelResult, ...]
    top_label: str | None = None
    top_probability: float | None = None
    decision: bool | None = None
    threshold: float | None = None
    label_volume: np.ndarray | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def volumes_ml(self) -> dict[str, float | None]:
        """Segmentation: label name → volume in mL (None when the spacing is unknown)."""
        return {lab.name: lab.volume_ml for lab in self.labels if lab.voxels is not None}

    @property
    def probabilities(self) -> dict[str, float]:
        """Classification: label name → probability."""
        return {lab.name: lab.probability for lab in self.labels if lab.probability is not None}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no arrays)."""
        result: dict[str, Any]
        if self.task == "classification":
            result = {
                "labels": self.probabilities,
                "top_label": self.top_label,
                "top_probability": self.top_probability,
                "threshold": self.threshold,
                "decision": self.decision,
            }
        else:
            result = {
                "volumes_ml": self.volumes_ml,
                "voxels": {lab.name: lab.voxels for lab in self.labels},
                "largest_slice": {lab.name: lab.largest_slice for lab in self.labels},
            }
        return {
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "model_sha256": self.model_sha256,
            "manifest_sha256": self.manifest_sha256,
            "onnxruntime_version": self.onnxruntime_version,
            "provider": self.provider,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "result": result,
            "warnings": list(self.warnings),
        }


def fit_problems(scan: Scan, manifest: Manifest) -> list[str]:
    """Every reason, in plain words, why ``scan`` does not suit the model (empty if it fits)."""
    spec = manifest.input
    reasons: list[str] = []
    wanted = ", ".join(spec.modalities)
    units = _UNITS_TEXT.get(spec.units, spec.units)
    if scan.modality not in spec.modalities:
        reasons.append(f"This model expects {wanted} in {units}; the upload is {scan.modality}.")
    elif spec.units in _UNITS_MODALITY and scan.modality not in _UNITS_MODALITY[spec.units]:
        reasons.append(f"This model expects {units}, which a {scan.modality} scan does not have.")
    dims = spec.dimensionality
    if dims == "volume3d" and scan.kind != "volume":
        reasons.append(
            f"This model needs a 3D volume (several slices); the upload is a single {scan.kind}."
        )
    if dims == "image2d" and scan.shape[0] != 1:
        reasons.append(
            f"This model reads one 2D image; the upload is a volume of {scan.shape[0]} slices. "
            "Choose a single image."
        )
    if dims == "slice2d" and scan.kind == "image":
        reasons.append(
            "This model reads cross-sectional slices (CT/MR); the upload is a projection image."
        )
    if spec.spacing_range_mm is not None:
        low, high = spec.spacing_range_mm
        if scan.spacing_mm is None:
            reasons.append(
                f"This model needs pixel spacing between {low:g} and {high:g} mm; the upload "
                "does not record its pixel spacing."
            )
        else:
            in_plane = scan.spacing_mm[:2]
            if any(s < low or s > high for s in in_plane):
                got = " × ".join(f"{s:.2f}" for s in in_plane)
                reasons.append(
                    f"This model accepts pixel spacing between {low:g} and {high:g} mm; the "
                    f"upload has {got} mm."
                )
    return reasons


def check_fit(scan: Scan, manifest: Manifest) -> None:
    """Raise :class:`ScanMismatchError` with every reason the scan does not suit the model."""
    reasons = fit_problems(scan, manifest)
    if reasons:
        raise ScanMismatchError(" ".join(reasons))


# --------------------------------------------------------------------------- preprocessing


@dataclass
class _Prepared:
    """The model-ready tensor and what is needed to map outputs back onto the scan."""

    tensor: np.ndarray
    undo: list[tuple[str, Any]]
    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float] | None


def _preprocess(scan: Scan, manifest: Manifest) -> _Prepared:
    spec = manifest.input
    a: np.ndarray = scan.array.astype(np.float32)
    spacing = scan.spacing_mm
    undo: list[tuple[str, Any]] = []
    channels = 1
    for step in spec.preprocessing:
        if isinstance(step, Window):
            a = ops.window(a, center=step.center, width=step.width)
        elif isinstance(step, Clip):
            a = ops.clip(a, min=step.min, max=step.max)
        elif isinstance(step, ZScore):
            a = ops.zscore(a, mean=step.mean, std=step.std, mask_above=step.mask_above)
        elif isinstance(step, MinMax):
            a = ops.minmax(a)
        elif isinstance(step, ScaleOffset):
            a = ops.scale_offset(a, scale=step.scale, offset=step.offset)
        elif isinstance(step, ResampleSpacing):
            if spacing is None:
                raise ScanMismatchError(
                    "This model resamples to a fixed spacing, but the upload does not record "
                    "its pixel spacing."
                )
            target: list[float | None] = [*step.spacing_mm, None, None][:3]
            if spec.dimensionality != "volume3d":
                target[2] = None  # slices are never resampled across z
            before = a.shape
            a, new_spacing = ops.resample_spacing(
                a, spacing, target_xyz=tuple(target), order=step.order
            )
            undo.append(("resample", before))
            spacing = (float(new_spacing[0]), float(new_spacing[1]), float(new_spacing[-1]))
        elif isinstance(step, ResizePad):
            a, box = ops.resize_pad(a, rows=step.rows, cols=step.cols, mode=step.mode)
            undo.append(("resize_pad", box))
        elif isinstance(step, ChannelRepeat):
            channels = step.n
    if spec.dimensionality == "volume3d":
        tensor = np.repeat(a[np.newaxis, np.newaxis], channels, axis=1)  # [1, C, z, y, x]
    else:
        tensor = ops.channel_repeat(a, n=channels)  # [z, C, y, x]
    dtype = _NUMPY_DTYPES.get(spec.dtype, np.float32)
    return _Prepared(
        np.ascontiguousarray(tensor, dtype=dtype),
        undo,
        scan.shape,
        spacing,
    )


# --------------------------------------------------------------------------- run + postprocess


def _activate(x: np.ndarray, activation: str, axis: int) -> np.ndarray:
    if activation == "softmax":
        return ops.softmax(x, axis=axis)
    if activation == "sigmoid":
        return ops.sigmoid(x)
    return x.astype(np.float32, copy=False)


def _to_labels(probs: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Probabilities [N, C, ...] → labels [N, ...] by the first argmax/threshold step."""
    for step in manifest.output.postprocessing:
        if isinstance(step, Argmax):
            return ops.argmax(probs, axis=1)
        if isinstance(step, Threshold):
            return ops.threshold(probs[:, 0] if probs.shape[1] == 1 else probs, value=step.value)
    # A segmentation manifest without an explicit step: argmax for several channels.
    if probs.shape[1] == 1:
        return ops.threshold(probs[:, 0], value=manifest.output.threshold or 0.5)
    return ops.argmax(probs, axis=1)


def _run(session: Any, prepared: _Prepared, manifest: Manifest) -> tuple[np.ndarray, float]:
    """Run the model; segmentation returns labels [z, y, x], classification probs [N, C]."""
    input_name = manifest.input.name
    output_name = manifest.output.names[0]
    tensor = prepared.tensor
    batch_dim = manifest.input.shape[0] if manifest.input.shape else None
    fixed_batch = isinstance(batch_dim, int) and batch_dim > 0
    step = int(batch_dim) if fixed_batch else BATCH_SLICES  # type: ignore[arg-type]
    if manifest.input.dimensionality == "volume3d":
        step = tensor.shape[0]
    outputs: list[np.ndarray] = []
    infer_ms = 0.0
    activation = manifest.output.activation
    segmentation = manifest.task == "segmentation"
    for start in range(0, tensor.shape[0], step):
        batch = tensor[start : start + step]
        t0 = time.perf_counter()
        (out,) = session.run([output_name], {input_name: batch})
        infer_ms += (time.perf_counter() - t0) * 1000
        probs = _activate(np.asarray(out), activation, axis=1)
        if segmentation:
            labels = _to_labels(probs, manifest)
            if manifest.input.dimensionality == "volume3d":
                labels = labels[0]
            outputs.append(labels.astype(np.uint8, copy=False))
        else:
            outputs.append(probs.reshape(probs.shape[0], -1))
    return np.concatenate(outputs, axis=0), infer_ms


def _undo(labels: np.ndarray, prepared: _Prepared) -> np.ndarray:
    for kind, info in reversed(prepared.undo):
        if kind == "resize_pad":
            labels = ops.undo_resize_pad(labels, info, order=0)
        elif kind == "resample":
            labels = ops.resample_to_shape(labels, info, order=0)
    if labels.shape != prepared.shape_zyx:
        raise ScanMismatchError(
            "The model's output does not match the scan's size after undoing preprocessing; "
            "its manifest's output spec is wrong."
        )
    return labels.astype(np.uint8, copy=False)


def _postprocess_labels(
    labels: np.ndarray, manifest: Manifest, voxel_ml: float | None
) -> np.ndarray:
    for step in manifest.output.postprocessing:
        if isinstance(step, KeepLargest):
            labels = ops.keep_largest(labels, n=step.n, labels_to_apply=step.labels)
        elif isinstance(step, FillHoles):
            labels = ops.fill_holes(labels, labels_to_apply=step.labels)
        elif isinstance(step, RemoveSmall) and voxel_ml is not None:
            labels = ops.remove_small(labels, min_ml=step.min_ml, voxel_volume_ml=voxel_ml)
    return labels


def predict(
    scan: Scan,
    model: ModelVersion,
    *,
    providers: Sequence[str] | None = None,
    threshold: float | None = None,
) -> Prediction:
    """Run ``model`` on ``scan`` as its manifest declares and describe the result.

    Raises :class:`~medmodels.errors.ScanMismatchError` (with every reason) when the scan does
    not suit the model. ``threshold`` overrides the manifest's classification threshold.
    """
    manifest = model.manifest
    check_fit(scan, manifest)
    t_start = time.perf_counter()
    session, _created = get_session(model.model_path, model.model_sha256, providers)
    t_loaded = time.perf_counter()
    prepared = _preprocess(scan, manifest)
    t_pre = time.perf_counter()
    raw, infer_ms = _run(session, prepared, manifest)
    prepared.tensor = np.empty(0, dtype=np.float32)  # the model input is no longer needed
    t_inf = time.perf_counter()
    labels_spec = sorted(manifest.output.labels, key=lambda lab: lab.index)
    results: list[LabelResult] = []
    top_label = top_prob = decision = None
    cut = threshold if threshold is not None else manifest.output.threshold
    label_volume = None
    if manifest.task == "segmentation":
        voxel_ml = scan.voxel_volume_ml
        label_volume = _postprocess_labels(_undo(raw, prepared), manifest, voxel_ml)
        indices = [lab.index for lab in labels_spec]
        counts = ops.count_values(label_volume, max(max(indices) + 1, int(label_volume.max()) + 1))
        for lab in labels_spec:
            voxels = int(counts[lab.index]) if lab.index < len(counts) else 0
            results.append(
                LabelResult(
                    lab.index,
                    lab.name,
                    lab.colour,
                    voxels=voxels,
                    volume_ml=None if voxel_ml is None else voxels * voxel_ml,
                    largest_slice=ops.largest_slice(label_volume, label=lab.index),
                )
            )
    else:
        probs = raw.mean(axis=0)  # slice2d classification: the mean over slices
        for lab in labels_spec:
            p = float(probs[lab.index]) if lab.index < probs.shape[0] else float("nan")
            results.append(LabelResult(lab.index, lab.name, lab.colour, probability=p))
        best = max(results, key=lambda r: r.probability or 0.0)
        top_label, top_prob = best.name, best.probability
        if cut is not None:
            positive = results[-1] if len(results) > 1 else results[0]
            decision = bool((positive.probability or 0.0) >= cut)
    t_post = time.perf_counter()
    timings = {
        "load": (t_loaded - t_start) * 1000,
        "preprocess": (t_pre - t_loaded) * 1000,
        "infer": infer_ms,
        "postprocess": (t_post - t_inf) * 1000 + ((t_inf - t_pre) * 1000 - infer_ms),
        "total": (t_post - t_start) * 1000,
    }
    provider = session.get_providers()[0]
    return Prediction(
        model=model.name,
        version=model.version,
        task=manifest.task,
        model_sha256=model.model_sha256,
        manifest_sha256=model.manifest_sha256,
        onnxruntime_version=runtime_version(),
        provider=provider,
        timings_ms=timings,
        labels=tuple(results),
        top_label=top_label,
        top_probability=top_prob,
        decision=decision,
        threshold=cut,
        label_volume=label_volume,
        warnings=tuple(scan.warnings),
    )
