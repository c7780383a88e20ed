"""A brief run of the fuzz harness (tests/fuzz/fuzz_load.py) in a child process, so that a codec
crash or a hang fails this test instead of taking pytest down: no exception escapes
``load_scans``, no contract is broken, nothing hangs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_load.py")


def test_a_brief_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "fuzz"
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "--seconds",
            "12",
            "--max-examples",
            "200",
            "--seed",
            "20240607",
            "--hang-seconds",
            "30",
            "--memory-mb",
            "3072",
            "--fast",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = out / "report.json"
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "no findings" in proc.stdout
    data = json.loads(report.read_text())
    assert data["examples"] >= 50, proc.stdout  # it really ran
    assert not data["findings"]
    # every seed loaded or was refused cleanly at least once: the outcomes are contract codes
    assert sum(data["outcomes"].values()) >= 50
