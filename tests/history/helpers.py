"""Tiny hand-built scans, predictions, rows and models for the history tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medmodels.history.db import Database
from medmodels.history.log import prediction_row, write_row
from medmodels.inference.predict import LabelResult, Prediction
from medmodels.scans.types import Scan
from medmodels.store import Manifest, ModelStore

ROOT = Path(__file__).resolve().parents[2]


def make_scan(
    array: np.ndarray | None = None,
    *,
    modality: str = "CT",
    spacing: tuple[float, float, float] | None = (0.7, 0.7, 2.5),
    manufacturer: str | None = "Acme",
    fingerprint: str = "f" * 32,
    slice_thickness: float | None = 2.5,
) -> Scan:
    """A small volume with an allow-listed summary, as the loader would return it."""
    if array is None:
        array = np.arange(2 * 4 * 4, dtype=np.int16).reshape(2, 4, 4)
    return Scan(
        array=array,
        spacing_mm=spacing,
        affine=None,
        modality=modality,
        kind="volume" if array.shape[0] > 1 else "slice",
        summary={
            "manufacturer": manufacturer,
            "manufacturer_model": "Model X",
            "body_part": "CHEST",
            "slice_thickness_mm": slice_thickness,
        },
        source_format="DICOM",
        fingerprint=fingerprint,
    )


def make_prediction(
    *,
    model: str = "lung-mask",
    version: str = "1.0.0",
    task: str = "segmentation",
    volume_ml: float | None = 10.0,
    probability: float = 0.8,
    timings: dict[str, float] | None = None,
    label_volume: np.ndarray | None = None,
) -> Prediction:
    """A segmentation (background + lung of ``volume_ml``) or a two-class classification."""
    if task == "segmentation":
        labels: tuple[LabelResult, ...] = (
            LabelResult(0, "background", "#000000", voxels=100, volume_ml=50.0),
            LabelResult(1, "lung", "#ff0000", voxels=20, volume_ml=volume_ml, largest_slice=1),
        )
        top = prob = None
        decision = threshold = None
    else:
        labels = (
            LabelResult(0, "normal", "#00ff00", probability=1 - probability),
            LabelResult(1, "nodule", "#ff0000", probability=probability),
        )
        top = "nodule" if probability >= 0.5 else "normal"
        prob = max(probability, 1 - probability)
        decision, threshold = probability >= 0.5, 0.5
    return Prediction(
        model=model,
        version=version,
        task=task,
        model_sha256="a" * 64,
        manifest_sha256="b" * 64,
        onnxruntime_version="1.0",
        provider="CPUExecutionProvider",
        timings_ms=timings
        or {"load": 1.0, "preprocess": 2.0, "infer": 3.0, "postprocess": 4.0, "total": 10.0},
        labels=labels,
        top_label=top,
        top_probability=prob,
        decision=decision,
        threshold=threshold,
        label_volume=label_volume,
    )


def insert(
    db: Database,
    created_at: datetime,
    *,
    model: str = "lung-mask",
    version: str = "1.0.0",
    task: str = "segmentation",
    volume_ml: float | None = 10.0,
    probability: float = 0.8,
    scan: Scan | None = None,
    **columns: Any,
) -> str:
    """Insert one row as ``record_prediction`` would, with ``created_at`` and any column set."""
    prediction = make_prediction(
        model=model, version=version, task=task, volume_ml=volume_ml, probability=probability
    )
    row = prediction_row(db, prediction, scan or make_scan())
    row["created_at"] = created_at
    row.update(columns)
    write_row(db, row)
    return str(row["id"])


# --- a real model for the command-line tests --------------------------------------------------


def threshold_net(cut: float) -> onnx.ModelProto:
    """[N,1,H,W] → logits [N,2,H,W] = (0, x − cut): label 1 where the value exceeds ``cut``."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    w = numpy_helper.from_array(np.array([0.0, 1.0], np.float32).reshape(2, 1, 1, 1), "w")
    b = numpy_helper.from_array(np.array([0.0, -cut], np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([node], "threshold", [x], [y], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def threshold_manifest(name: str, version: str, **input_changes: Any) -> Manifest:
    """A segmentation manifest for :func:`threshold_net` on CT."""
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "title": "Dense tissue",
        "summary": "Marks voxels denser than a cut-off.",
        "task": "segmentation",
        "authors": ["Tests"],
        "licence": "Apache-2.0",
        "created": "2026-01-01",
        "changelog": "First.",
        "card": {
            "intended_use": "Testing the history.",
            "limitations": ["A threshold, not a model."],
            "training_data": "None.",
        },
        "input": {
            "modalities": ["CT"],
            "dimensionality": "slice2d",
            "name": "image",
            "shape": ["N", 1, None, None],
            "units": "HU",
            **input_changes,
        },
        "output": {
            "names": ["logits"],
            "activation": "softmax",
            "labels": [
                {"index": 0, "name": "background", "colour": "#000000"},
                {"index": 1, "name": "dense", "colour": "#ffcc00"},
            ],
            "postprocessing": [{"op": "argmax"}],
        },
    }
    return Manifest.from_dict(json.loads(json.dumps(data)))


def publish_threshold(
    store: ModelStore, tmp: Path, name: str, version: str, cut: float, **input_changes: Any
) -> None:
    """Publish :func:`threshold_net` as ``name@version``."""
    path = tmp / f"{name}-{version}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(threshold_net(cut).SerializeToString())
    store.publish(path, threshold_manifest(name, version, **input_changes))


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``medmodels`` as a user does, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", "from medmodels.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )
