"""The two places where sheets reach inside ``medmodels.inference``, kept in one file.

* :func:`model_input` is the exact tensor ``predict`` feeds the model (for FLOPs at the real
  input shape and for int8 calibration);
* :func:`sessions` makes ``predict`` use sessions built with given thread settings. It is only
  entered in the benchmark's own child process, never in a long-lived process.

Both use private names of ``medmodels.inference.predict``; when inference offers a public
``preprocess`` and a session hook, only this file changes.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from medmodels.scans.types import Scan
from medmodels.store.manifest import Manifest

# The module, not the function ``medmodels.inference.predict`` that the package re-exports.
_predict: Any = importlib.import_module("medmodels.inference.predict")


def model_input(scan: Scan, manifest: Manifest) -> np.ndarray:
    """The preprocessed tensor ``predict`` would feed the model for ``scan`` (all slices)."""
    tensor: np.ndarray = _predict._preprocess(scan, manifest).tensor
    return tensor


def new_session(path: Path, *, intra_op: int = 0, inter_op: int = 0) -> ort.InferenceSession:
    """A CPU session with the given thread counts (0 = onnxruntime's default)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = intra_op
    options.inter_op_num_threads = inter_op
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def sessions(factory: Callable[[], ort.InferenceSession]) -> Iterator[None]:
    """Within the block, ``predict`` uses one session per thread made by ``factory``."""
    local = threading.local()

    def get_session(
        model_path: Path, model_sha256: str, providers: Sequence[str] | None = None
    ) -> tuple[Any, bool]:
        session = getattr(local, "session", None)
        if session is None:
            local.session = session = factory()
            return session, True
        return session, False

    original = _predict.get_session
    _predict.get_session = get_session
    try:
        yield
    finally:
        _predict.get_session = original
