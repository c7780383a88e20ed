"""Tiny real ONNX models (made with onnx.helper), stores holding them, and one measured sheet
shared by the tests that only read it (measuring takes a few seconds)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from medmodels.config import Settings, load_settings
from medmodels.sheets import Sheet, build_sheet
from medmodels.store import Manifest, ModelStore

OPSET = 17
IR_VERSION = 9
SIZE = 32


def _weights(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)


def _model(nodes: list[onnx.NodeProto], inputs: Any, outputs: Any, inits: Any) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def seg_net() -> onnx.ModelProto:
    """[1,1,32,32] → logits [1,2,32,32]: Conv 3×3 (4 channels) + Relu + Conv 1×1."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, SIZE, SIZE])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, SIZE, SIZE])
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["logits"], kernel_shape=[1, 1]),
    ]
    inits = [
        _weights("w1", (4, 1, 3, 3), 1),
        _weights("b1", (4,), 2),
        _weights("w2", (2, 4, 1, 1), 3),
        _weights("b2", (2,), 4),
    ]
    return _model(nodes, [x], [y], inits)


def cls_net() -> onnx.ModelProto:
    """[1,1,32,32] → logits [1,2]: Conv 3×3 + Relu + GlobalAveragePool + Flatten + Gemm."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, SIZE, SIZE])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1),
    ]
    inits = [
        _weights("w1", (4, 1, 3, 3), 5),
        _weights("b1", (4,), 6),
        _weights("w2", (2, 4), 7),
        _weights("b2", (2,), 8),
    ]
    return _model(nodes, [x], [y], inits)


def manifest(name: str, task: str = "segmentation", **changes: Any) -> Manifest:
    """A DX image2d manifest (no sample scan fits it, so sheets use a small synthetic image)."""
    output: dict[str, Any]
    if task == "segmentation":
        output = {
            "names": ["logits"],
            "activation": "softmax",
            "labels": [
                {"index": 0, "name": "background", "colour": "#000000"},
                {"index": 1, "name": "spot", "colour": "#ff0000"},
            ],
            "postprocessing": [{"op": "argmax"}],
        }
    else:
        output = {
            "names": ["logits"],
            "activation": "softmax",
            "labels": [
                {"index": 0, "name": "normal", "colour": "#00ff00"},
                {"index": 1, "name": "abnormal", "colour": "#ff0000"},
            ],
            "threshold": 0.5,
        }
    data: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "title": f"Tiny {task} net",
        "summary": "A tiny test network.",
        "task": task,
        "authors": ["Tests"],
        "licence": "Apache-2.0",
        "created": "2026-01-01",
        "changelog": "First.",
        "card": {
            "intended_use": "Testing the sheets.",
            "limitations": ["A test model."],
            "training_data": "None.",
            "metrics": [{"name": "Dice", "value": 0.5, "dataset": "none"}],
        },
        "input": {
            "modalities": ["DX"],
            "dimensionality": "image2d",
            "name": "image",
            "shape": [1, 1, SIZE, SIZE],
            "dtype": "float32",
            "units": "0-255",
            "preprocessing": [
                {"op": "scale_offset", "scale": 0.0078125, "offset": -1.0},
                {"op": "resize_pad", "rows": SIZE, "cols": SIZE},
            ],
        },
        "output": output,
    }
    data.update(changes)
    return Manifest.from_dict(data)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., tuple[ModelStore, Settings]]:
    """A store in ``tmp_path`` with tiny-seg@1.0.0 and tiny-cls@1.0.0, and settings whose home
    is in ``tmp_path`` too."""

    def make() -> tuple[ModelStore, Settings]:
        store = ModelStore(tmp_path / "store")
        store.publish(save(seg_net(), tmp_path / "src" / "seg.onnx"), manifest("tiny-seg"))
        store.publish(
            save(cls_net(), tmp_path / "src" / "cls.onnx"), manifest("tiny-cls", "classification")
        )
        settings = load_settings(store=tmp_path / "store", home=tmp_path / "home")
        return store, settings

    return make


@pytest.fixture(scope="session")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sheet, ModelStore, Settings]:
    """tiny-seg@1.0.0 measured once with 3 runs; the sheet is saved under the settings' home."""
    root = tmp_path_factory.mktemp("measured")
    store = ModelStore(root / "store")
    store.publish(save(seg_net(), root / "src" / "seg.onnx"), manifest("tiny-seg"))
    settings = load_settings(store=root / "store", home=root / "home")
    sheet = build_sheet(store, "tiny-seg@1.0.0", settings=settings, runs=3, warmup=1)
    return sheet, store, settings
