"""Crash safety of the prediction history: processes killed with SIGKILL while they log and while
they create the database, and a home folder that is full or cannot be created.

Real DuckDB files, real processes, real signals, no mocks. To kill many times in a few seconds, a
helper process imports MedModels once and forks one worker per round (:func:`_serve`); the test
SIGKILLs the worker at a random moment. A worker reports each step with one ``os.write`` of a
short line to a pipe (atomic), and only after the call it reports has returned, so every
``ack``/``fb`` line the test reads is a write the library acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from medmodels import ModelStore, Prediction, predict
from medmodels.config import load_settings
from medmodels.errors import HistoryError
from medmodels.history import artifacts as art
from medmodels.history.db import DB_FILE, MIGRATIONS, SCHEMA_VERSION, open_database
from medmodels.history.log import (
    FEEDBACK_REASONS,
    add_feedback,
    count,
    get_prediction,
    recent,
    record_prediction,
    record_rejection,
    version_stats,
)

from .helpers import ROOT, make_prediction, make_scan, publish_threshold

pytestmark = pytest.mark.slow

KILLS_WHILE_LOGGING = 20
KILLS_WHILE_CREATING = 15
ROUND_TIMEOUT_S = 60.0
_MAX_LOGS = 5000  # a worker that is never killed stops here and waits

# --------------------------------------------------------------------------------------------
# The worker side (runs in the helper process and its forks)


def _say(out: int, line: str) -> None:
    os.write(out, (line.replace("\n", " ")[:400] + "\n").encode())


def _seg_prediction() -> Prediction:
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[1, 1:3, 1:3] = 1
    return make_prediction(label_volume=labels)


def _log_job(home: Path, out: int) -> None:
    """Log predictions (with and without artifacts), classifications with feedback and
    rejections until killed; ``ack <id>`` / ``fb <id>`` after each call returns."""
    db = open_database(load_settings(home=home))
    _say(out, "open")
    scan = make_scan()
    seg = _seg_prediction()
    cls = make_prediction(task="classification", model="nodule", probability=0.7)
    for i in range(_MAX_LOGS):
        kind = i % 4
        if kind == 3:
            rid = record_rejection(
                db, model="lung-mask", reason_code="scan-mismatch", scan=scan, source="app"
            )
            _say(out, f"ack {rid}")
        elif kind == 1:
            rid = record_prediction(db, cls, scan, source="app", artifacts=False)
            _say(out, f"ack {rid}")
            add_feedback(db, rid, "disagree", reason="wrong-label", corrected_label="normal")
            _say(out, f"fb {rid}")
        else:
            rid = record_prediction(db, seg, scan, source="app", artifacts=kind == 0)
            _say(out, f"ack {rid}")
    _say(out, "done")
    time.sleep(600)


def _create_job(home: Path, out: int) -> None:
    """Open (and so create) the history under ``home``; ``go`` just before, ``open`` after."""
    settings = load_settings(home=home)
    _say(out, "go")
    open_database(settings)
    _say(out, "open")
    time.sleep(600)


_JOBS: dict[str, Callable[[Path, int], None]] = {"log": _log_job, "create": _create_job}


def _serve() -> None:
    """The helper process: for each ``<job> <home>`` line on stdin, fork a worker that runs the
    job, say ``pid <n>``, wait for it and say ``exit <n> <code>`` (negative: the signal)."""
    out = sys.stdout.fileno()
    for command in sys.stdin:
        job, home = command.rstrip("\n").split(" ", 1)
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                _JOBS[job](Path(home), out)
            except BaseException as exc:
                _say(out, f"error {type(exc).__name__}: {exc}")
                os._exit(1)
            os._exit(0)
        _say(out, f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(out, f"exit {pid} {os.waitstatus_to_exitcode(status)}")


# --------------------------------------------------------------------------------------------
# The test side


class Workers:
    """The helper process, seen from the test: run a job in a fresh worker and kill it."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.history.test_crash_safety import _serve; _serve()"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            # no thread pools in the helper, so forking it is safe
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.worker: int | None = None  # the worker of the round under way
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def _next(self, deadline: float) -> str:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no answer from the worker in time; {self.stderr()}") from None
        if line is None:
            raise AssertionError(f"the helper process ended; {self.stderr()}")
        if line.startswith("error "):
            raise AssertionError(f"the worker failed: {line}")
        return line

    def stderr(self) -> str:
        self._stderr.flush()
        return "stderr: " + self._log.read_text(errors="replace")[-2000:]

    def run(
        self, job: str, home: Path, *, after: str | None = None, delay: float | None = None
    ) -> tuple[list[str], float]:
        """Start ``job``; once it has said ``after`` (None: once it is forked), wait ``delay``
        seconds (None: until it says ``open``) and SIGKILL it. Returns its lines and the
        seconds from ``after`` to the kill."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{job} {home}\n".encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        lines: list[str] = []
        pid = None
        while pid is None or (after is not None and after not in lines):
            line = self._next(deadline)
            if line.startswith("pid "):
                pid = self.worker = int(line.split()[1])
            else:
                lines.append(line)
        t0 = time.monotonic()
        if delay is None:
            while "open" not in lines:
                lines.append(self._next(deadline))
        else:
            time.sleep(delay)
        elapsed = time.monotonic() - t0
        os.kill(pid, signal.SIGKILL)
        while not (line := self._next(deadline)).startswith(f"exit {pid} "):
            lines.append(line)
        self.worker = None
        assert int(line.split()[2]) == -signal.SIGKILL, f"the worker was not killed: {line}"
        return lines, elapsed

    def close(self) -> None:
        """Kill a worker left waiting by a failed round, then end the helper."""
        if self.worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker, signal.SIGKILL)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if the helper hangs
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    server = Workers(tmp_path / "helper-stderr.log")
    try:
        yield server
    finally:
        server.close()


def _ids(lines: list[str], kind: str) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith(f"{kind} ")]


def test_killing_a_process_while_it_logs_loses_no_acknowledged_row(
    workers: Workers, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    rng = random.Random(7)
    acked: list[str] = []
    feedback: list[str] = []
    opened = 0
    for _ in range(KILLS_WHILE_LOGGING):
        # From the fork on: some kills land while the file is opened and its log replayed,
        # most while predictions, artifacts and feedback are being written.
        lines, _ = workers.run("log", home, delay=rng.uniform(0.0, 0.5))
        opened += "open" in lines
        acked += _ids(lines, "ack")
        feedback += _ids(lines, "fb")
    assert opened >= KILLS_WHILE_LOGGING // 4, "too few kills landed while logging"
    assert len(acked) >= 2 * KILLS_WHILE_LOGGING, "too few predictions were logged to judge"

    db = open_database(load_settings(home=home))  # the file opens
    try:
        assert db.schema_version() == SCHEMA_VERSION
        with db.cursor() as cur:
            migrations = cur.execute(
                "SELECT version, name, applied_at IS NOT NULL FROM schema_migrations ORDER BY 1"
            ).fetchall()
            cur.execute(
                "SELECT id, status, task, reason_code, total_ms, shape_z, intensity_mean, "
                "host_id, labels, output_value, top_label, decision, artifacts_ms "
                "FROM predictions"
            )
            names = [d[0] for d in cur.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            fb_rows = cur.execute(
                "SELECT f.prediction_id, f.verdict, f.reason, f.corrected_label, p.id IS NULL "
                "FROM feedback f LEFT JOIN predictions p ON p.id = f.prediction_id"
            ).fetchall()
        assert migrations == [(m.number, m.name, True) for m in MIGRATIONS]

        stored = {str(r["id"]): r for r in rows}
        assert len(stored) == len(rows)
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged predictions were lost"
        # A kill between a commit and its acknowledgement leaves at most one unacknowledged row.
        assert len(stored) - len(set(acked)) <= KILLS_WHILE_LOGGING

        for pid, row in stored.items():  # no partial rows
            labels = row["labels"]
            assert row["host_id"] and row["shape_z"] == 2, pid
            assert row["intensity_mean"] is not None, pid
            if row["status"] == "rejected":
                assert row["reason_code"] == "scan-mismatch", pid
                assert labels is None and row["total_ms"] is None, pid
                continue
            assert row["status"] == "ok" and row["total_ms"] == 10.0, pid
            assert [lab["idx"] for lab in labels] == [0, 1], pid
            if row["task"] == "segmentation":
                assert [lab["name"] for lab in labels] == ["background", "lung"], pid
                assert row["output_value"] == labels[1]["volume_ml"] == 10.0, pid
            else:
                assert row["task"] == "classification", pid
                assert row["top_label"] == "nodule" and row["decision"] is True, pid
                assert sum(lab["probability"] for lab in labels) == pytest.approx(1.0), pid
            if row["artifacts_ms"] is not None:  # a logged row's artifacts are complete
                files = art.list_artifacts(db.home, pid)
                assert set(files) == {art.KEY_SLICE, art.KEY_SLICE_OVERLAY, art.LABELS}, pid
                with np.load(files[art.LABELS]) as npz:
                    assert npz["labels"].shape == (2, 4, 4)

        assert all(orphan is False for *_, orphan in fb_rows), "feedback without its prediction"
        assert {(v, r, c) for _, v, r, c, _ in fb_rows} == {("disagree", "wrong-label", "normal")}
        fb_ids = [str(r[0]) for r in fb_rows]
        assert set(feedback) <= set(fb_ids), "acknowledged feedback was lost"
        assert len(fb_ids) - len(feedback) <= KILLS_WHILE_LOGGING
        assert all(stored[p]["task"] == "classification" for p in fb_ids)

        # Everything is readable, and the file still takes writes.
        assert count(db) == len(stored)
        assert sum(s.predictions for s in version_stats(db)) == len(stored)
        assert len(recent(db, limit=len(stored))) == len(stored)
        last = record_prediction(db, make_prediction(), make_scan(), artifacts=False)
        assert get_prediction(db, last)["status"] == "ok"
    finally:
        db.close()


def _file_is_complete(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        versions = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    finally:
        con.close()
    return {"predictions", "feedback", "schema_migrations"} <= tables and versions == (
        SCHEMA_VERSION,
    )


def test_killing_the_first_open_never_leaves_a_file_that_refuses_to_open(
    workers: Workers, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    final = home / DB_FILE
    # How long creating the file takes here, to spread the kills over it.
    _, took = workers.run("create", home, after="go")
    assert _file_is_complete(final)
    final.unlink()
    rng = random.Random(11)
    outcomes = {"before": 0, "after": 0}
    for _ in range(KILLS_WHILE_CREATING):
        workers.run("create", home, after="go", delay=rng.uniform(0.0, 1.3 * took))
        if final.exists():
            # Under the final name there is only ever a complete database.
            assert _file_is_complete(final)
            outcomes["after"] += 1
        else:
            outcomes["before"] += 1
        db = open_database(load_settings(home=home))
        try:
            assert db.schema_version() == SCHEMA_VERSION
            record_prediction(db, make_prediction(), make_scan(), artifacts=False)
            assert count(db) == 1
        finally:
            db.close()
        # Start the next round from "no database yet", keeping the leftovers of killed
        # creations: they must not get in the way.
        final.unlink()
        final.with_name(DB_FILE + ".wal").unlink(missing_ok=True)
    assert outcomes["before"] >= 1, f"no kill landed during creation: {outcomes}"
    leftovers = sorted(p.name for p in home.iterdir() if p.name.startswith("."))
    assert all(name.startswith(f".{DB_FILE}.") for name in leftovers), leftovers


# --------------------------------------------------------------------------------------------
# A home folder that cannot be created, a disk that is full


def test_a_home_folder_that_cannot_be_created_gives_a_history_error_and_predictions_still_run(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the home folder's parent should be")
    settings = load_settings(home=blocker / "home", store=tmp_path / "store")
    store = ModelStore(settings.store)
    publish_threshold(store, tmp_path / "build", "dense", "1.0.0", 0.0)

    prediction = predict(make_scan(), store.get("dense"))
    assert prediction.labels[1].voxels == 31

    with pytest.raises(HistoryError) as info:
        open_database(settings)
    message = str(info.value)
    assert "cannot be created (Not a directory)" in message
    assert "MEDMODELS_HOME" in message and "duckdb" not in message.lower()


def _error(call: Callable[[], Any]) -> dict[str, str] | None:
    try:
        call()
    except Exception as exc:
        return {"type": type(exc).__name__, "message": str(exc)}
    return None


def _disk_full_child(base: str) -> None:
    """Run in a child process: writes to regular files fail with EFBIG while ``full`` (a file
    size limit of 0, SIGXFSZ ignored), as on a full disk. Prints what happened as JSON."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def full(on: bool) -> None:
        limit = 0 if on else resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    root = Path(base)
    store = ModelStore(root / "store")
    publish_threshold(store, root / "build", "dense", "1.0.0", 0.0)
    model, scan = store.get("dense"), make_scan()
    seen: dict[str, Any] = {}

    full(True)  # a first use on a full disk
    seen["new"] = _error(lambda: open_database(load_settings(home=root / "new")))
    full(False)
    seen["new_files"] = sorted(p.name for p in (root / "new").iterdir())

    db = open_database(load_settings(home=root / "used"))
    first = record_prediction(db, predict(scan, model), scan)  # secret, artifacts, row
    full(True)  # the disk fills up while the history is in use
    prediction = predict(scan, model)
    seen["predicts_while_full"] = prediction.labels[1].voxels
    seen["log"] = _error(lambda: record_prediction(db, prediction, scan, artifacts=False))
    seen["log_artifacts"] = _error(lambda: record_prediction(db, prediction, scan))
    seen["rejection"] = _error(lambda: record_rejection(db, model="dense", reason_code="x"))
    seen["feedback"] = _error(lambda: add_feedback(db, first, "agree"))
    seen["count_while_full"] = count(db)
    seen["artifacts_while_full"] = sorted(p.name for p in art.artifacts_root(db.home).iterdir())
    full(False)  # space again: the same connection logs without a restart
    second = record_prediction(db, prediction, scan)
    add_feedback(db, second, "agree", reason=next(iter(FEEDBACK_REASONS)))
    seen["ids"] = [first, second]
    seen["count_after"] = count(db)
    db.close()
    sys.stdout.write(json.dumps(seen))


