"""The benchmark on a tiny model: structure and provenance only (tests never assert on time)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from medmodels.cli import main
from medmodels.sheets import SheetStore, comparison_row, host_info, load_prices, stage_stats

PROVENANCES = {"read", "measured", "derived", "estimated"}


def test_the_sheet_has_every_measured_section(measured) -> None:
    sheet, _, _ = measured
    bench = sheet.bench
    assert bench.provenance == "measured"
    assert sheet.host.fingerprint in bench.source
    assert bench.runs == 3 and bench.warmup == 1
    # A synthetic reference has no decode stage; every predict() stage and end to end are there.
    assert bench.reference.kind == "synthetic"
    assert bench.reference.shape_zyx == (1, 32, 32)
    assert set(bench.stages) == {"preprocess", "infer", "postprocess", "end_to_end"}
    for stats in bench.stages.values():
        assert stats.n == 3
        assert stats.min_ms <= stats.p50_ms <= stats.p95_ms <= stats.p99_ms <= stats.max_ms
        assert stats.cv >= 0
    assert bench.cold.decode_ms is None
    assert bench.cold.session_ms > 0 and bench.cold.first_run_ms > 0
    modes = [t.mode for t in bench.throughput]
    if sheet.host.usable_cores > 1:
        assert modes == ["1-thread", "intra-op", "parallel-sessions"]
        parallel = bench.throughput[2]
        assert parallel.sessions == sheet.host.usable_cores and parallel.intra_op_threads == 1
    else:
        assert modes == ["1-thread"]
    assert all(t.predictions >= 3 and t.per_second > 0 for t in bench.throughput)
    memory = bench.memory
    assert 0 < memory.baseline_mb < memory.peak_mb <= memory.peak_all_mb
    assert "child process" in memory.method
    # Three runs cannot give a meaningful p99, and the sheet says so.
    assert any("p99" in w for w in sheet.warnings)
    assert "synthetic" in " ".join(sheet.warnings)


def test_the_sheet_is_stored_by_model_version_and_host(measured) -> None:
    sheet, _, settings = measured
    path = settings.home / "sheets" / "tiny-seg" / "1.0.0" / f"{sheet.host.fingerprint}.json"
    assert path.is_file()
    assert SheetStore.from_settings(settings).get("tiny-seg", "1.0.0") == sheet
    assert sheet.host.fingerprint == sheet.host.expected_fingerprint()
    assert sheet.host.fingerprint == host_info().fingerprint  # measured on this machine


def test_every_figure_says_where_it_came_from(measured) -> None:
    sheet, _, _ = measured
    figures = sheet.figures()
    keys = {f.key for f in figures}
    assert {"file_mb", "parameters", "gflops", "cold_ms", "end_to_end_p50_ms"} <= keys
    assert {"end_to_end_p95_ms", "infer_p99_ms", "peak_mb", "throughput_1-thread"} <= keys
    for fig in figures:
        assert fig.provenance in PROVENANCES and fig.source, fig
    assert sheet.figure("parameters").provenance == "read"
    assert sheet.figure("end_to_end_p50_ms").provenance == "measured"
    assert sheet.graph.flops is not None and sheet.flops_per_prediction == sheet.graph.flops
    assert sheet.graph.flops_input_shape == [1, 1, 32, 32]


def test_stage_stats_spread() -> None:
    stats = stage_stats([10.0, 20.0, 30.0])
    assert (stats.mean_ms, stats.p50_ms, stats.min_ms, stats.max_ms) == (20.0, 20.0, 10.0, 30.0)
    assert stats.stdev_ms == 10.0 and stats.cv == 0.5


def test_sheet_command_runs_with_three_runs(make_store, monkeypatch) -> None:
    _, settings = make_store()
    monkeypatch.setenv("MEDMODELS_STORE", str(settings.store))
    monkeypatch.setenv("MEDMODELS_HOME", str(settings.home))
    result = CliRunner().invoke(main, ["sheet", "tiny-cls@1.0.0", "--runs", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sheet"]["bench"]["runs"] == 3
    assert report["sheet"]["task"] == "classification"
    assert {v["target"] for v in report["verdicts"]} == {"mobile", "edge", "web"}
    assert all(f["provenance"] in PROVENANCES for f in report["figures"])
    assert {c["provenance"] for c in report["costs"] if c["shown"]} == {"derived", "estimated"}
    assert report["file"].endswith(f"{report['sheet']['host']['fingerprint']}.json")

    stored = CliRunner().invoke(main, ["sheet", "tiny-cls@1.0.0", "--stored"])
    assert stored.exit_code == 0, stored.output
    assert "[measured]" in stored.output and "[read]" in stored.output

    missing = CliRunner().invoke(main, ["sheet", "tiny-cls@9.0.0"])
    assert missing.exit_code == 3
    assert "available: 1.0.0" in missing.output


def test_comparison_row_for_the_app_table(measured) -> None:
    sheet, _, settings = measured
    prices = load_prices()
    row = comparison_row(sheet, prices, sheets=SheetStore.from_settings(settings))
    assert row["version"] == "1.0.0" and row["host"] == sheet.host.fingerprint
    assert row["p50_ms"] == sheet.bench.stages["end_to_end"].p50_ms
    assert row["usd_per_1000_provenance"] == "derived"
    assert row["usd_per_1000"] > 0 and row["mobile"] in ("yes", "maybe", "no", "unknown")
    assert row["edge_reasons"] and row["agreement"] is None
    estimated = comparison_row(sheet, prices, hardware="aws-c7i-large", utilisation=0.2)
    assert estimated["usd_per_1000_provenance"] == "estimated"
    assert "scaled" in estimated["usd_per_1000_method"]
