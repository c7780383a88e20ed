"""The command line: predict logs by default, history/feedback/stats/delete/export, the message
when another process holds the database, and the PHI marker search over everything written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medmodels.cli import main
from medmodels.config import Settings, load_settings
from medmodels.history.db import Database, database_path, open_database
from medmodels.history.log import get_prediction
from medmodels.store import ModelStore

from .helpers import insert, publish_threshold, run_cli

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
T0 = datetime(2026, 3, 2, 9, 0)


def invoke(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {"MEDMODELS_HOME": str(settings.home), "MEDMODELS_STORE": str(settings.store)}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_history_feedback_stats_show_delete_in_process(db: Database, settings: Settings) -> None:
    a = insert(db, T0, version="1.0.0", total_ms=10.0)
    b = insert(db, T0 + timedelta(hours=1), version="1.1.0", alias="production", total_ms=20.0)
    insert(db, T0 + timedelta(hours=2), version="1.1.0", status="rejected", reason_code="empty")

    code, out, _ = invoke(settings, "history")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4 and lines[-1] == "(1–3 of 3)"
    assert lines[1].startswith(b[:8]) and "lung-mask@1.1.0 (production)" in lines[1]
    assert "[empty]" in lines[0] and "10.0 mL" in lines[2]

    code, out, err = invoke(
        settings,
        "feedback",
        a[:8],
        "--verdict",
        "disagree",
        "--reason",
        "boundary",
        "--label",
        "lung",
        "--note",
        "edge",
    )
    assert code == 0 and out.strip() == f"{a}: disagree [boundary]", err
    code, out, _ = invoke(settings, "feedback", a, "--verdict", "agree")
    assert code == 0
    code, _, err = invoke(settings, "feedback", a, "--verdict", "agree", "--label", "liver")
    assert code == 2 and "background, lung" in err
    code, _, err = invoke(settings, "feedback", "deadbeef", "--verdict", "agree")
    assert code == 2 and "no prediction" in err

    code, out, _ = invoke(settings, "history", "--verdict", "agree", "--json")
    data = json.loads(out)
    assert data["total"] == 1 and data["predictions"][0]["id"] == a

    code, out, _ = invoke(settings, "history", "--limit", "1", "--offset", "1")
    assert "(2–2 of 3; next page: --offset 2)" in out

    code, out, _ = invoke(settings, "history", "stats", "--model", "lung-mask")
    assert code == 0
    assert "1.1.0: 2 predictions (ok 1, rejected 1, failed 0; rejection rate 50%)" in out
    assert "1.0.0: 1 prediction (ok 1" in out and "total 10/10" in out
    assert "agreement 100%" in out
    code, out, _ = invoke(settings, "history", "stats", "--json")
    assert [s["version"] for s in json.loads(out)] == ["1.1.0", "1.0.0"]

    code, out, _ = invoke(settings, "history", "show", a[:8])
    assert code == 0 and f"id: {a}" in out and "feedback" in out and "corrected to lung" in out

    code, out, _ = invoke(settings, "history", "compare", "lung-mask", "1.0.0", "1.1.0")
    assert code == 0 and "on 1 shared series" in out

    code, out, _ = invoke(settings, "history", "drift", "lung-mask", "--min-count", "1")
    assert code == 0 and "reference" in out

    csv_path = Path(settings.home).parent / "export.csv"
    code, out, _ = invoke(settings, "history", "--status", "ok", "--csv", str(csv_path))
    assert code == 0 and out.strip() == f"exported 2 predictions to {csv_path}"
    assert len(csv_path.read_text().splitlines()) == 3
    code, _, err = invoke(settings, "history", "--json", "--csv", str(csv_path))
    assert code == 2 and "choose one" in err
    code, _, err = invoke(settings, "history", "--since", "yesterday")
    assert code == 2 and "not a date" in err

    code, out, _ = invoke(settings, "history", "delete", b[:8])
    assert code == 0 and out.startswith(f"deleted {b}")
    code, out, _ = invoke(settings, "history", "--json")
    assert json.loads(out)["total"] == 2


def test_timeline_command(db: Database, settings: Settings, tmp_path: Path) -> None:
    store = ModelStore(settings.store)
    publish_threshold(store, tmp_path / "src", "dense", "1.0.0", 100.0)
    store.set_alias("dense", "production", "1.0.0")
    insert(db, datetime.now() + timedelta(seconds=1), model="dense", alias="production")
    code, out, _ = invoke(settings, "history", "timeline", "dense")
    assert code == 0 and "production = 1.0.0: 1 prediction (1 via production)" in out


# --- subprocesses: what a user runs ------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    store = ModelStore(tmp_path / "store")
    publish_threshold(store, tmp_path / "src", "dense", "1.0.0", 100.0)
    publish_threshold(store, tmp_path / "src", "dense", "1.1.0", 500.0)
    store.set_alias("dense", "production", "1.1.0")
    # a model that refuses the test series (its pixel spacing is 0.7 mm)
    publish_threshold(store, tmp_path / "src", "coarse", "1.0.0", 0.0, spacing_range_mm=[3, 10])
    return {"MEDMODELS_STORE": str(tmp_path / "store"), "MEDMODELS_HOME": str(tmp_path / "home")}


MARKERS: dict[str, str] = {
    "PatientName": "Qzorbit^Wendeline",
    "PatientID": "PIDX9917734",
    "PatientBirthDate": "19290613",
    "PatientAddress": "42 Crumblewick Row",
    "OtherPatientIDs": "OPIDZ55102",
    "InstitutionName": "Brackenfold Xylo Hospital",
    "InstitutionAddress": "9 Yarrowmere Street",
    "ReferringPhysicianName": "Thistlewaite^Ozias",
    "PerformingPhysicianName": "Quenby^Marisol",
    "OperatorsName": "Vellacott^Idris",
    "StudyDescription": "Glimmerfen chest protocol",
    "SeriesDescription": "Hollowbrook axial",
    "ProtocolName": "Wuxtley protocol",
    "ImageComments": "Snorrigan comment",
    "AccessionNumber": "ACCQ7731X",
    "StudyID": "STUDYZ4451",
    "StudyDate": "19580922",
    "SeriesDate": "19580923",
    "AcquisitionDate": "19580924",
    "StationName": "Pemberlyn-CT-07",
    "DeviceSerialNumber": "SERIALQ88213",
}
PRIVATE_MARKER = "Brindlemoss private"
NAME_MARKER = "Ottermarsh"  # in the folder and file names


def _marker_tokens(uids: list[str]) -> list[str]:
    tokens = [v.split("^")[0] for v in MARKERS.values()]
    tokens += [v.split("^")[1] for v in MARKERS.values() if "^" in v]
    tokens += ["1929-06-13", "1958-09-22", PRIVATE_MARKER, NAME_MARKER, *uids]
    return tokens


def write_marked_series(folder: Path, n: int = 4) -> list[str]:
    """A small CT series with a unique marker in every identifying attribute, in file and folder
    names, and in a private tag; returns the UIDs written (which must never be stored either)."""
    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    uids = [study, series, frame]
    for k in range(n):
        sop = generate_uid()
        uids.append(sop)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality = "CT"
        ds.Manufacturer = "Acme"
        ds.InstanceNumber = k + 1
        for name, value in MARKERS.items():
            setattr(ds, name, value)
        ds.private_block(0x0011, "MEDMODELS HISTORY TEST", create=True).add_new(
            0x01, "LO", PRIVATE_MARKER
        )
        ds.ImagePositionPatient = ["0", "0", str(2.5 * k)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.7", "0.7"]
        ds.SliceThickness = "2.5"
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        pixels = np.full((16, 16), 1024 - 500, np.int16)
        pixels[4:12, 4:12] = 1024 + 300 + 10 * k
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"{NAME_MARKER}_{k:03d}.dcm", enforce_file_format=True)
    return uids


def test_predict_logs_by_default_and_history_stats_reports_it(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    series = tmp_path / "scan"
    write_marked_series(series)
    proc = run_cli("predict", "dense", str(series), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("prediction_id: ")]
    pid = line.split(": ")[1]
    assert uuid.UUID(pid)
    proc = run_cli("predict", "dense@1.0.0", str(series), "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    old_id = json.loads(proc.stdout)["prediction_id"]
    assert old_id and old_id != pid
    proc = run_cli("predict", "dense@1.0.0", str(series), "--json", "--no-log", env=cli_env)
    assert json.loads(proc.stdout)["prediction_id"] is None
    proc = run_cli("predict", "coarse", str(series), env=cli_env)
    assert proc.returncode == 2 and "logged as" in proc.stderr and "scan-mismatch" in proc.stderr

    proc = run_cli("history", "stats", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dense\n  1.1.0: 1 prediction (ok 1" in out and "  1.0.0: 1 prediction" in out
    assert "coarse\n  1.0.0: 1 prediction (ok 0, rejected 1" in out
    assert "latency p50/p95 ms: load" in out and "total" in out and "artifacts" in out

    settings = load_settings(**{"home": cli_env["MEDMODELS_HOME"]})
    db = open_database(settings)
    try:
        prod = get_prediction(db, pid)
        assert prod["alias"] == "production" and prod["version"] == "1.1.0"
        assert prod["shape_z"] == 4 and prod["spacing_x_mm"] == pytest.approx(0.7)
        assert get_prediction(db, old_id)["alias"] is None
        assert get_prediction(db, old_id)["series_hash"] == prod["series_hash"]
        assert set(prod["artifacts"]) == {"key_slice.png", "key_slice_overlay.png", "labels.npz"}
    finally:
        db.close()


def _everything_text(db_file: Path) -> str:
    """Every value of every table, as text (DuckDB may compress strings on disk, so a byte
    search of the file alone could miss one)."""
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        parts = []
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            parts += [repr(row) for row in con.execute(f'SELECT * FROM "{table}"').fetchall()]
        return "\n".join(parts)
    finally:
        con.close()


def test_no_identifying_marker_is_stored_anywhere(cli_env: dict[str, str], tmp_path: Path) -> None:
    series = tmp_path / f"{NAME_MARKER}-{MARKERS['PatientName']}"
    uids = write_marked_series(series)
    bad = tmp_path / "upload" / "bad.dcm"  # a truncated copy: its name is shown to its user
    bad.parent.mkdir()
    bad.write_bytes(next(series.iterdir()).read_bytes()[:700])
    planted = b"".join(p.read_bytes() for p in series.iterdir())
    for value in (*MARKERS.values(), PRIVATE_MARKER, *uids):
        assert value.encode() in planted  # the markers really are in the upload
    outputs = []
    for args in (
        ("predict", "dense", str(series)),
        ("predict", "dense@1.0.0", str(series), "--json"),
        ("predict", "coarse", str(series)),
        ("predict", "dense", str(bad)),
        ("history", "--json"),
        ("history", "--csv", str(tmp_path / "exports" / "all.csv")),
    ):
        proc = run_cli(*args, env=cli_env)
        assert "Traceback" not in proc.stderr, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    rows = json.loads(outputs[4])["predictions"]
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "rejected", "rejected"]
    assert {r["reason_code"] for r in rows} == {None, "scan-mismatch", "truncated"}

    home = Path(cli_env["MEDMODELS_HOME"])
    db_file = home / "history.duckdb"
    written = [p for p in home.rglob("*") if p.is_file()]
    written += list((tmp_path / "exports").iterdir())
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".npz" for p in written)
    haystacks = {str(p): p.read_bytes() for p in written}
    wal = db_file.with_name(db_file.name + ".wal")
    if wal.exists():
        haystacks["wal"] = wal.read_bytes()
    haystacks["tables"] = _everything_text(db_file).encode()
    haystacks["output"] = "\n".join(outputs).encode()
    for token in _marker_tokens(uids):
        for where, data in haystacks.items():
            assert token.encode() not in data, f"marker {token!r} found in {where}"
            assert token.encode("utf-16-le") not in data, f"marker {token!r} found in {where}"


def test_database_held_by_another_process_names_it(settings: Settings) -> None:
    open_database(settings).close()
    path = database_path(settings)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        env = {"MEDMODELS_HOME": str(settings.home), "MEDMODELS_STORE": str(settings.store)}
        proc = run_cli("history", env=env)
        assert proc.returncode == 4
        assert f"PID {holder.pid}" in proc.stderr and "in use by another process" in proc.stderr
        assert "Traceback" not in proc.stderr and "IO Error" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        proc = run_cli("feedback", "abcdef12", "--verdict", "agree", env=env)
        assert proc.returncode == 4 and f"PID {holder.pid}" in proc.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    # once it is gone, the database opens again and nothing was lost
    db = open_database(settings)
    try:
        assert db.schema_version() >= 1
    finally:
        db.close()


def test_predict_with_a_held_database_suggests_no_log(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings(home=cli_env["MEDMODELS_HOME"])
    db = open_database(settings)  # this test process holds it
    try:
        proc = run_cli("predict", "dense", str(tmp_path / "none"), env=cli_env)
        assert proc.returncode == 4
        assert "--no-log" in proc.stderr and "Traceback" not in proc.stderr
        assert f"PID {os.getpid()}" in proc.stderr
    finally:
        db.close()
