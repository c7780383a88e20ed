"""The ``medmodels`` command line, run as a real subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PHANTOM = ROOT / "sample_data" / "ct-chest-phantom"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m medmodels.cli`` the way a user runs ``medmodels``."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from medmodels.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
    )


def test_scan_phantom_folder_prints_one_ct_volume() -> None:
    proc = run_cli("scan", str(PHANTOM))
    assert proc.returncode == 0, proc.stderr
    assert "CT volume, 64 slices of 256×256, 1.50×1.50×5.00 mm" in proc.stdout
    assert "PatientName" in proc.stdout and "PatientID" in proc.stdout
    # the fictitious patient's values never appear, only the attribute names
    assert "PHANTOM^CHEST" not in proc.stdout + proc.stderr
    assert "PHANTOM-0001" not in proc.stdout + proc.stderr


def test_scan_json_is_parseable_and_complete() -> None:
    proc = run_cli("scan", str(PHANTOM), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (scan,) = data["scans"]
    assert scan["shape"] == [64, 256, 256]
    assert scan["spacing_mm"] == [1.5, 1.5, 5.0]
    assert scan["modality"] == "CT" and scan["kind"] == "volume"
    assert "PatientName" in scan["removed"]
    assert data["problems"] == []


def test_scan_truncated_file_exits_2_with_one_line(tmp_path: Path) -> None:
    good = sorted(PHANTOM.glob("*.dcm"))[0].read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(good[: len(good) // 2])
    proc = run_cli("scan", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{bad}: ") and "truncated" in lines[0]
    assert proc.stdout == ""


def test_scan_reports_every_bad_file_and_still_loads_the_good_one(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    proc = run_cli(
        "scan", str(tmp_path / "empty.dcm"), str(tmp_path / "notes.txt"), str(PHANTOM), "--json"
    )
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert len(data["scans"]) == 1
    assert sorted(p["code"] for p in data["problems"]) == ["empty", "unknown-format"]
    assert len(proc.stderr.strip().splitlines()) == 2


def test_bad_setting_is_a_clear_error_not_a_traceback() -> None:
    proc = run_cli("scan", str(PHANTOM), env={"MEDMODELS_MAX_UPLOAD_MB": "lots"})
    assert proc.returncode == 2
    assert "MEDMODELS_MAX_UPLOAD_MB" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_upload_limit_from_environment_is_enforced() -> None:
    proc = run_cli("scan", str(PHANTOM), env={"MEDMODELS_MAX_FILES": "10"})
    assert proc.returncode == 2
    assert "too-many-files" in proc.stderr
    assert "MEDMODELS_MAX_FILES" in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["scan", "--help"], ["settings"]])
def test_help_and_settings_run(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
