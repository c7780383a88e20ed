"""The whole clinician flow in a real Chromium against ``streamlit run``: a deep link runs a
model, the phantom zip goes through the real file input, the result and its overlay appear,
feedback is saved, the prediction is found in History (and in its CSV export), and a share link
opens in a fresh browser context. Screenshots of every step go to a temporary folder.

Uses Debian's ``/usr/bin/chromium`` through Playwright's Python API (never ``playwright
install``). Without that browser the test skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app.builders import build_store
from app.conftest import sample_store_problem

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PHANTOM_ZIP = ROOT / "sample_data" / "ct-chest-phantom.zip"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE_STORE = ROOT / "model_store"
# The lung model of the sample store and the labels it draws; the test models otherwise.
SAMPLE_MODEL = sample_store_problem() is None
MODEL, LABELS = ("ct-body-lung", ("body", "lung")) if SAMPLE_MODEL else ("air-mask", ("air",))
IDLE = '[data-test-script-state="notRunning"]'
TIMEOUT_MS = 60_000


def _need_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI, but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on a free port with a temporary home folder, on the
    sample models (or, in a checkout without them, the test models of tests/app)."""
    _need_browser()
    base = tmp_path_factory.mktemp("e2e")
    store = SAMPLE_STORE if SAMPLE_MODEL else build_store(base)  # read only: no alias moves
    port = _free_port()
    env = {
        **os.environ,
        "MEDMODELS_HOME": str(base / "home"),
        "MEDMODELS_STORE": str(store),
        "PYTHONUNBUFFERED": "1",
    }
    log = (base / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "streamlit did not start:\n" + (base / "server.log").read_text()[-3000:]
                )
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        output = (base / "server.log").read_text()
        assert "Traceback" not in output, output[-3000:]


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    keep = os.environ.get("MEDMODELS_E2E_SCREENSHOTS")
    if keep:  # copy them somewhere to look at
        shutil.copytree(folder, keep, dirs_exist_ok=True)


def _settle(page, text: str) -> None:
    """Wait for ``text`` to appear, then for the script run to finish."""
    page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def _shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


_LOADED_IMAGES = """() => [...document.querySelectorAll('[data-testid="stImage"] img')]
    .filter(i => i.complete && i.naturalWidth > 0).length"""


def _images_loaded(page, at_least: int = 0) -> int:
    """How many images have really loaded (width > 0), after waiting for ``at_least``."""
    if at_least:
        page.wait_for_function(f"() => ({_LOADED_IMAGES})() >= {at_least}", timeout=TIMEOUT_MS)
    return int(page.evaluate(_LOADED_IMAGES))


def test_the_clinician_flow_in_a_real_browser(server: str, browser, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    # 1. A deep link selects the model, version and sample, and runs.
    page.goto(f"{server}/?model={MODEL}&version=1.0.0&sample=ct-chest-phantom")
    _settle(page, "Saved to the history as")
    assert "version=1.0.0" in page.url
    assert page.get_by_text("Research use only — not for diagnosis.").first.is_visible()
    assert _images_loaded(page, 1) >= 1
    _shot(page, shots, "01-deep-link")

    # 2. Upload the phantom zip through the real file input, run production.
    page.get_by_text("Upload files or a zip").click()
    _settle(page, "DICOM files, a zipped series")
    page.locator('[data-testid="stSelectbox"]').nth(1).click()
    page.get_by_role("option", name="production → 1.1.0").click()
    page.wait_for_url(re.compile(r"version=production"))  # set by the rerun the choice made
    page.wait_for_selector(IDLE)
    page.locator('input[type="file"]').first.set_input_files(str(PHANTOM_ZIP))
    _settle(page, "CT volume, 64 slices of 256×256")
    _shot(page, shots, "02-uploaded")
    page.get_by_role("button", name="Run the model").click()
    _settle(page, "Saved to the history as")
    legend = page.get_by_text("Legend:").first.inner_text()
    assert all(f"{label} — " in legend for label in LABELS) and "mL" in legend
    assert _images_loaded(page, 1) >= 1
    overlay = page.locator('[data-testid="stImage"] img').first
    box = overlay.bounding_box()
    assert box and box["width"] > 200
    _shot(page, shots, "03-result")

    # 3. Feedback right under the result.
    page.get_by_text("Disagree", exact=True).click()
    page.get_by_role("button", name="Save feedback").click()
    _settle(page, "Feedback saved: Disagree")
    _shot(page, shots, "04-feedback")

    # 4. A share link for this result.
    page.get_by_role("button", name="Create a share link").click()
    _settle(page, "Expires")
    share_url = page.locator('[data-testid="stCode"] code').first.inner_text().strip()
    assert "?share=" in share_url and share_url.startswith(server)

    # 5. History: the linked entry opens without re-running; the export holds the row.
    page.get_by_text("Saved to the history as").first.click()
    _settle(page, "Prediction ")
    heading = page.get_by_role("heading", name=re.compile(r"^Prediction [0-9a-f]{8}")).inner_text()
    short_id = heading.split()[-1]
    assert page.get_by_text("prediction(s) match").first.is_visible()
    assert _images_loaded(page, 2) >= 2
    _shot(page, shots, "05-history")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert any(r["id"].startswith(short_id) for r in rows)
    assert {r["version"] for r in rows} == {"1.0.0", "1.1.0"}
    assert any(r["verdict"] == "disagree" for r in rows)

    # 6. The share link in a fresh context (another person): the result and nothing else.
    other = browser.new_context(viewport={"width": 1400, "height": 1600})
    try:
        shared = other.new_page()
        shared.goto(share_url)
        _settle(shared, "Shared read-only until")
        assert _images_loaded(shared, 2) >= 2
        assert shared.locator('input[type="file"]').count() == 0
        assert shared.get_by_text("History", exact=True).count() == 0  # no navigation
        _shot(shared, shots, "06-shared")
        base, token = share_url.split("?share=", 1)
        changed = token[:1] + ("B" if token[1] != "B" else "C") + token[2:]
        shared.goto(f"{base}?share={changed}")
        _settle(shared, "This share link is not valid")
        assert _images_loaded(shared) == 0
        _shot(shared, shots, "07-tampered")
    finally:
        with contextlib.suppress(Exception):
            other.close()
    context.close()
    assert len(list(shots.glob("*.png"))) == 7
