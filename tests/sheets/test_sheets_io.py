"""A sheet round-trips through JSON export and `medmodels sheet import`; bad sheets are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medmodels.cli import main
from medmodels.errors import ModelNotFoundError
from medmodels.sheets import Sheet, SheetError, SheetStore


@pytest.fixture
def elsewhere(measured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another installation (same store, empty home) selected through the environment."""
    _, store, _ = measured
    monkeypatch.setenv("MEDMODELS_STORE", str(store.root))
    monkeypatch.setenv("MEDMODELS_HOME", str(tmp_path / "other-home"))
    return tmp_path / "other-home"


def test_a_sheet_round_trips_through_json_import(measured, elsewhere: Path, tmp_path: Path):
    sheet, _, _ = measured
    exported = tmp_path / "from-my-laptop.json"
    exported.write_text(sheet.to_json())
    result = CliRunner().invoke(main, ["sheet", "import", str(exported)])
    assert result.exit_code == 0, result.output
    assert "imported tiny-seg@1.0.0" in result.output
    stored = SheetStore(elsewhere / "sheets").get("tiny-seg", "1.0.0", sheet.host.fingerprint)
    assert stored == sheet
    assert Sheet.from_json(stored.to_json()) == sheet


def test_the_json_output_of_the_sheet_command_imports_too(
    measured, elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet, _, settings = measured
    monkeypatch.setenv("MEDMODELS_HOME", str(settings.home))
    shown = CliRunner().invoke(main, ["sheet", "tiny-seg@1.0.0", "--stored", "--json"])
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "report.json"
    path.write_text(json.dumps(json.loads(shown.stdout)[0]))
    monkeypatch.setenv("MEDMODELS_HOME", str(elsewhere))
    result = CliRunner().invoke(main, ["sheet", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sheet"] == sheet.model_dump(mode="json")


def _edited(sheet: Sheet, tmp_path: Path, change) -> Path:
    data = sheet.model_dump(mode="json")
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_import_refuses_bad_sheets(measured, elsewhere: Path, tmp_path: Path) -> None:
    sheet, store, _ = measured
    sheets = SheetStore(elsewhere / "sheets")

    not_json = tmp_path / "x.json"
    not_json.write_text("{nope")
    with pytest.raises(SheetError, match="not valid JSON"):
        sheets.import_file(not_json, store=store)
    not_json.write_text('{"hello": 1}')
    with pytest.raises(SheetError, match="not a MedModels sheet"):
        sheets.import_file(not_json, store=store)

    def faster(data):
        data["bench"]["stages"]["infer"]["p50_ms"] = "fast"

    with pytest.raises(SheetError, match=r"bench\.stages\.infer\.p50_ms"):
        sheets.import_file(_edited(sheet, tmp_path, faster), store=store)

    def other_cpu(data):
        data["host"]["cpu_model"] = "Imaginary CPU 9000"

    with pytest.raises(SheetError, match="fingerprint"):
        sheets.import_file(_edited(sheet, tmp_path, other_cpu), store=store)

    def other_file(data):
        data["model_sha256"] = "0" * 64

    with pytest.raises(SheetError, match="different model file"):
        sheets.import_file(_edited(sheet, tmp_path, other_file), store=store)

    def unknown_version(data):
        data["version"] = "7.0.0"

    with pytest.raises(ModelNotFoundError, match=r"available: 1\.0\.0"):
        sheets.import_file(_edited(sheet, tmp_path, unknown_version), store=store)
    assert sheets.sheets() == []

    result = CliRunner().invoke(main, ["sheet", "import", str(not_json)])
    assert result.exit_code == 2 and "error:" in result.output


def test_sheets_from_several_hosts_sit_side_by_side(measured, tmp_path: Path) -> None:
    sheet, _, _ = measured
    sheets = SheetStore(tmp_path / "sheets")
    host = sheet.host.model_copy(update={"cpu_model": "Another CPU", "usable_cores": 8})
    other = sheet.model_copy(
        update={"host": host.model_copy(update={"fingerprint": host.expected_fingerprint()})}
    )
    sheets.save(sheet)
    sheets.save(other)
    found = sheets.sheets("tiny-seg", "1.0.0")
    assert {s.host.fingerprint for s in found} == {sheet.host.fingerprint, other.host.fingerprint}
    assert len(list((tmp_path / "sheets" / "tiny-seg" / "1.0.0").glob("*.json"))) == 2
    assert sheets.get("tiny-seg", "1.0.0", other.host.fingerprint).host.cpu_model == "Another CPU"


def test_unreadable_files_are_reported_not_fatal(measured, tmp_path: Path) -> None:
    sheet, _, _ = measured
    sheets = SheetStore(tmp_path / "sheets")
    sheets.save(sheet)
    bad = tmp_path / "sheets" / "tiny-seg" / "1.0.0" / "0123456789abcdef.json"
    bad.write_text("{}")
    problems: list[str] = []
    assert sheets.sheets(problems=problems) == [sheet]
    assert len(problems) == 1 and "0123456789abcdef.json" in problems[0]
