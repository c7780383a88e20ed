"""The prediction history database: one DuckDB file under the home folder, its migrations, and
the one connection each process keeps to it.

Decisions:

* DuckDB lets one process open a database file for writing. :func:`open_database` keeps one
  ``duckdb.connect()`` per process and file (a registry keyed by the resolved path, behind a
  lock); :meth:`Database.cursor` hands out ``con.cursor()`` per call, because one connection
  shared by several threads fails with "connection is busy".
* A new file is created atomically: the schema is built in a temporary file in the same folder,
  checkpointed and closed, then hard-linked into place (two processes racing both end up with
  one complete file). A half-created database is never visible.
* Schema changes are numbered :data:`MIGRATIONS`, each applied in its own transaction and
  recorded in ``schema_migrations``. A published migration is never edited; add a new one.
* When another process holds the file, :class:`DatabaseBusyError` names that process (DuckDB's
  lock error carries its PID) instead of showing DuckDB's error.
* Connections are checkpointed and closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from medmodels.config import Settings
from medmodels.errors import DatabaseBusyError, HistoryError

DB_FILE = "history.duckdb"


@dataclass(frozen=True)
class Migration:
    """One numbered schema change: SQL statements applied together in one transaction."""

    number: int
    name: str
    statements: tuple[str, ...]


# Migration 1 is the schema as first released. Never edit a migration once published.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "predictions and feedback",
        (
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
        ),
    ),
    Migration(
        2,
        "artifact timing, library version, latest-feedback view",
        (
            "ALTER TABLE predictions ADD COLUMN artifacts_ms DOUBLE",
            "ALTER TABLE predictions ADD COLUMN medmodels_version VARCHAR",
            """CREATE VIEW latest_feedback AS
SELECT * FROM feedback
QUALIFY row_number() OVER (PARTITION BY prediction_id ORDER BY seq DESC) = 1""",
        ),
    ),
    Migration(
        3,
        "share links",
        (
            # Read-only links to one prediction (medmodels.share); naive UTC timestamps.
            """CREATE TABLE IF NOT EXISTS shares (
    id VARCHAR PRIMARY KEY,
    prediction_id UUID NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    card_markdown VARCHAR
)""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].number

