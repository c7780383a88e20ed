"""The database file: atomic creation, migrations (upgrading an old file), the per-process
connection registry, cursors from several threads, the local secret and the series hash."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from medmodels.config import Settings
from medmodels.errors import HistoryError
from medmodels.history import db as dbmod
from medmodels.history.db import MIGRATIONS, SCHEMA_VERSION, Database, open_database
from medmodels.history.log import (
    add_feedback,
    recent,
    record_prediction,
    series_hash,
    version_stats,
)
from medmodels.history.secrets import home_secret

from .helpers import make_prediction, make_scan

# Migration 1 exactly as first released: an old database file is built from this text.
MIGRATION_1_SQL = (
    """CREATE TABLE predictions (
    id UUID PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('ok', 'rejected', 'failed')),
    reason_code VARCHAR,
    source VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    version VARCHAR,
    alias VARCHAR,
    task VARCHAR,
    model_sha256 VARCHAR,
    manifest_sha256 VARCHAR,
    onnxruntime_version VARCHAR,
    provider VARCHAR,
    host_id VARCHAR,
    load_ms DOUBLE,
    preprocess_ms DOUBLE,
    infer_ms DOUBLE,
    postprocess_ms DOUBLE,
    total_ms DOUBLE,
    modality VARCHAR,
    kind VARCHAR,
    source_format VARCHAR,
    manufacturer VARCHAR,
    manufacturer_model VARCHAR,
    body_part VARCHAR,
    shape_z INTEGER,
    shape_y INTEGER,
    shape_x INTEGER,
    slice_count INTEGER,
    spacing_x_mm DOUBLE,
    spacing_y_mm DOUBLE,
    spacing_z_mm DOUBLE,
    slice_thickness_mm DOUBLE,
    intensity_mean DOUBLE,
    intensity_std DOUBLE,
    intensity_p1 DOUBLE,
    intensity_p50 DOUBLE,
    intensity_p99 DOUBLE,
    series_hash VARCHAR,
    top_label VARCHAR,
    top_probability DOUBLE,
    decision BOOLEAN,
    threshold DOUBLE,
    output_value DOUBLE,
    labels STRUCT(
        idx INTEGER, name VARCHAR, probability DOUBLE, voxels BIGINT, volume_ml DOUBLE
    )[],
    warnings VARCHAR[]
)""",
    "CREATE SEQUENCE feedback_seq",
    """CREATE TABLE feedback (
    seq BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
    prediction_id UUID NOT NULL,
    created_at TIMESTAMP NOT NULL,
    verdict VARCHAR NOT NULL CHECK (verdict IN ('agree', 'disagree', 'unsure')),
    reason VARCHAR,
    corrected_label VARCHAR,
    note VARCHAR
)""",
)
OLD_ID = "11111111-2222-3333-4444-555555555555"


def test_migration_1_is_never_edited() -> None:
    assert MIGRATIONS[0].statements == MIGRATION_1_SQL
    assert [m.number for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_new_database_is_created_complete_and_nothing_else_is_left(settings: Settings) -> None:
    db = open_database(settings)
    try:
        assert db.schema_version() == SCHEMA_VERSION
        assert db.created and db.found_version == SCHEMA_VERSION
        with db.cursor() as cur:
            tables = {
                r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            applied = cur.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert {"predictions", "feedback", "schema_migrations"} <= tables
        assert [v for (v,) in applied] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        db.close()
    leftovers = [p.name for p in Path(settings.home).iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_racing_creators_end_with_one_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    errors: list[BaseException] = []

    def create() -> None:
        try:
            dbmod._create_atomically(path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            SCHEMA_VERSION,
        )
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.duckdb"]


def _old_database(path: Path) -> None:
    """A database as migration 1 left it, with one prediction and two feedback rows."""
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    con.execute(dbmod._MIGRATIONS_TABLE)
    for statement in MIGRATION_1_SQL:
        con.execute(statement)
    con.execute("INSERT INTO schema_migrations VALUES (1, 'predictions and feedback', now())")
    con.execute(
        "INSERT INTO predictions (id, created_at, status, source, model, version, task, "
        "total_ms, output_value, labels) VALUES (?, ?, 'ok', 'cli', 'lung-mask', '1.0.0', "
        "'segmentation', 42.0, 7.5, [{'idx': 1, 'name': 'lung', 'probability': NULL, "
        "'voxels': 3, 'volume_ml': 7.5}])",
        [OLD_ID, datetime(2026, 1, 5, 12, 0)],
    )
    for verdict in ("disagree", "agree"):
        con.execute(
            "INSERT INTO feedback (prediction_id, created_at, verdict) VALUES (?, ?, ?)",
            [OLD_ID, datetime(2026, 1, 6), verdict],
        )
    con.close()


def test_old_schema_file_is_upgraded_and_its_rows_stay_readable(settings: Settings) -> None:
    _old_database(dbmod.database_path(settings))
    db = open_database(settings)
    try:
        assert db.found_version == 1 and not db.created
        assert db.schema_version() == SCHEMA_VERSION
        (row,) = recent(db)
        assert row["id"] == OLD_ID and row["total_ms"] == 42.0 and row["artifacts_ms"] is None
        assert row["verdict"] == "agree"  # the view added by migration 2 sees the old feedback
        (stats,) = version_stats(db)
        assert stats.predictions == 1 and stats.agree == 1 and stats.mean_output == 7.5
        # and the upgraded file takes new rows
        pid = record_prediction(db, make_prediction(), make_scan(), artifacts=False)
        add_feedback(db, pid, "unsure")
        assert len(recent(db)) == 2
    finally:
        db.close()
    # opening again applies nothing
    db = open_database(settings)
    try:
        assert db.found_version == SCHEMA_VERSION
    finally:
        db.close()


def test_database_from_a_newer_medmodels_is_refused(settings: Settings) -> None:
    db = open_database(settings)
    with db.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', now())")
    db.close()
    with pytest.raises(HistoryError, match="newer than this MedModels"):
        open_database(settings)


def test_a_file_that_is_not_a_database_gives_a_clear_error(settings: Settings) -> None:
    path = dbmod.database_path(settings)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(HistoryError, match="cannot be opened") as info:
        open_database(settings)
    assert "move it aside" in str(info.value)


def test_one_connection_per_process_and_a_cursor_per_thread(settings: Settings) -> None:
    db = open_database(settings)
    try:
        assert open_database(settings) is db
        results: list[int] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(20):
                with db.cursor() as cur:
                    (n,) = cur.execute("SELECT count(*) FROM range(1000)").fetchone() or (0,)
                with lock:
                    results.append(int(n))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [1000] * 120
    finally:
        db.close()
    assert db.closed
    again = open_database(settings)
    try:
        assert again is not db and not again.closed
    finally:
        again.close()
    with pytest.raises(HistoryError, match="closed"), db.cursor():
        pass


def test_secret_is_private_stable_and_separate_per_name(settings: Settings) -> None:
    first = home_secret(settings, "history")
    assert len(first) == 32
    path = Path(settings.home) / "secrets" / "history.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert home_secret(settings, "history") == first
    assert home_secret(settings, "share-links") != first
    with pytest.raises(ValueError):
        home_secret(settings, "../escape")


def test_series_hash_is_an_hmac_of_the_fingerprint_under_the_local_secret(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    scan = make_scan(fingerprint="0123456789abcdef" * 2)
    expected = hmac.new(
        home_secret(settings, "history"), scan.fingerprint.encode(), hashlib.sha256
    ).hexdigest()
    assert series_hash(db, scan) == expected != scan.fingerprint
    pid = record_prediction(db, make_prediction(), scan, artifacts=False)
    (row,) = recent(db)
    assert row["id"] == pid and row["series_hash"] == expected
    db.checkpoint()
    assert scan.fingerprint.encode() not in dbmod.database_path(settings).read_bytes()
    other = Settings(home=tmp_path / "other-home", store=tmp_path / "store")
    other_db = open_database(other)
    try:
        assert series_hash(other_db, scan) != expected  # not comparable across sites
    finally:
        other_db.close()


def test_stale_temp_files_of_an_interrupted_creation_are_removed(settings: Settings) -> None:
    import os
    import time

    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    stale = home / f".{dbmod.DB_FILE}.deadbeef.tmp"
    fresh = home / f".{dbmod.DB_FILE}.cafef00d.tmp"
    stale.write_bytes(b"half a database")
    fresh.write_bytes(b"another process is creating this one")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    open_database(settings)
    assert not stale.exists()
    assert fresh.exists()  # could belong to a creator still at work
