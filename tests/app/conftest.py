"""Fixtures for the app tests: a temporary home folder and a small model store per test, fresh
Streamlit resource caches, and an AppTest factory for the real entry point."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from medmodels import MedModelsError, ModelStore

from .builders import build_store

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "streamlit_app.py"
SAMPLES = ROOT / "sample_data"


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test models (see :mod:`.builders`), built once per session."""
    return build_store(tmp_path_factory.mktemp("built"))


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


SAMPLE_STORE = ROOT / "model_store"


def sample_store_problem() -> str | None:
    """Why the sample models cannot be used here (absent, or refused by the store, e.g. after
    a store change they were not rebuilt for), or None when ct-body-lung and brain-tissue
    load."""
    if not SAMPLE_STORE.is_dir():
        return "model_store/ is not in this checkout (tools/build_sample_models.py builds it)"
    store = ModelStore(SAMPLE_STORE)
    try:
        for name in ("ct-body-lung", "brain-tissue"):
            for version in store.versions(name):
                store.get(f"{name}@{version}")
    except MedModelsError as exc:
        return f"the sample models do not load: {exc}"[:300]
    return None


@pytest.fixture
def sample_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., AppTest]]:
    """Like ``make_app``, on the real sample model store (read only: nothing here moves an
    alias or publishes) with a temporary home folder."""
    monkeypatch.setenv("MEDMODELS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDMODELS_STORE", str(SAMPLE_STORE))
    _clear_caches()

    def make(**query: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.query_params.update(query)
        return at

    yield make
    _clear_caches()
