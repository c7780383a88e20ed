"""The Hardware & cost page through AppTest: no sheets yet, measuring a version, the cost
calculator against the library's arithmetic, importing good and broken sheets, deep links."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmodels import ModelStore, load_settings
from medmodels.sheets import Sheet, SheetStore, build_sheet, cost_per_1000, monthly_cost

from .conftest import SAMPLES, errors, texts, upload

PAGE = "app_pages/hardware_cost.py"


@pytest.fixture(scope="session")
def air_sheet(built_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Sheet:
    """A real sheet of the tiny air-mask@1.1.0, measured once per session (2 runs)."""
    home = tmp_path_factory.mktemp("sheet-home")
    settings = load_settings(home=home, store=built_store, sample_data=SAMPLES)
    return build_sheet(
        ModelStore(built_store), "air-mask@1.1.0", settings=settings, runs=2, warmup=0, save=False
    )


@pytest.fixture
def fast_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    """No warm-up runs, so a measurement in a test stays short."""
    monkeypatch.setenv("MEDMODELS_BENCH_WARMUP", "0")


def _open(make_app, **query: str):
    at = make_app(**query).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _sheets(app_env: Path) -> SheetStore:
    return SheetStore(app_env / "home" / "sheets")


def _table(at):
    """The side-by-side table of versions."""
    return next(d.value for d in at.dataframe if "p50 (ms)" in d.value.columns)


def _figure_rows(at) -> list[dict]:
    rows: list[dict] = []
    for d in at.dataframe:
        if "Provenance" in d.value.columns:
            rows += d.value.to_dict("records")
    return rows


def _other_host(sheet: Sheet) -> Sheet:
    """``sheet`` as if measured on another machine (facts and fingerprint consistent)."""
    host = sheet.host.model_copy(update={"cpu_model": "Phone SoC", "usable_cores": 8})
    host = host.model_copy(update={"fingerprint": host.expected_fingerprint()})
    return sheet.model_copy(update={"host": host})


def test_no_sheets_yet_says_so_and_offers_measure(make_app) -> None:
    at = _open(make_app)
    text = texts(at)
    assert "Research use only — not for diagnosis" in text
    assert "No sheet yet for 1.1.0, 1.0.0" in text
    assert at.button(key="hc_measure").proto.label == "Measure now"
    assert at.number_input(key="hc_runs").value == 5
    assert not any("p50 (ms)" in d.value.columns for d in at.dataframe)
    assert not errors(at)


def test_measure_now_stores_a_sheet_and_shows_measured_figures(
    make_app, app_env, fast_bench
) -> None:
    at = _open(make_app)
    at.selectbox(key="hc_measure_version").set_value("1.1.0")
    at.number_input(key="hc_runs").set_value(2)
    at.button(key="hc_measure").click().run(timeout=180)
    assert not at.exception, at.exception
    assert not errors(at)
    assert any("Measured air-mask@1.1.0" in s.value for s in at.success)
    stored = _sheets(app_env).get("air-mask", "1.1.0")
    assert stored is not None and stored.bench.runs == 2
    table = _table(at)
    row = table[table["Version"] == "1.1.0"].iloc[0]
    assert row["p50 (ms)"] == pytest.approx(stored.bench.stages["end_to_end"].p50_ms)
    p50 = next(r for r in _figure_rows(at) if r["Figure"] == "end-to-end p50")
    assert p50["Provenance"] == "measured"
    assert "No sheet yet for 1.0.0" in texts(at)


def test_calculator_matches_the_library_arithmetic(make_app, app_env, air_sheet) -> None:
    _sheets(app_env).save(air_sheet)
    at = _open(make_app)
    assert "(edited)" not in texts(at)
    at.selectbox(key="hc_hw").set_value("own-workstation").run()
    at.number_input(key="hc_price_own-workstation").set_value(0.5)
    at.slider(key="hc_util").set_value(20)
    at.number_input(key="hc_volume").set_value(1000).run()
    assert not at.exception, at.exception
    per_hour = air_sheet.bench.best_throughput().per_hour
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["$ per 1,000 predictions"] == f"${cost_per_1000(0.5, per_hour, 0.2):,.4f}"
    monthly = monthly_cost(0.5, per_hour, 1000, utilisation=0.2)
    assert metrics["Monthly cost (1,000/day)"] == f"${monthly:,.2f}"
    text = texts(at)
    assert "0.5000 $/h ÷" in text and "× 20%) × 1,000" in text
    assert "as of 2026-11-29" in text and "(edited)" in text
    # an estimate is labelled as one, with its method
    at.selectbox(key="hc_hw").set_value("aws-c7i-2xlarge").run()
    assert "estimated: scaled from the measured host" in texts(at)
    table = _table(at)
    assert list(table["$ provenance"]) == ["estimated"]


def test_importing_a_sheet_from_another_device_shows_it(make_app, app_env, air_sheet) -> None:
    _sheets(app_env).save(air_sheet)
    other = _other_host(air_sheet)
    at = _open(make_app)
    upload(at, "hc_import", ("phone.json", other.to_json().encode()))
    assert not at.exception, at.exception
    assert not errors(at)
    assert any("Imported the sheet of air-mask@1.1.0" in s.value for s in at.success)
    assert len(_sheets(app_env).sheets("air-mask", "1.1.0")) == 2
    host = at.selectbox(key="hc_host")
    assert any(o.startswith("Phone SoC · 8 usable core(s)") for o in host.options)
    assert len(_table(at)) == 2
    host.set_value(other.host.fingerprint).run()
    table = _table(at)
    assert list(table["Host"]) == ["Phone SoC (8 cores)"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "phone.json: not valid JSON"),
        (json.dumps({"kind": "something"}).encode(), "phone.json: not a MedModels sheet"),
    ],
)
def test_a_broken_sheet_gives_a_clear_error(make_app, app_env, data, expected) -> None:
    at = _open(make_app)
    upload(at, "hc_import", ("phone.json", data))
    assert not at.exception, at.exception
    assert any(expected in e for e in errors(at)), errors(at)
    assert not any("medmodels-sheet-import-" in e for e in errors(at))
    assert _sheets(app_env).sheets() == []


def test_an_edited_sheet_is_refused(make_app, app_env, air_sheet) -> None:
    edited = air_sheet.host.model_copy(update={"cpu_model": "Faster CPU"})
    at = _open(make_app)
    upload(
        at,
        "hc_import",
        ("edited.json", air_sheet.model_copy(update={"host": edited}).to_json().encode()),
    )
    assert not at.exception, at.exception
    assert any("edited.json: its host fingerprint does not match" in e for e in errors(at))


def test_a_deep_link_preselects_model_and_version(make_app) -> None:
    at = _open(make_app, model="dark-classifier", version="1.0.0")
    assert at.selectbox(key="hc_model").value == "dark-classifier"
    assert at.selectbox(key="hc_version").value == "1.0.0"
    assert "No sheet yet for dark-classifier@1.0.0" in texts(at)


def test_the_models_page_links_each_version_to_its_sheet(make_app) -> None:
    at = make_app().run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    links = [e.proto for e in at.get("page_link")]
    assert [p.label for p in links] == ["1.1.0", "1.0.0"]
    assert all("hardware" in p.page for p in links)
