"""Drift: the PSI arithmetic, its thresholds, and drift() on weeks built by hand."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from medmodels.errors import HistoryError
from medmodels.history.db import Database
from medmodels.history.drift import PSI_DRIFT, PSI_WATCH, drift, flag, psi

from .helpers import insert, make_scan

WEEK1 = datetime(2026, 3, 2, 8)  # Monday 2 March 2026


def test_psi_known_value() -> None:
    value = psi({"a": 50, "b": 50}, {"a": 90, "b": 10})
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert value == pytest.approx(expected)  # 0.879
    assert psi({"a": 10, "b": 30}, {"a": 1, "b": 3}) == pytest.approx(0.0)
    # an empty bin is floored at 0.0001 instead of dividing by zero
    assert psi({"a": 10}, {"b": 10}) == pytest.approx(2 * (1 - 1e-4) * math.log(1 / 1e-4))
    assert psi({}, {"a": 1}) is None


def test_flag_thresholds() -> None:
    assert (PSI_WATCH, PSI_DRIFT) == (0.1, 0.25)
    assert flag(0.05, 100, 30) == "stable"
    assert flag(0.1, 100, 30) == "stable"
    assert flag(0.2, 100, 30) == "watch"
    assert flag(0.3, 100, 30) == "drift"
    assert flag(0.3, 10, 30) == "too-few"
    assert flag(None, 100, 30) == "too-few"


def _week(db: Database, start: datetime, values: list[float], **kwargs: object) -> None:
    for k, value in enumerate(values):
        insert(db, start + timedelta(minutes=k), intensity_mean=value, **kwargs)  # type: ignore[arg-type]


def test_drift_flags_a_shifted_week_and_not_a_stable_one(db: Database) -> None:
    base = [float(v) for v in range(40)]
    _week(db, WEEK1, base, manufacturer="A", spacing_x_mm=0.7)
    _week(db, WEEK1 + timedelta(days=7), base, manufacturer="A", spacing_x_mm=0.7)
    _week(
        db,
        WEEK1 + timedelta(days=14),
        [v + 100 for v in base],
        manufacturer="B",
        spacing_x_mm=0.5,
        version="1.1.0",
    )
    insert(db, WEEK1 + timedelta(days=14), status="rejected", intensity_mean=1e6)  # not counted

    report = drift(
        db,
        "lung-mask",
        reference_start=date(2026, 3, 2),
        reference_end=date(2026, 3, 9),
        features=["intensity_mean", "manufacturer", "pixel_spacing_mm", "modality"],
    )
    assert report.reference_n == 40
    rows = {(r.feature, r.week, r.version): r for r in report.rows}
    w1, w2, w3 = date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)

    for feature in ("intensity_mean", "manufacturer", "pixel_spacing_mm", "modality"):
        assert rows[(feature, w1, None)].psi == pytest.approx(0.0, abs=1e-9)
        assert rows[(feature, w2, None)].flag == "stable"
    # week 3: every value above the reference's top decile, another manufacturer and spacing
    for feature in ("intensity_mean", "manufacturer", "pixel_spacing_mm"):
        shifted = rows[(feature, w3, None)]
        assert shifted.n == 40 and shifted.flag == "drift", feature
        assert rows[(feature, w3, "1.1.0")].flag == "drift"
    assert rows[("modality", w3, None)].flag == "stable"  # still all CT
    # the top decile holds 4 of 40 reference values; week 3 puts all 40 there
    e, a = 4 / 40, 1.0
    others = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    intensity = rows[("intensity_mean", w3, None)].psi
    assert intensity is not None and intensity > 1.0
    assert intensity == pytest.approx((a - e) * math.log(a / e) + others, rel=1e-9)
    assert ("intensity_mean", w1, "1.0.0") in rows and ("intensity_mean", w1, "1.1.0") not in rows
    assert {r.feature for r in report.flagged(at_least="drift")} == {
        "intensity_mean",
        "manufacturer",
        "pixel_spacing_mm",
    }


def test_drift_default_reference_and_small_groups(db: Database) -> None:
    _week(db, WEEK1, [1.0, 2.0, 3.0])
    report = drift(db, "lung-mask", features=["intensity_mean"])
    assert report.reference_start.replace(tzinfo=None) == WEEK1
    assert (report.reference_end - report.reference_start).days == 28
    assert {r.flag for r in report.rows} == {"too-few"}
    with pytest.raises(HistoryError, match="no successful predictions"):
        drift(db, "unknown-model")
    with pytest.raises(HistoryError, match="in the reference window"):
        drift(db, "lung-mask", reference_start=date(2020, 1, 1), reference_end=date(2020, 2, 1))
    with pytest.raises(HistoryError, match="must end after"):
        drift(db, "lung-mask", reference_start=date(2026, 3, 2), reference_end=date(2026, 3, 1))
    with pytest.raises(HistoryError, match="unknown drift feature"):
        drift(db, "lung-mask", features=["shoe-size"])


def test_output_drift_on_volumes(db: Database) -> None:
    for k in range(40):
        insert(db, WEEK1 + timedelta(minutes=k), output_value=100.0 + k, scan=make_scan())
        insert(db, WEEK1 + timedelta(days=7, minutes=k), output_value=300.0 + k)
    report = drift(
        db, "lung-mask", reference_end=WEEK1 + timedelta(days=7), features=["output_value"]
    )
    (week2,) = [r for r in report.rows if r.week == date(2026, 3, 9) and r.version is None]
    assert week2.flag == "drift"


def test_features_never_recorded_in_the_reference_are_left_out(db: Database) -> None:
    _week(db, WEEK1, [1.0, 2.0, 3.0])  # segmentation rows: no top label
    features = {r.feature for r in drift(db, "lung-mask").rows}
    assert "top_label" not in features and {"intensity_mean", "modality"} <= features
