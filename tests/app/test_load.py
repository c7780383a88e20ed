"""The app under load and with a history it cannot write: eight sessions predicting and giving
feedback at once in one process (sharing the cached DuckDB connection, as real sessions do), and
a home folder that cannot be created or a disk that is full.

Browser-less sessions are AppTests. AppTest swaps process-wide globals around every run (the
Runtime instance, ``config.get_option``, a fresh script cache) and puts them back afterwards,
which races when several run at once; :func:`_one_server` installs them once for all sessions,
as a running server has them, and turns the per-run swaps into no-ops.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import streamlit.testing.v1.app_test as app_test_module
import streamlit.testing.v1.local_script_runner as local_runner_module
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from medmodels import load_settings
from medmodels.history import count, get_prediction, open_database

from .conftest import APP, ROOT, SAMPLE_STORE, SAMPLES, errors, sample_store_problem, texts

pytestmark = pytest.mark.slow

SESSIONS = 8
PHANTOM_ZIP = SAMPLES / "ct-chest-phantom.zip"
BUSY = ("busy", "could not be saved", "something went wrong")


@contextlib.contextmanager
def _one_server() -> Iterator[None]:
    """Process-wide Streamlit state shared by every AppTest run until the block ends."""
    runtime_class = app_test_module.Runtime

    class RuntimeSlot:  # takes AppTest's per-run ``Runtime._instance = ...`` assignments
        _instance = None

    runtime = mock.MagicMock(spec=runtime_class)
    runtime.media_file_mgr = app_test_module.MediaFileManager(
        app_test_module.MemoryMediaFileStorage("/mock/media")
    )
    runtime.dataframe_source_mgr = app_test_module.DataframeSourceManager()
    runtime.cache_storage_manager = app_test_module.MemoryCacheStorageManager()
    components = app_test_module.BidiComponentManager()
    components.discover_and_register_components(start_file_watching=False)
    runtime.bidi_component_registry = components
    script_cache = app_test_module.ScriptCache()  # compiles each page once, under a lock
    runtime_class._instance = runtime
    try:
        with (
            patch_config_options({"global.appTest": True}),
            mock.patch.object(app_test_module, "Runtime", RuntimeSlot),
            mock.patch.object(
                app_test_module, "patch_config_options", lambda _: contextlib.nullcontext()
            ),
            mock.patch.object(app_test_module, "ScriptCache", lambda: script_cache),
            mock.patch.object(local_runner_module, "ScriptCache", lambda: script_cache),
        ):
            yield
    finally:
        runtime_class._instance = None


@pytest.fixture
def target(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The model the sessions run: ct-body-lung from model_store/ when its sample models load,
    else the test store's air-mask (the sample models may be being rebuilt)."""
    if sample_store_problem() is None:
        monkeypatch.setenv("MEDMODELS_STORE", str(SAMPLE_STORE))
        return "ct-body-lung"
    return "air-mask"


def _feedback_counts() -> tuple[int, int]:
    db = open_database(load_settings())
    with db.cursor() as cur:
        (feedback,) = cur.execute("SELECT count(*) FROM feedback").fetchone() or (0,)
    return count(db), int(feedback)


def _submit(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.proto.label == label).click().run()


def _session(i: int, model: str, start: threading.Barrier) -> dict[str, Any]:
    """One user: open the Try page on ``model``, bring the phantom (half of them upload the
    zip, half pick the sample), run, and say what they think."""
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params["model"] = model
    at.run()
    start.wait(timeout=180)
    if i % 2:
        files = [("phantom.zip", PHANTOM_ZIP.read_bytes(), "application/zip")]
        at.file_uploader(key="try_files").set_value(files).run()
    else:
        at.radio(key="try_source").set_value("Sample scan").run()
        at.selectbox(key="try_sample").set_value("ct-chest-phantom").run()
    at.button(key="try_run").click().run()
    result = at.session_state.get("try_result")
    record_id = result.record_id if result else None
    verdict = ("agree", "disagree", "unsure")[i % 3]
    if record_id:  # otherwise there is no feedback form; the test says why
        at.radio(key="try_feedback_verdict").set_value(verdict)
        at.selectbox(key="try_feedback_reason").set_value("boundary")
        _submit(at, "Save feedback")
    return {
        "record_id": record_id,
        "verdict": verdict,
        "exceptions": [str(e.value) for e in at.exception],
        "errors": errors(at),
        "text": texts(at),
        "saved": [s.value for s in at.success if "Feedback saved" in s.value],
    }


def _around(text: str, words: tuple[str, ...]) -> str:
    """The lines of ``text`` that contain one of ``words``."""
    return "\n".join(line for line in text.splitlines() if any(w in line.lower() for w in words))