def test_a_full_disk_gives_clear_history_errors_and_logging_resumes_when_space_returns(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests.history.test_crash_safety import _disk_full_child; "
            "_disk_full_child(sys.argv[1])",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)

    # A new history on a full disk: a plain error, and no file under the final name.
    assert seen["new"]["type"] == "HistoryError"
    assert "cannot be written (File too large)" in seen["new"]["message"]
    assert "disk is full" in seen["new"]["message"] and "MEDMODELS_HOME" in seen["new"]["message"]
    assert seen["new_files"] == []

    # Predictions still run; each write fails with a HistoryError that says why, not DuckDB's.
    assert seen["predicts_while_full"] == 31
    for what in ("log", "rejection", "feedback"):
        error = seen[what]
        assert error["type"] == "HistoryError", (what, error)
        assert "cannot be written (File too large): the disk is full" in error["message"], what
        assert "IO Error" not in error["message"] and "TransactionContext" not in error["message"]
    error = seen["log_artifacts"]
    assert error["type"] == "HistoryError", error
    assert "artifacts cannot be written" in error["message"]
    assert "File too large" in error["message"] and "MEDMODELS_HOME" in error["message"]
    first, second = seen["ids"]
    assert seen["count_while_full"] == 1
    assert seen["artifacts_while_full"] == [first]  # nothing half-written left behind
    assert seen["count_after"] == 2

    db = open_database(load_settings(home=tmp_path / "used"))
    try:
        assert [r["id"] for r in recent(db)] == [second, first]
        assert get_prediction(db, first)["verdict"] is None
        assert get_prediction(db, second)["verdict"] == "agree"
        assert set(get_prediction(db, second)["artifacts"]) >= {art.KEY_SLICE, art.LABELS}
    finally:
        db.close()
