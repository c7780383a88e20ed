"""Drift: has what a model sees, or what it says, shifted from a reference period?

For one model, each feature's distribution in every ISO week (per version, and all versions
together) is compared with its distribution in a reference window using the population
stability index::

    PSI = Σ over bins (actual% − reference%) × ln(actual% / reference%)

with proportions floored at 0.0001 so an empty bin does not divide by zero. Numeric features
are binned at the reference window's deciles; a value exactly on a decile edge gets a bin of its
own, so discrete values such as pixel spacing still show a shift. Categorical features
(manufacturer, modality, top label) use one bin per category, missing values counted as
``(unknown)``. Only ``ok`` predictions count.

Thresholds (the usual reading of the PSI): below 0.1 ``stable``, 0.1 to 0.25 ``watch``
(a moderate shift, look at it), above 0.25 ``drift`` (a significant shift). Groups with fewer
than ``min_count`` predictions are flagged ``too-few``: their PSI is too noisy to read. A feature
never recorded in the reference window (e.g. the top label of a segmentation model) is left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from medmodels.errors import HistoryError
from medmodels.history.db import Database

PSI_WATCH = 0.1
PSI_DRIFT = 0.25
PSI_FLOOR = 1e-4
DEFAULT_MIN_COUNT = 30
DEFAULT_REFERENCE_DAYS = 28

# Feature name → (SQL expression over predictions, kind).
FEATURES: dict[str, tuple[str, str]] = {
    "intensity_mean": ("intensity_mean", "numeric"),
    "pixel_spacing_mm": ("spacing_x_mm", "numeric"),
    "slice_thickness_mm": ("coalesce(slice_thickness_mm, spacing_z_mm)", "numeric"),
    "manufacturer": ("manufacturer", "categorical"),
    "modality": ("modality", "categorical"),
    "output_value": ("output_value", "numeric"),
    "top_label": ("top_label", "categorical"),
}
_DECILES = [i / 10 for i in range(1, 10)]


@dataclass(frozen=True)
class DriftRow:
    """One feature in one week (and one version, or None for all versions together)."""

    feature: str
    week: date
    version: str | None
    n: int
    psi: float | None
    flag: str


@dataclass(frozen=True)
class DriftReport:
    """Drift of one model against its reference window (UTC, end exclusive)."""

    model: str
    reference_start: datetime
    reference_end: datetime
    reference_n: int
    rows: list[DriftRow]

    def flagged(self, *, at_least: str = "watch") -> list[DriftRow]:
        """Rows flagged ``watch`` or ``drift`` (only ``drift`` with ``at_least="drift"``)."""
        wanted = {"watch", "drift"} if at_least == "watch" else {"drift"}
        return [r for r in self.rows if r.flag in wanted]


def psi(reference: dict[Any, int], actual: dict[Any, int]) -> float | None:
    """Population stability index of two binned counts (bin → count); None if either is
    empty."""
    ref_total = sum(reference.values())
    act_total = sum(actual.values())
    if not ref_total or not act_total:
        return None
    value = 0.0
    for key in set(reference) | set(actual):
        e = max(reference.get(key, 0) / ref_total, PSI_FLOOR)
        a = max(actual.get(key, 0) / act_total, PSI_FLOOR)
        value += (a - e) * math.log(a / e)
    return value


def flag(value: float | None, n: int, min_count: int) -> str:
    """``too-few``, ``stable``, ``watch`` or ``drift`` (see the module docstring)."""
    if value is None or n < min_count:
        return "too-few"
    if value > PSI_DRIFT:
        return "drift"
    if value > PSI_WATCH:
        return "watch"
    return "stable"


def _naive(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


def _bin_sql(expr: str, edges: list[float]) -> str:
    """Bin number of ``expr``: (#edges < x) + (#edges ≤ x), so values on an edge get a bin."""
    if not edges:
        return "0"
    parts = [f"({expr} > {e!r})::INTEGER + ({expr} >= {e!r})::INTEGER" for e in edges]
    return " + ".join(parts)


def drift(
    db: Database,
    model: str,
    *,
    reference_start: datetime | date | None = None,
    reference_end: datetime | date | None = None,
    features: list[str] | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
) -> DriftReport:
    """PSI of each feature per week and version against the reference window.

    The reference window defaults to the first :data:`DEFAULT_REFERENCE_DAYS` days after the
    model's first ``ok`` prediction; a date ``reference_end`` excludes that day."""
    chosen = features or list(FEATURES)
    unknown = [f for f in chosen if f not in FEATURES]
    if unknown:
        raise HistoryError(
            f"unknown drift feature {', '.join(unknown)}; choose from {', '.join(FEATURES)}"
        )
    base = "FROM predictions WHERE model = ? AND status = 'ok'"
    ref_cond = "created_at >= ? AND created_at < ?"
    with db.cursor() as cur:
        if reference_start is None:
            first = cur.execute(f"SELECT min(created_at) {base}", [model]).fetchone()
            if not first or first[0] is None:
                raise HistoryError(f"no successful predictions of {model} in the history")
            start = first[0]
        else:
            start = _naive(reference_start)
        end = (
            _naive(reference_end)
            if reference_end is not None
            else start + timedelta(days=DEFAULT_REFERENCE_DAYS)
        )
        if end <= start:
            raise HistoryError("the reference window must end after it starts")
        # One pass over the reference window: its size, the deciles of every numeric feature
        # and whether each categorical feature was recorded at all.
        summaries = [
            f"quantile_cont({FEATURES[n][0]}, {_DECILES!r}) "
            f"FILTER (WHERE isfinite({FEATURES[n][0]}))"
            if FEATURES[n][1] == "numeric"
            else f"count({FEATURES[n][0]})"
            for n in chosen
        ]
        reference = cur.execute(
            f"SELECT count(*), {', '.join(summaries)} {base} AND {ref_cond}", [model, start, end]
        ).fetchone() or (0, *([None] * len(chosen)))
        ref_n = int(reference[0])
        if ref_n == 0:
            raise HistoryError(
                f"no successful predictions of {model} in the reference window "
                f"({start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC); choose another window"
            )
        rows: list[DriftRow] = []
        for name, summary in zip(chosen, reference[1:], strict=True):
            expr, kind = FEATURES[name]
            if not summary:
                continue  # the feature was never recorded in the reference window
            if kind == "numeric":
                bin_expr = _bin_sql(expr, sorted(set(summary)))
                valid = f"isfinite({expr})"
            else:
                bin_expr = f"coalesce(CAST({expr} AS VARCHAR), '(unknown)')"
                valid = "true"
            # Bins are computed once in a subquery: grouping sets over the expression itself
            # evaluate it per grouping set (about 4× slower on a million rows).
            counts = cur.execute(
                f"""SELECT grouping(in_ref) AS by_week, grouping(version) AS all_versions,
                    in_ref, week, version, bin, count(*) AS n
                FROM (SELECT {ref_cond} AS in_ref,
                        CAST(date_trunc('week', created_at) AS DATE) AS week, version,
                        {bin_expr} AS bin
                    {base} AND {valid})
                GROUP BY GROUPING SETS ((in_ref, bin), (week, version, bin), (week, bin))""",
                [start, end, model],
            ).fetchall()
            rows += _rows(name, counts, min_count)
    rows.sort(key=lambda r: (r.feature, r.week, r.version is not None, r.version or ""))
    return DriftReport(model, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), ref_n, rows)


def _rows(name: str, counts: list[tuple[Any, ...]], min_count: int) -> list[DriftRow]:
    reference: dict[Any, int] = {}
    groups: dict[tuple[date, str | None, bool], dict[Any, int]] = defaultdict(dict)
    for by_week, all_versions, in_ref, week, version, bin_, n in counts:
        if not by_week:
            if in_ref:
                reference[bin_] = int(n)
            continue
        groups[(week, None if all_versions else version, bool(all_versions))][bin_] = int(n)
    out: list[DriftRow] = []
    for (week, version, _all), hist in groups.items():
        n = sum(hist.values())
        value = psi(reference, hist)
        out.append(DriftRow(name, week, version, n, value, flag(value, n, min_count)))
    return out
