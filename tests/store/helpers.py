"""Helpers for the model store tests: tiny real ONNX graphs built with onnx.helper and manifests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medmodels.store import Manifest

OPSET = 17
IR_VERSION = 9  # what onnxruntime accepts on every supported version

BASE_MANIFEST: dict[str, Any] = {
    "name": "lung-mask",
    "version": "1.0.0",
    "title": "Lung mask",
    "summary": "Segments both lungs on axial CT slices.",
    "task": "segmentation",
    "authors": ["Test Author"],
    "licence": "Apache-2.0",
    "created": "2025-01-02",
    "changelog": "First version.",
    "card": {
        "intended_use": "Research on lung volume in adult chest CT.",
        "limitations": ["Not tested on children.", "Not tested with contrast."],
        "training_data": "Synthetic phantoms.",
        "metrics": [
            {"name": "Dice", "value": 0.9, "dataset": "phantoms-test"},
            {"name": "HD95", "value": 4.0, "dataset": "phantoms-test", "note": "mm"},
        ],
        "warnings": ["Research use only."],
    },
    "input": {
        "modalities": ["CT"],
        "dimensionality": "slice2d",
        "name": "image",
        "shape": ["N", 1, None, None],
        "dtype": "float32",
        "units": "HU",
        "preprocessing": [{"op": "window", "center": -600, "width": 1500}],
        "spacing_range_mm": [0.4, 1.5],
    },
    "output": {
        "names": ["logits"],
        "activation": "softmax",
        "labels": [
            {"index": 0, "name": "background", "colour": "#000000"},
            {"index": 1, "name": "lung", "colour": "#ff0000"},
        ],
        "postprocessing": [{"op": "argmax"}, {"op": "keep_largest", "n": 2}],
    },
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def manifest_data(**changes: Any) -> dict[str, Any]:
    """A valid manifest as plain data, with nested ``changes`` merged in."""
    return _merge(BASE_MANIFEST, changes)


def make_manifest(**changes: Any) -> Manifest:
    """A valid :class:`Manifest` with nested ``changes`` merged in."""
    return Manifest.from_dict(manifest_data(**changes))


def save_proto(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialise directly: onnx.save would try to write (or move) external data itself.
    path.write_bytes(model.SerializeToString())
    return path


def conv_graph(
    *, input_name: str = "image", output_name: str = "logits", weight: float = 1.0
) -> onnx.ModelProto:
    """A 1-channel to 2-channel 1x1 Conv: input [N,1,H,W] float32, output [N,2,H,W]."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 2, "H", "W"])
    w = numpy_helper.from_array(np.array([weight, -weight], np.float32).reshape(2, 1, 1, 1), "w")
    b = numpy_helper.from_array(np.array([0.0, 0.5], np.float32), "b")
    node = helper.make_node("Conv", [input_name, "w", "b"], [output_name], name="conv")
    graph = helper.make_graph([node], "conv", [x], [y], initializer=[w, b])
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
