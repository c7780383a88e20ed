"""Fixtures for the model store tests: tiny models written to temporary folders, and stores
published from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest

from medmodels.store import ModelStore

from .helpers import conv_graph, make_manifest, save_proto


@pytest.fixture
def build_model(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny ONNX model (see :func:`conv_graph`) to ``tmp_path/src/<file>``."""

    def build(file: str = "net.onnx", **kwargs: Any) -> Path:
        return save_proto(conv_graph(**kwargs), tmp_path / "src" / file)

    return build


@pytest.fixture
def save_model(tmp_path: Path) -> Callable[[onnx.ModelProto, str], Path]:
    """Write an arbitrary ModelProto under ``tmp_path/src`` as given (no external-data moves)."""

    def save(model: onnx.ModelProto, file: str = "net.onnx") -> Path:
        return save_proto(model, tmp_path / "src" / file)

    return save


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """An empty store in a temporary folder."""
    return ModelStore(tmp_path / "store")


@pytest.fixture
def published(store: ModelStore, build_model: Callable[..., Path]) -> ModelStore:
    """A store holding lung-mask 1.0.0 and 1.1.0 (different weights and metrics), no aliases."""
    store.publish(build_model("v1.onnx"), make_manifest())
    store.publish(
        build_model("v2.onnx", weight=2.0),
        make_manifest(
            version="1.1.0",
            changelog="Retrained with more phantoms.",
            card={"metrics": [{"name": "Dice", "value": 0.93, "dataset": "phantoms-test"}]},
        ),
    )
    return store
