"""onnxruntime sessions, created once per model file and provider list and then reused.

Creating a session costs far more than running one, so sessions are cached by the model's
SHA-256 (a published version never changes) and the providers asked for. ``InferenceSession.run``
is safe to call from several threads on one session.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[str, tuple[str, ...]], ort.InferenceSession] = OrderedDict()
_MAX_SESSIONS = 8


def default_providers() -> tuple[str, ...]:
    """The providers used when none are asked for: CPU (always available, deterministic)."""
    return ("CPUExecutionProvider",)


def get_session(
    model_path: Path, model_sha256: str, providers: Sequence[str] | None = None
) -> tuple[ort.InferenceSession, bool]:
    """A session for ``model_path``; returns ``(session, created_now)``.

    Keeps at most a few sessions (least recently used are dropped) so a long-running app that
    tries many versions does not hold every model in memory.
    """
    wanted = tuple(providers) if providers else default_providers()
    available = set(ort.get_available_providers())
    chosen = tuple(p for p in wanted if p in available) or default_providers()
    key = (model_sha256, chosen)
    with _LOCK:
        session = _CACHE.get(key)
        if session is not None:
            _CACHE.move_to_end(key)
            return session, False
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=list(chosen))
    with _LOCK:
        _CACHE[key] = session
        _CACHE.move_to_end(key)
        while len(_CACHE) > _MAX_SESSIONS:
            _CACHE.popitem(last=False)
    return session, True


def clear_sessions() -> None:
    """Drop every cached session (tests, or after a store clean-up)."""
    with _LOCK:
        _CACHE.clear()


def runtime_version() -> str:
    """The onnxruntime version, recorded with every prediction."""
    return str(ort.__version__)
