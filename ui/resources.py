"""Process-wide resources, created once and shared by every session (``st.cache_resource``):
settings, the model store, the pool of decode workers, loaded sample scans, the prediction
history database and the share links kept in it.

Tests call ``st.cache_resource.clear()`` after changing ``MEDMODELS_*`` variables; resources
with something to close (worker processes) close it when released.
"""

from __future__ import annotations

import streamlit as st

from medmodels import (
    LoadResult,
    MedModelsError,
    ModelStore,
    Settings,
    load_scans,
    load_settings,
)
from medmodels.history import Database, open_database
from medmodels.scans import DecodePool
from medmodels.share import ShareLinks
from ui.samples import BY_ID


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The settings, read from ``MEDMODELS_*`` once per process (raises ConfigError)."""
    return load_settings()


@st.cache_resource(show_spinner=False)
def store() -> ModelStore:
    """The model store (thread-safe; it caches verified hashes)."""
    return ModelStore(settings().store)


def model_title(name: str) -> str:
    """``Title (name)`` of a model's default version, or the bare name if it cannot be read."""
    try:
        return f"{store().get(name).manifest.title} ({name})"
    except MedModelsError:
        return name


@st.cache_resource(show_spinner=False, on_release=lambda pool: pool.close())
def decode_pool() -> DecodePool:
    """Worker processes that read uploads under memory and time limits (a hostile file costs
    one worker, not the app)."""
    return DecodePool(settings())


def load_upload(files: list) -> LoadResult:  # type: ignore[type-arg]
    """Read uploaded files in a decode worker; every bad file becomes a problem line."""
    return decode_pool().load(files)


@st.cache_resource(show_spinner="Reading the sample scan…", max_entries=8)
def sample(sample_id: str) -> LoadResult:
    """A sample scan, loaded once per process (samples are trusted, read-only files)."""
    return load_scans([BY_ID[sample_id].file], settings=settings())


@st.cache_resource(show_spinner=False, on_release=lambda db: db.close())
def history() -> Database:
    """The prediction history database of this process (one connection, a cursor per call)."""
    return open_database(settings())


@st.cache_resource(show_spinner=False)
def shares() -> ShareLinks:
    """Share links, signed with the server secret, stored in the history database."""
    return ShareLinks.for_settings(history(), settings())
