"""Cost arithmetic on fixed inputs, the dated price list, and cost rows of a measured sheet."""

from __future__ import annotations

from pathlib import Path

import pytest

from medmodels.sheets import (
    SheetError,
    always_on_monthly_cost,
    cost_per_1000,
    cost_rows,
    instances_needed,
    load_prices,
    monthly_cost,
    owned_hourly_cost,
    predictions_per_hour,
    scale_by_cores,
)


def test_cost_per_1000_is_hourly_price_over_predictions_per_hour() -> None:
    # 0.36 $/h, 3600 predictions/h when busy all the time → 0.0001 $ each → 0.10 $ per 1,000.
    assert cost_per_1000(0.36, 3600) == pytest.approx(0.10)
    # Busy 20 % of the paid hours: 720 predictions per paid hour → five times the cost.
    assert cost_per_1000(0.36, 3600, 0.2) == pytest.approx(0.50)
    assert predictions_per_hour(2.0) == pytest.approx(7200)
    assert predictions_per_hour(2.0, 0.5) == pytest.approx(3600)


def test_monthly_costs_for_a_daily_volume() -> None:
    # 1,000 a day for 30 days at 0.0001 $ each = 3.00 $; at 20 % utilisation 15.00 $.
    assert monthly_cost(0.36, 3600, 1000, days=30) == pytest.approx(3.0)
    assert monthly_cost(0.36, 3600, 1000, utilisation=0.2, days=30) == pytest.approx(15.0)
    # 100,000 a day with 3,600/h = 86,400 per machine-day → 2 machines around the clock.
    assert instances_needed(100_000, 3600) == 2
    assert instances_needed(10, 3600) == 1
    assert always_on_monthly_cost(0.5, 2, days=30) == pytest.approx(0.5 * 24 * 30 * 2)


def test_own_hardware_and_scaling() -> None:
    # 8,766 $ over one year of 8,766 h = 1 $/h, plus 1 kW at 0.10 $/kWh = 0.10 $/h.
    assert owned_hourly_cost(
        purchase_usd=8766, lifetime_years=1, watts=1000, usd_per_kwh=0.10
    ) == pytest.approx(1.10)
    assert scale_by_cores(100, 2, 8) == pytest.approx(400)


@pytest.mark.parametrize("utilisation", [0, -0.1, 1.5])
def test_utilisation_must_be_a_share(utilisation: float) -> None:
    with pytest.raises(ValueError, match="utilisation"):
        cost_per_1000(1.0, 100, utilisation)


def test_the_shipped_price_list_is_dated_and_sourced() -> None:
    prices = load_prices()
    kinds = {e.kind for e in prices.hardware}
    assert {"cpu", "gpu", "own"} <= kinds
    for entry in prices.hardware:
        assert entry.as_of.year >= 2024
        assert entry.source
        assert entry.hourly > 0
    assert prices.get("own-workstation").hourly == pytest.approx(2500 / (4 * 8766) + 0.150 * 0.20)
    with pytest.raises(KeyError, match="available"):
        prices.get("no-such-machine")


def test_a_bad_price_list_names_the_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[hardware]]\nid = "box"\nname = "Box"\nkind = "cpu"\nvcpus = 2\n'
        "usd_per_hour = 1.0\nas_of = 2025-01-01\n"
    )
    with pytest.raises(SheetError, match=r"hardware box\.source"):
        load_prices(path)
    with pytest.raises(SheetError, match="not found"):
        load_prices(tmp_path / "missing.toml")


def test_cost_rows_label_measured_estimated_and_hidden(measured) -> None:
    sheet, _, _ = measured
    best = sheet.bench.best_throughput()
    busy = sheet.bench.throughput_for("parallel-sessions") or sheet.bench.throughput_for("1-thread")
    cores = busy.sessions
    rows = {r.entry.id: r for r in cost_rows(sheet, load_prices(), daily_volume=500)}

    own = rows["own-workstation"]
    assert own.shown and own.provenance == "derived"
    assert "measured on this hardware" in own.method
    assert own.predictions_per_hour == pytest.approx(best.per_hour)
    assert own.cost_per_1000[1.0] == pytest.approx(own.usd_per_hour / best.per_hour * 1000)
    assert own.cost_per_1000[0.2] == pytest.approx(5 * own.cost_per_1000[1.0])

    cpu = rows["aws-c7i-2xlarge"]
    assert cpu.provenance == "estimated"
    assert "scaled from the measured host" in cpu.method and "core count" in cpu.method
    assert cpu.predictions_per_hour == pytest.approx(busy.per_hour * 8 / cores)
    assert cpu.monthly_usd[1.0] == pytest.approx(monthly_cost(0.357, cpu.predictions_per_hour, 500))
    assert "rough" in rows["aws-c7g-xlarge"].method  # arm64 vs the measured x86_64 host

    gpu = rows["aws-g4dn-xlarge"]
    assert not gpu.shown and gpu.provenance is None and gpu.cost_per_1000 == {}
    assert "GPU" in gpu.method


def test_a_price_entry_can_claim_the_measured_host(measured, tmp_path: Path) -> None:
    sheet, _, _ = measured
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[hardware]]\nid = "this-box"\nname = "This box"\nkind = "cpu"\nvcpus = 64\n'
        f'usd_per_hour = 2.0\nas_of = 2025-01-01\nsource = "invoice"\n'
        f'host_fingerprints = ["{sheet.host.fingerprint}"]\n'
    )
    (row,) = cost_rows(sheet, load_prices(path))
    assert row.provenance == "derived"
    assert row.predictions_per_hour == pytest.approx(sheet.bench.best_throughput().per_hour)