_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)"""

_LOCK_PID = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


def _program_name(program: str | None, pid: int | None) -> str | None:
    """A short, path-free name for the process holding the lock."""
    if pid is not None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        args = [a.decode(errors="replace") for a in argv if a][:4]
        if any("streamlit" in Path(a).name for a in args[:3]):
            return "the MedModels app (streamlit)"
        if any(Path(a).name == "medmodels" for a in args[:2]) or any(
            "medmodels.cli" in a for a in args
        ):
            return "a medmodels command"
    return Path(program).name if program else None


# How DuckDB words the operating-system errors that mean the home folder takes no more writes.
_NOT_WRITABLE = (
    "File too large",  # EFBIG: a file-size limit (RLIMIT_FSIZE, quota-like limits)
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
)


def _write_error(path: Path, text: str) -> HistoryError | None:
    """A plain-words error when ``text`` (a DuckDB message) says that the history file at
    ``path`` (or its write-ahead log or temporary copy) cannot be written because the disk is
    full or the folder is read-only; None otherwise (an export's target, for one)."""
    reason = next((r for r in _NOT_WRITABLE if r in text), None)
    if reason is None or path.name not in text:
        return None
    return HistoryError(
        f"The prediction history {path} cannot be written ({reason}): the disk is full or the "
        "folder is read-only, and nothing was saved. Free some space, or set MEDMODELS_HOME to "
        "a writable folder."
    )


def _open_error(path: Path, exc: duckdb.Error) -> HistoryError:
    text = str(exc)
    match = _LOCK_PID.search(text)
    if match or "Could not set lock" in text:
        pid = int(match.group("pid")) if match else None
        program = _program_name(match.group("program") if match else None, pid)
        who = f"{program} (PID {pid})" if program and pid else (f"PID {pid}" if pid else None)
        holder = f"another process: {who}" if who else "another process"
        return DatabaseBusyError(
            f"The prediction history {path} is in use by {holder}. DuckDB lets one process "
            "write it at a time: stop that process (or wait for it to finish) and try again.",
            pid=pid,
            program=program,
        )
    not_writable = _write_error(path, text)
    if not_writable is not None:
        return not_writable
    first = text.splitlines()[0] if text else type(exc).__name__
    return HistoryError(
        f"The prediction history {path} cannot be opened ({first}). If the file is damaged or "
        "was written by a newer DuckDB, move it aside; a new one is created on next use."
    )


def _apply_migrations(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version found before."""
    con.execute(_MIGRATIONS_TABLE)
    applied = {int(v) for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    before = max(applied, default=0)
    if before > SCHEMA_VERSION:
        raise HistoryError(
            f"The prediction history {path} has schema version {before}, newer than this "
            f"MedModels understands ({SCHEMA_VERSION}). Upgrade MedModels, or point "
            "MEDMODELS_HOME at another folder."
        )
    for migration in MIGRATIONS:
        if migration.number in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)",
                [migration.number, migration.name],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return before


def _create_atomically(path: Path) -> None:
    """Create ``path`` with the full schema, or leave it alone if another process won."""
    _remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            _apply_migrations(con, path)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _remove_stale_temps(path: Path, *, older_than_s: float = 3600.0) -> None:
    """Delete temp files an interrupted creation left behind (an hour old: never a live one)."""
    cutoff = time.time() - older_than_s
    for leftover in path.parent.glob(f".{path.name}.*.tmp*"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


class Database:
    """The process's open history database; get it with :func:`open_database`."""

    def __init__(self, path: Path, settings: Settings, con: duckdb.DuckDBPyConnection):
        self.path = path
        self.settings = settings
        self._con: duckdb.DuckDBPyConnection | None = con
        self._lock = threading.Lock()
        self.found_version = 0  # the schema version the file had when this process opened it
        self.created = False  # whether this process created the file

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @property
    def home(self) -> Path:
        """The home folder (holds artifacts and secrets next to the database)."""
        return self.path.parent

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._con is None

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one call (or one thread), closed afterwards.

        DuckDB errors raised inside become :class:`HistoryError` with DuckDB's first line."""
        with self._lock:
            if self._con is None:
                raise HistoryError(f"The prediction history {self.path} is closed.")
            cur = self._con.cursor()
        try:
            yield cur
        except duckdb.Error as exc:
            not_writable = _write_error(self.path, str(exc))
            if not_writable is not None:
                raise not_writable from exc
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HistoryError(f"The prediction history query failed: {first}") from exc
        finally:
            cur.close()

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self.cursor() as cur:
            row = cur.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def checkpoint(self) -> None:
        """Merge the write-ahead log into the database file."""
        with self.cursor() as cur:
            cur.execute("CHECKPOINT")

    def close(self) -> None:
        """Checkpoint and close the connection, and forget it in the registry."""
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.path) is self:
                del _REGISTRY[self.path]
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.execute("CHECKPOINT")
            con.close()


_REGISTRY: dict[Path, Database] = {}
_REGISTRY_LOCK = threading.Lock()


def database_path(settings: Settings) -> Path:
    """Where the history database of ``settings`` lives."""
    return Path(settings.home) / DB_FILE


def open_database(settings: Settings) -> Database:
    """The process's connection to the history database under ``settings.home``, created and
    migrated on first use.

    Raises :class:`DatabaseBusyError` (naming the process) when another process holds the file,
    :class:`HistoryError` when it cannot be opened or is from a newer MedModels."""
    path = database_path(settings).resolve()
    with _REGISTRY_LOCK:
        db = _REGISTRY.get(path)
        if db is not None and not db.closed:
            return db
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"The history folder {path.parent} cannot be created ({exc.strerror}); set "
                "MEDMODELS_HOME to a writable folder."
            ) from None
        created = False
        try:
            if not path.exists():
                _create_atomically(path)
                created = True
            con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise _open_error(path, exc) from None
        try:
            before = _apply_migrations(con, path)
            con.execute("SET GLOBAL TimeZone = 'UTC'")
        except duckdb.Error as exc:
            con.close()
            not_writable = _write_error(path, str(exc))
            if not_writable is not None:
                raise not_writable from None
            raise HistoryError(
                f"The prediction history {path} could not be upgraded to schema version "
                f"{SCHEMA_VERSION} ({str(exc).splitlines()[0]}). Nothing was changed; move the "
                "file aside to start a new history."
            ) from None
        except BaseException:
            con.close()
            raise
        db = Database(path, settings, con)
        db.found_version = before
        db.created = created
        _REGISTRY[path] = db
        return db


def close_all() -> None:
    """Checkpoint and close every open history database (runs at interpreter exit)."""
    with _REGISTRY_LOCK:
        open_dbs = list(_REGISTRY.values())
    for db in open_dbs:
        db.close()


atexit.register(close_all)
