"""Tiny real models for the app and browser tests, built with onnx.helper and published into a
store: ``air-mask`` 1.0.0 and 1.1.0 (production → 1.1.0), a CT segmentation that marks air (and,
in 1.1.0, the lungs), and ``dark-classifier`` 1.0.0, a CT slice classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medmodels import Manifest, ModelStore

OPSET = 17

CARD = {
    "intended_use": "Trying the app on the sample phantom.",
    "limitations": ["Made for tests: it marks air, not lungs."],
    "training_data": "None: fixed weights.",
    "metrics": [{"name": "Dice", "value": 0.5, "dataset": "phantom"}],
}


def _seg_graph(cut: float) -> onnx.ModelProto:
    """[N,1,H,W] → [N,2,H,W] logits (x, cut - x): label 1 where the windowed value < cut/2."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    w = numpy_helper.from_array(np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1), "w")
    b = numpy_helper.from_array(np.array([0.0, cut], np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"], name="conv")
    graph = helper.make_graph([node], "seg", [x], [y], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)


def _cls_graph() -> onnx.ModelProto:
    """[N,1,H,W] → [N,2] logits (mean, -mean) of the windowed image."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["mean"], axis=1),
        helper.make_node("Neg", ["mean"], ["neg"]),
        helper.make_node("Concat", ["mean", "neg"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "cls", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)


def seg_manifest(version: str, changelog: str, **extra: Any) -> Manifest:
    return Manifest.from_dict(
        {
            "name": "air-mask",
            "version": version,
            "title": "Air mask",
            "summary": "Marks air on axial CT slices (a test model).",
            "task": "segmentation",
            "authors": ["Tests"],
            "licence": "Apache-2.0",
            "created": "2026-01-01",
            "changelog": changelog,
            "card": CARD,
            "input": {
                "modalities": ["CT"],
                "dimensionality": "slice2d",
                "name": "image",
                "shape": ["N", 1, None, None],
                "units": "HU",
                "preprocessing": [{"op": "window", "center": -600, "width": 1500}],
                "spacing_range_mm": [0.3, 2.0],
            },
            "output": {
                "names": ["logits"],
                "activation": "softmax",
                "labels": [
                    {"index": 0, "name": "background", "colour": "#000000"},
                    {"index": 1, "name": "air", "colour": "#00c0ff"},
                ],
                "postprocessing": [{"op": "argmax"}],
            },
            **extra,
        }
    )


def cls_manifest() -> Manifest:
    return Manifest.from_dict(
        {
            "name": "dark-classifier",
            "version": "1.0.0",
            "title": "Dark image classifier",
            "summary": "Says whether a CT slice is mostly dark (a test model).",
            "task": "classification",
            "authors": ["Tests"],
            "licence": "Apache-2.0",
            "created": "2026-01-01",
            "changelog": "First version.",
            "card": CARD,
            "input": {
                "modalities": ["CT"],
                "dimensionality": "slice2d",
                "name": "image",
                "shape": ["N", 1, None, None],
                "units": "HU",
                "preprocessing": [{"op": "window", "center": 40, "width": 400}],
            },
            "output": {
                "names": ["logits"],
                "activation": "softmax",
                "threshold": 0.5,
                "labels": [
                    {"index": 0, "name": "bright", "colour": "#00ff00"},
                    {"index": 1, "name": "dark", "colour": "#ff0000"},
                ],
            },
        }
    )


def write_model(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def build_store(base: Path) -> Path:
    """Publish the test models into ``base/store`` and return the store folder."""
    store = ModelStore(base / "store")
    store.publish(write_model(_seg_graph(0.5), base / "a.onnx"), seg_manifest("1.0.0", "First."))
    store.publish(
        write_model(_seg_graph(0.75), base / "b.onnx"),
        seg_manifest("1.1.0", "Also marks the lungs."),
    )
    store.set_alias("air-mask", "production", "1.0.0", reason="first release")
    store.set_alias("air-mask", "production", "1.1.0", reason="better on the phantom")
    store.publish(write_model(_cls_graph(), base / "c.onnx"), cls_manifest())
    return base / "store"
