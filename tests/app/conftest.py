"""Fixtures for the app tests: a temporary home folder and a small model store per test, fresh
Streamlit resource caches, and an AppTest factory for the real entry point."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import streamlit as st
from onnx import TensorProto, helper, numpy_helper
from streamlit.testing.v1 import AppTest

from medmodels import Manifest, ModelStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "streamlit_app.py"
SAMPLES = ROOT / "sample_data"
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


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """air-mask 1.0.0 and 1.1.0 (production → 1.1.0) and dark-classifier 1.0.0, built once."""
    base = tmp_path_factory.mktemp("built")
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


def _clear_caches() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built_store: Path) -> Iterator[Path]:
    """A temporary MEDMODELS_HOME and a private copy of the test store; caches cleared before
    and after (which also stops the decode workers and closes the history database)."""
    store = tmp_path / "store"
    shutil.copytree(built_store, store)
    monkeypatch.setenv("MEDMODELS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDMODELS_STORE", str(store))
    _clear_caches()
    yield tmp_path
    _clear_caches()


@pytest.fixture
def make_app(app_env: Path) -> Callable[..., AppTest]:
    """``make_app(**query)`` → an AppTest of streamlit_app.py with those query parameters."""

    def make(**query: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=90)
        at.query_params.update(query)
        return at

    return make


def texts(at: AppTest) -> str:
    """Every text the user can read on the page (markdown, captions, alerts, titles)."""
    parts: list[Any] = [m.value for m in at.markdown] + [c.value for c in at.caption]
    for kind in ("error", "warning", "info", "success", "title", "subheader", "header"):
        parts += [e.value for e in getattr(at, kind)]
    return _unescape("\n".join(str(p) for p in parts))


def _unescape(text: str) -> str:
    """Markdown source as read on screen: backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", text)


def errors(at: AppTest) -> list[str]:
    return [_unescape(str(e.value)) for e in at.error]


def upload(at: AppTest, key: str, *files: tuple[str, bytes]) -> AppTest:
    """Put files into a file_uploader and rerun."""
    at.file_uploader(key=key).set_value([(n, d, "application/octet-stream") for n, d in files])
    return at.run()
