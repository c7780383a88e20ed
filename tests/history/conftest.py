"""Fixtures: settings pointing at a temporary home and store, and an open history database that
is closed again after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medmodels.config import Settings, load_settings
from medmodels.history.db import Database, open_database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", store=tmp_path / "store")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings)
    try:
        yield database
    finally:
        database.close()