def test_eight_sessions_predict_and_give_feedback_at_once(target: str) -> None:
    predictions_before, feedback_before = _feedback_counts()
    results: dict[int, dict[str, Any]] = {}
    failures: dict[int, BaseException] = {}
    start = threading.Barrier(SESSIONS)

    def user(i: int) -> None:
        try:
            results[i] = _session(i, target, start)
        except BaseException as exc:  # reported below
            failures[i] = exc
            start.abort()

    with _one_server():
        threads = [threading.Thread(target=user, args=(i,)) for i in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not [t for t in threads if t.is_alive()], "a session did not finish"
    assert not failures, failures

    for i, result in sorted(results.items()):
        assert result["exceptions"] == [], (i, result["exceptions"])
        assert result["errors"] == [], (i, result["errors"])
        lowered = result["text"].lower()
        assert not [w for w in BUSY if w in lowered], (i, _around(result["text"], BUSY))
        assert result["record_id"], i
        assert len(result["saved"]) == 1, (i, result["text"][-800:])

    ids = {r["record_id"] for r in results.values()}
    assert len(ids) == SESSIONS
    assert _feedback_counts() == (predictions_before + SESSIONS, feedback_before + SESSIONS)
    db = open_database(load_settings())
    for result in results.values():
        record = get_prediction(db, result["record_id"])
        assert (record["status"], record["source"], record["model"]) == ("ok", "app", target)
        assert record["verdict"] == result["verdict"]
        assert record["feedback"][-1]["reason"] == "boundary"


# --------------------------------------------------------------------------------------------
# A history the app cannot write


@pytest.fixture
def unwritable_home(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MEDMODELS_HOME under a regular file, so its folder cannot be created (even by root)."""
    blocker = app_env / "not-a-folder"
    blocker.write_text("a file where the home folder's parent should be")
    monkeypatch.setenv("MEDMODELS_HOME", str(blocker / "home"))
    return blocker / "home"


def test_the_try_page_still_predicts_when_the_home_folder_cannot_be_created(
    make_app: Callable[..., AppTest], unwritable_home: Path
) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    assert not at.exception
    assert errors(at) == []
    result = at.session_state["try_result"]
    assert result.record_id is None
    volumes = next(d.value for d in at.dataframe if "Volume (mL)" in d.value.columns)
    assert float(volumes["Volume (mL)"][0]) > 1000  # the result is shown
    warning = "\n".join(w.value for w in at.warning)
    assert "could not be saved to the history" in warning
    assert "cannot be created (Not a directory)" in warning and "MEDMODELS_HOME" in warning
    assert not [b for b in at.button if b.proto.label == "Save feedback"]
    # The next run still works (and still says so), rather than crashing.
    at.button(key="try_run").click().run()
    assert not at.exception and errors(at) == []
    assert not unwritable_home.exists()


def test_the_try_page_says_plainly_that_logging_is_unavailable(
    make_app: Callable[..., AppTest], unwritable_home: Path
) -> None:
    at = make_app(model="air-mask", sample="ct-chest-phantom").run()
    assert not at.exception
    text = texts(at)
    assert "Prediction logging is off" not in text  # it is on; the history is unwritable
    in_status = {w.value for s in at.status for w in s.warning}
    visible = [w.value for w in at.warning if w.value not in in_status]
    visible += [c.value for c in at.caption]
    assert [v for v in visible if "not saved to the history" in v or "unavailable" in v]


def _disk_full_session() -> None:
    """Run in a child process on the test's home and store: log once while there is space,
    then fill the 'disk' (a file size limit of 0, SIGXFSZ ignored) and run the Try page's deep
    link; then free the space and run again. Prints what the page showed as JSON."""
    from medmodels.history import record_prediction
    from tests.history.helpers import make_prediction, make_scan

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    db = open_database(load_settings())
    record_prediction(db, make_prediction(), make_scan())  # a home folder in use
    seen: dict[str, Any] = {"before": count(db)}

    def full(on: bool) -> None:
        limit = 0 if on else resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(model="air-mask", sample="ct-chest-phantom")
    full(True)
    at.run()
    result = at.session_state.get("try_result")
    seen["full"] = {
        "exceptions": [str(e.value) for e in at.exception],
        "errors": errors(at),
        "warnings": [w.value for w in at.warning],
        "tables": [list(d.value.columns) for d in at.dataframe],
        "record_id": result.record_id if result else "no result",
        "count": count(db),
    }
    full(False)
    at.button(key="try_run").click().run()
    seen["after"] = {
        "exceptions": [str(e.value) for e in at.exception],
        "record_id": at.session_state["try_result"].record_id,
        "count": count(db),
    }
    sys.stdout.write(json.dumps(seen))


def test_the_try_page_still_predicts_when_the_disk_is_full(app_env: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.app.test_load import _disk_full_session; _disk_full_session()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    full = seen["full"]
    assert full["exceptions"] == [] and full["errors"] == [], full
    assert ["Label", "Volume (mL)", "Voxels", "Largest on slice"] in full["tables"]
    assert full["record_id"] is None and full["count"] == seen["before"]
    warning = "\n".join(full["warnings"])
    assert "could not be saved to the history" in warning
    assert "File too large" in warning and "MEDMODELS_HOME" in warning
    # Space again: the same process (and its cached connection) logs the next run.
    after = seen["after"]
    assert after["exceptions"] == [] and after["record_id"]
    assert after["count"] == seen["before"] + 1
