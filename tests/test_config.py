"""Settings: environment variables, validation messages, the README table."""

from __future__ import annotations

import pytest

from medmodels.config import Settings, env_name, load_settings, settings_table
from medmodels.errors import ConfigError


def test_defaults_are_usable() -> None:
    s = load_settings()
    assert s.max_upload_bytes == s.max_upload_mb * 1024 * 1024
    assert 0 < s.max_slice_gap_ratio < 1


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMODELS_MAX_FILES", "7")
    monkeypatch.setenv("MEDMODELS_HOME", "/tmp/mm-home")
    s = load_settings()
    assert s.max_files == 7
    assert str(s.home) == "/tmp/mm-home"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMODELS_MAX_ZIP_ENTRIES", "-3")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "MEDMODELS_MAX_ZIP_ENTRIES" in str(info.value)
    assert "README" in str(info.value)


def test_every_setting_has_help_and_is_in_the_table() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no help text"
        assert f"`{env_name(name)}`" in table
