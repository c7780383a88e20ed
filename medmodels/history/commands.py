"""The ``medmodels history`` and ``medmodels feedback`` commands (registered by ``cli.py``).

Exit codes: 0 success; 2 bad arguments, an unknown id or an unreadable database; 4 the database
is held by another process (the message names it).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from medmodels.config import Settings, load_settings
from medmodels.errors import ConfigError, MedModelsError
from medmodels.history.db import Database, DatabaseBusyError, open_database
from medmodels.history.drift import FEATURES, drift
from medmodels.history.log import (
    FEEDBACK_REASONS,
    SOURCES,
    STAGES,
    STATUSES,
    VERDICTS,
    HistoryFilter,
    add_feedback,
    alias_timeline,
    compare_versions,
    count,
    delete_prediction,
    export,
    get_prediction,
    recent,
    version_stats,
)
from medmodels.store.store import DEFAULT_ALIAS, ModelStore

EXIT_BUSY = 4


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc))


def open_or_exit(settings: Settings, *, hint: str = "") -> Database:
    """Open the history database or exit with a clear message (4 when another process holds
    it, 2 otherwise); ``hint`` is appended to the busy message."""
    try:
        return open_database(settings)
    except DatabaseBusyError as exc:
        _fail(f"{exc}{hint}", EXIT_BUSY)
    except MedModelsError as exc:
        _fail(str(exc))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _when(value: str | None, name: str) -> datetime | date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)", param_hint=name
        ) from None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _output(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"[{row['reason_code'] or '?'}]"
    if row["task"] == "classification":
        prob = row["top_probability"]
        return f"{row['top_label']} {prob:.2f}" if prob is not None else str(row["top_label"])
    value = row["output_value"]
    return "volume n/a" if value is None else f"{value:.1f} mL"


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


@click.group("history", invoke_without_command=True)
@click.option("--model", help="Only this model.")
@click.option("--version", "version_", metavar="VERSION", help="Only this version.")
@click.option("--since", help="From this date or time (UTC), e.g. 2026-01-31.")
@click.option("--until", help="Up to this date (inclusive) or time (UTC).")
@click.option("--status", type=click.Choice(STATUSES), help="Only ok, rejected or failed.")
@click.option(
    "--verdict",
    type=click.Choice([*VERDICTS, "none"]),
    help="Only predictions whose latest feedback is this (none: not rated).",
)
@click.option("--modality", help="Only this modality (CT, MR, ...).")
@click.option("--source", type=click.Choice(SOURCES), help="Only from the app or the CLI.")
@click.option("--alias", help="Only predictions requested through this alias.")
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="Export every match to CSV."
)
@click.option(
    "--parquet",
    "parquet_path",
    type=click.Path(path_type=Path),
    help="Export every match to Parquet.",
)
@click.pass_context
def history_group(
    ctx: click.Context,
    model: str | None,
    version_: str | None,
    since: str | None,
    until: str | None,
    status: str | None,
    verdict: str | None,
    modality: str | None,
    source: str | None,
    alias: str | None,
    limit: int,
    offset: int,
    as_json: bool,
    csv_path: Path | None,
    parquet_path: Path | None,
) -> None:
    """List logged predictions, newest first (filters combine), or export them.

    Subcommands show per-version statistics, one prediction, comparisons, drift and the alias
    timeline, or delete a prediction.
    """
    if ctx.invoked_subcommand is not None:
        return
    if sum(bool(x) for x in (as_json, csv_path, parquet_path)) > 1:
        _fail("choose one of --json, --csv and --parquet")
    filters = HistoryFilter(
        model=model,
        version=version_,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        status=status,
        verdict=verdict,
        modality=modality,
        source=source,
        alias=alias,
    )
    db = open_or_exit(_settings())
    try:
        if csv_path or parquet_path:
            path = csv_path or parquet_path
            assert path is not None
            n = export(db, path, format="csv" if csv_path else "parquet", filters=filters)
            click.echo(f"exported {n} prediction{'s' if n != 1 else ''} to {path}")
            return
        rows = recent(db, filters, limit=limit, offset=offset)
        total = count(db, filters)
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump({"total": total, "offset": offset, "predictions": rows})
        return
    if not rows:
        click.echo("No predictions match." if total else "No predictions logged yet.")
        return
    for row in rows:
        ref = f"{row['model']}@{row['version'] or '?'}"
        if row["alias"]:
            ref += f" ({row['alias']})"
        click.echo(
            f"{row['id'][:8]}  {_time(row['created_at'])}  {ref}  {row['status']}  "
            f"{row['modality'] or '-'}  {_output(row)}  total {_ms(row['total_ms'])} ms  "
            f"{row['verdict'] or 'unrated'}"
        )
    shown = f"{offset + 1}–{offset + len(rows)} of {total}"
    more = f"; next page: --offset {offset + len(rows)}" if offset + len(rows) < total else ""
    click.echo(f"({shown}{more})")


@history_group.command("stats")
@click.option("--model", help="Only this model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_command(model: str | None, as_json: bool) -> None:
    """Per model version: counts, latency p50/p95 per stage, rejection and agreement rates."""
    db = open_or_exit(_settings())
    try:
        stats = version_stats(db, model)
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump([dataclasses.asdict(s) for s in stats])
        return
    if not stats:
        click.echo("No predictions logged yet." if model is None else f"No predictions of {model}.")
        return
    current = None
    for s in stats:
        if s.model != current:
            current = s.model
            click.echo(s.model)
        click.echo(
            f"  {s.version or '?'}: {s.predictions} prediction{'s' if s.predictions != 1 else ''}"
            f" (ok {s.ok}, rejected "
            f"{s.rejected}, failed {s.failed}; rejection rate {_pct(s.rejection_rate)})"
        )
        stages = ", ".join(
            f"{stage} {_ms(s.p50_ms[stage])}/{_ms(s.p95_ms[stage])}"
            for stage in STAGES
            if s.p50_ms[stage] is not None
        )
        click.echo(f"      latency p50/p95 ms: {stages or '-'}")
        mean = "-" if s.mean_output is None else f"{s.mean_output:.3g}"
        click.echo(
            f"      feedback: {s.rated} rated, agreement {_pct(s.agreement_rate)} "
            f"({s.agree} agree, {s.disagree} disagree, {s.unsure} unsure); mean output {mean}"
        )
        click.echo(f"      used {_time(s.first_used)} → {_time(s.last_used)}")


@history_group.command("show")
@click.argument("prediction_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(prediction_id: str, as_json: bool) -> None:
    """Everything logged about one prediction (ID or its first 8 characters)."""
    db = open_or_exit(_settings())
    try:
        record = get_prediction(db, prediction_id)
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump(record)
        return
    for key, value in record.items():
        if key in ("labels", "feedback", "artifacts", "warnings") or value is None:
            continue
        click.echo(f"{key}: {value}")
    for lab in record["labels"] or []:
        parts = [
            f"{k} {v:.4g}" for k, v in lab.items() if k not in ("idx", "name") and v is not None
        ]
        click.echo(f"label {lab['name']}: {', '.join(parts)}")
    for note in record["warnings"] or []:
        click.echo(f"warning: {note}")
    for fb in record["feedback"]:
        click.echo(
            f"feedback {_time(fb['created_at'])}: {fb['verdict']}"
            + (f" [{fb['reason']}]" if fb["reason"] else "")
            + (f" corrected to {fb['corrected_label']}" if fb["corrected_label"] else "")
        )
    for name, path in record["artifacts"].items():
        click.echo(f"artifact {name}: {path}")


@history_group.command("delete")
@click.argument("prediction_id")
def delete_command(prediction_id: str) -> None:
    """Delete one prediction with its feedback and artifacts."""
    db = open_or_exit(_settings())
    try:
        pid = delete_prediction(db, prediction_id)
    except MedModelsError as exc:
        _fail(str(exc))
    click.echo(f"deleted {pid} (with its feedback and artifacts)")


@history_group.command("compare")
@click.argument("model")
@click.argument("version_a")
@click.argument("version_b")
@click.option(
    "--tolerance",
    type=float,
    default=0.1,
    show_default=True,
    help="Relative volume difference that counts as disagreement (segmentation).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_command(
    model: str, version_a: str, version_b: str, tolerance: float, as_json: bool
) -> None:
    """How two versions of MODEL differ on the series both have seen."""
    db = open_or_exit(_settings())
    try:
        result = compare_versions(db, model, version_a, version_b, volume_tolerance=tolerance)
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump(dataclasses.asdict(result))
        return
    click.echo(f"{model}: {version_a} vs {version_b} on {result.pairs} shared series")
    if not result.pairs:
        return
    click.echo(
        f"    disagree on {result.disagreements} ({_pct(result.disagreement_rate)}); "
        f"mean output difference (b − a) {result.mean_output_difference:.4g}"
    )
    for name, diff in result.label_volume_difference_ml.items():
        if diff is not None:
            click.echo(f"    {name}: mean volume difference {diff:+.2f} mL")


@history_group.command("drift")
@click.argument("model")
@click.option("--reference-start", help="Start of the reference window (default: first use).")
@click.option("--reference-end", help="End of the reference window (default: 28 days later).")
@click.option("--feature", "features", multiple=True, type=click.Choice(list(FEATURES)))
@click.option("--min-count", type=click.IntRange(1), default=30, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Show every week, not only flagged ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def drift_command(
    model: str,
    reference_start: str | None,
    reference_end: str | None,
    features: tuple[str, ...],
    min_count: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """Population stability index of inputs and outputs per week and version against a
    reference window (PSI > 0.1 watch, > 0.25 drift)."""
    db = open_or_exit(_settings())
    try:
        report = drift(
            db,
            model,
            reference_start=_when(reference_start, "--reference-start"),
            reference_end=_when(reference_end, "--reference-end"),
            features=list(features) or None,
            min_count=min_count,
        )
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump(dataclasses.asdict(report))
        return
    click.echo(
        f"{model}: reference {_time(report.reference_start)} → {_time(report.reference_end)} "
        f"({report.reference_n} predictions)"
    )
    rows = report.rows if show_all else report.flagged()
    if not rows:
        click.echo("    no week is flagged (PSI ≤ 0.1 everywhere with enough predictions)")
    for r in rows:
        value = "-" if r.psi is None else f"{r.psi:.3f}"
        click.echo(
            f"    {r.week}  {r.version or 'all versions'}  {r.feature}: PSI {value} "
            f"(n={r.n}) {r.flag}"
        )


@history_group.command("timeline")
@click.argument("model")
@click.option("--alias", default=DEFAULT_ALIAS, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def timeline_command(model: str, alias: str, as_json: bool) -> None:
    """Which version ALIAS pointed at over time, and which versions served predictions."""
    settings = _settings()
    db = open_or_exit(settings)
    try:
        periods = alias_timeline(db, ModelStore(settings.store), model, alias=alias)
    except MedModelsError as exc:
        _fail(str(exc))
    if as_json:
        _dump([dataclasses.asdict(p) for p in periods])
        return
    for p in periods:
        served = ", ".join(f"{v}: {n}" for v, n in sorted(p.served.items())) or "none"
        click.echo(
            f"{_time(p.start) if p.start else 'beginning'} → {_time(p.end) if p.end else 'now'}"
            f"  {alias} = {p.version or '(unset)'}: {p.predictions} "
            f"prediction{'s' if p.predictions != 1 else ''} "
            f"({p.via_alias} via {alias}); served by {served}"
        )


@click.command("feedback")
@click.argument("prediction_id")
@click.option("--verdict", type=click.Choice(VERDICTS), required=True)
@click.option(
    "--reason",
    type=click.Choice(list(FEEDBACK_REASONS)),
    help="Why: " + "; ".join(f"{k}: {v}" for k, v in FEEDBACK_REASONS.items()) + ".",
)
@click.option("--label", "corrected_label", help="The label it should have been.")
@click.option("--note", help="A short note (never anything that identifies the patient).")
def feedback_command(
    prediction_id: str,
    verdict: str,
    reason: str | None,
    corrected_label: str | None,
    note: str | None,
) -> None:
    """Say whether prediction ID was right; the latest feedback counts."""
    db = open_or_exit(_settings())
    try:
        fb = add_feedback(
            db, prediction_id, verdict, reason=reason, corrected_label=corrected_label, note=note
        )
    except MedModelsError as exc:
        _fail(str(exc))
    click.echo(f"{fb.prediction_id}: {fb.verdict}" + (f" [{fb.reason}]" if fb.reason else ""))
