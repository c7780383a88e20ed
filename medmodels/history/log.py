"""Record predictions and rejections, collect feedback, and answer the questions asked of the
history: recent predictions, per-version statistics, version comparisons, the alias timeline,
exports. (Drift is in :mod:`medmodels.history.drift`.)

What a row holds is listed in :data:`medmodels.history.db.MIGRATIONS`. Every value is either
produced by MedModels (ids, times, timings, statistics of the decoded pixels, model facts) or
taken from the scan's allow-listed technical summary; nothing read from a header's identifying
attributes, no file name and no raw bytes are ever stored. ``series_hash`` is an HMAC-SHA256 of
the scan's pixel fingerprint under a local secret (``<home>/secrets/history.key``): it
recognises repeats of the same series without being reversible or comparable across sites.

All times are UTC. Functions take the process's :class:`~medmodels.history.db.Database`
(see :func:`~medmodels.history.db.open_database`) and are safe to call from several threads.
"""

from __future__ import annotations

import functools
import math
import platform
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medmodels.errors import HistoryError
from medmodels.history import artifacts as art
from medmodels.history.db import Database
from medmodels.history.secrets import home_secret, keyed_hash
from medmodels.inference.predict import Prediction
from medmodels.scans.types import Scan
from medmodels.store.manifest import is_version, sort_versions
from medmodels.store.store import DEFAULT_ALIAS, ModelStore

Status = Literal["ok", "rejected", "failed"]
Source = Literal["cli", "app", "api"]
Verdict = Literal["agree", "disagree", "unsure"]
STATUSES: tuple[str, ...] = ("ok", "rejected", "failed")
SOURCES: tuple[str, ...] = ("cli", "app", "api")
VERDICTS: tuple[str, ...] = ("agree", "disagree", "unsure")
STAGES: tuple[str, ...] = ("load", "preprocess", "infer", "postprocess", "total", "artifacts")

# The closed list of feedback reasons (code → what it means), shown by the app and the CLI.
FEEDBACK_REASONS: dict[str, str] = {
    "wrong-label": "the predicted class or label is wrong",
    "missed-region": "the model missed a region or finding",
    "extra-region": "the model marked something that is not there",
    "boundary": "the region is right but its boundary is off",
    "image-quality": "the image is too poor to judge",
    "out-of-scope": "the scan is outside what the model is meant for",
    "other": "another reason (say which in the note)",
}
NOTE_MAX_CHARS = 1000
# Intensity statistics are estimated on at most this many evenly strided voxels.
STATS_MAX_VOXELS = 1 << 18

_REASON_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_SECRET_NAME = "history"


# --------------------------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class InputStats:
    """Intensity statistics of a scan's decoded pixels (physical units: HU for CT)."""

    mean: float | None
    std: float | None
    p1: float | None
    p50: float | None
    p99: float | None


def input_stats(array: np.ndarray) -> InputStats:
    """Mean, standard deviation and 1st/50th/99th percentiles of ``array``'s finite values,
    estimated on at most :data:`STATS_MAX_VOXELS` evenly strided voxels (about 10 ms for a
    512×512×300 CT instead of seconds; the percentiles move by well under 1 %)."""
    flat = array.reshape(-1)
    step = max(1, math.ceil(flat.size / STATS_MAX_VOXELS))
    sample = flat[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return InputStats(None, None, None, None, None)
    p1, p50, p99 = np.percentile(sample, [1, 50, 99])
    return InputStats(float(sample.mean()), float(sample.std()), float(p1), float(p50), float(p99))


def series_hash(db: Database, scan: Scan) -> str | None:
    """The keyed hash that recognises repeats of ``scan`` (None without a fingerprint)."""
    if not scan.fingerprint:
        return None
    return keyed_hash(home_secret(db.settings, _SECRET_NAME), scan.fingerprint)


@functools.cache
def _library_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medmodels")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None


_host_ids: dict[Path, str] = {}
_host_lock = threading.Lock()


def _host_id(db: Database) -> str:
    """A keyed hash of the host name: tells hosts apart without naming them."""
    with _host_lock:
        if db.path not in _host_ids:
            secret = home_secret(db.settings, _SECRET_NAME)
            _host_ids[db.path] = keyed_hash(secret, "host:" + platform.node())[:16]
        return _host_ids[db.path]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _scan_columns(db: Database, scan: Scan) -> dict[str, Any]:
    """The typed input columns of one scan (allow-listed summary facts and pixel statistics)."""
    summary: Mapping[str, Any] = scan.summary or {}
    z, y, x = scan.shape
    spacing = scan.spacing_mm or (None, None, None)
    stats = input_stats(scan.array)
    return {
        "modality": _text(scan.modality),
        "kind": _text(scan.kind),
        "source_format": _text(scan.source_format),
        "manufacturer": _text(summary.get("manufacturer")),
        "manufacturer_model": _text(summary.get("manufacturer_model")),
        "body_part": _text(summary.get("body_part")),
        "shape_z": z,
        "shape_y": y,
        "shape_x": x,
        "slice_count": z,
        "spacing_x_mm": _finite(spacing[0]),
        "spacing_y_mm": _finite(spacing[1]),
        "spacing_z_mm": _finite(spacing[2]),
        "slice_thickness_mm": _finite(summary.get("slice_thickness_mm")),
        "intensity_mean": stats.mean,
        "intensity_std": stats.std,
        "intensity_p1": stats.p1,
        "intensity_p50": stats.p50,
        "intensity_p99": stats.p99,
        "series_hash": series_hash(db, scan),
    }


def output_value(prediction: Prediction) -> float | None:
    """The one number that summarises an output: for classification the probability of the
    positive label (the last label, as the decision uses), for segmentation the foreground
    volume in mL (every label but index 0; None when the spacing is unknown)."""
    if prediction.task == "classification":
        labels = list(prediction.labels)
        if not labels:
            return None
        return _finite((labels[-1] if len(labels) > 1 else labels[0]).probability)
    foreground = [lab for lab in prediction.labels if lab.index != 0]
    if not foreground or any(lab.volume_ml is None for lab in foreground):
        return None
    return _finite(sum(lab.volume_ml or 0.0 for lab in foreground))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _base_row(
    db: Database,
    *,
    status: str,
    reason_code: str | None,
    source: str,
    model: str,
    version: str | None,
    alias: str | None,
) -> dict[str, Any]:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    if reason_code is not None and not _REASON_CODE.fullmatch(reason_code):
        raise ValueError(
            "reason_code must be a short code of lowercase letters, digits and dashes "
            "(e.g. 'scan-mismatch'), never free text"
        )
    return {
        "id": uuid.uuid4(),
        "created_at": _now(),
        "status": status,
        "reason_code": reason_code,
        "source": source,
        "model": model,
        "version": version,
        "alias": alias,
        "host_id": _host_id(db),
        "medmodels_version": _library_version(),
    }


def prediction_row(
    db: Database,
    prediction: Prediction,
    scan: Scan,
    *,
    alias: str | None = None,
    source: Source = "cli",
) -> dict[str, Any]:
    """The ``predictions`` row (column → value) for one successful prediction."""
    row = _base_row(
        db,
        status="ok",
        reason_code=None,
        source=source,
        model=prediction.model,
        version=prediction.version,
        alias=alias,
    )
    timings = prediction.timings_ms
    row.update(
        {
            "task": prediction.task,
            "model_sha256": prediction.model_sha256,
            "manifest_sha256": prediction.manifest_sha256,
            "onnxruntime_version": prediction.onnxruntime_version,
            "provider": prediction.provider,
            **{f"{stage}_ms": _finite(timings.get(stage)) for stage in STAGES[:-1]},
            **_scan_columns(db, scan),
            "top_label": prediction.top_label,
            "top_probability": _finite(prediction.top_probability),
            "decision": prediction.decision,
            "threshold": _finite(prediction.threshold),
            "output_value": output_value(prediction),
            "labels": [
                {
                    "idx": lab.index,
                    "name": lab.name,
                    "probability": _finite(lab.probability),
                    "voxels": lab.voxels,
                    "volume_ml": _finite(lab.volume_ml),
                }
                for lab in prediction.labels
            ],
            "warnings": list(prediction.warnings),
        }
    )
    return row


@functools.cache
def _insert_sql(columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO predictions ({', '.join(columns)}) VALUES ({marks})"


def write_row(db: Database, row: Mapping[str, Any]) -> None:
    """Insert one ``predictions`` row: one statement, one transaction (the timed part of
    logging; see ``bench/log_latency.py``)."""
    columns = tuple(row)
    with db.cursor() as cur:
        cur.execute(_insert_sql(columns), list(row.values()))


def record_prediction(
    db: Database,
    prediction: Prediction,
    scan: Scan,
    *,
    alias: str | None = None,
    source: Source = "cli",
    artifacts: bool | None = None,
) -> str:
    """Log a successful prediction (and, unless ``artifacts`` is False or the
    ``save_artifacts`` setting is off, its artifacts); returns its id.

    ``alias`` is the alias the user asked for (``production`` for ``model@production`` or a
    bare model name), so the alias timeline can tell which version served it."""
    row = prediction_row(db, prediction, scan, alias=alias, source=source)
    pid = str(row["id"])
    wanted = db.settings.save_artifacts if artifacts is None else artifacts
    if wanted:
        t0 = time.perf_counter()
        try:
            art.write_artifacts(db.home, pid, scan, prediction)
        except OSError as exc:  # disk full, read-only folder: say so, as the database does
            raise HistoryError(
                f"The prediction was not saved: its artifacts cannot be written under "
                f"{art.artifacts_root(db.home)} ({exc.strerror or exc}). Free some space, set "
                "MEDMODELS_HOME to a writable folder, or turn MEDMODELS_SAVE_ARTIFACTS off."
            ) from exc
        row["artifacts_ms"] = (time.perf_counter() - t0) * 1000
    try:
        write_row(db, row)
    except BaseException:
        art.delete_artifacts(db.home, pid)
        raise
    if wanted:
        maybe_purge_artifacts(db)
    return pid


def record_rejection(
    db: Database,
    *,
    model: str,
    reason_code: str,
    version: str | None = None,
    alias: str | None = None,
    source: Source = "cli",
    scan: Scan | None = None,
    status: Status = "rejected",
    task: str | None = None,
) -> str:
    """Log an input that was refused (``status="rejected"``) or a run that failed
    (``"failed"``) with a short ``reason_code`` (e.g. ``truncated``, ``scan-mismatch``); returns
    its id. With ``scan`` its technical summary is stored too, as for a prediction."""
    if status == "ok":
        raise ValueError("record_rejection logs 'rejected' or 'failed'; use record_prediction")
    row = _base_row(
        db,
        status=status,
        reason_code=reason_code,
        source=source,
        model=model,
        version=version,
        alias=alias,
    )
    row["task"] = task
    if scan is not None:
        row.update(_scan_columns(db, scan))
    write_row(db, row)
    return str(row["id"])


def alias_used(store: ModelStore, ref: str) -> str | None:
    """The alias a model reference goes through: ``name@alias`` → alias, a bare name → the
    ``production`` alias when it is set, ``name@1.2.0`` → None."""
    name, sep, tag = ref.partition("@")
    if sep:
        return None if is_version(tag) else tag
    try:
        return DEFAULT_ALIAS if DEFAULT_ALIAS in store.aliases(name) else None
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# Looking up, feedback and deletion


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None


def resolve_id(db: Database, text: str) -> str:
    """The full id for ``text``: a full prediction id or a unique prefix of at least 6 hex
    digits (as printed by ``medmodels history``)."""
    text = (text or "").strip().lower()
    full = _uuid_or_none(text)
    with db.cursor() as cur:
        if full is not None:
            rows = cur.execute("SELECT id FROM predictions WHERE id = ?", [full]).fetchall()
        elif re.fullmatch(r"[0-9a-f-]{6,36}", text):
            rows = cur.execute(
                "SELECT id FROM predictions WHERE starts_with(CAST(id AS VARCHAR), ?) LIMIT 6",
                [text],
            ).fetchall()
        else:
            raise HistoryError(
                f"{text!r} is not a prediction id; give the id (or its first 8 characters) "
                "that 'medmodels predict' or 'medmodels history' printed"
            )
    if not rows:
        raise HistoryError(
            f"no prediction with id {text} in the history; list recent ones with "
            "'medmodels history'"
        )
    if len(rows) > 1:
        found = ", ".join(str(r[0]) for r in rows[:5])
        raise HistoryError(f"{text} matches several predictions ({found}); give more characters")
    return str(rows[0][0])


@dataclass(frozen=True)
class Feedback:
    """One verdict on a prediction. The latest one per prediction counts in summaries."""

    prediction_id: str
    verdict: str
    reason: str | None
    corrected_label: str | None
    note: str | None
    created_at: datetime


def add_feedback(
    db: Database,
    prediction_id: str,
    verdict: str,
    *,
    reason: str | None = None,
    corrected_label: str | None = None,
    note: str | None = None,
) -> Feedback:
    """Record a verdict (``agree``/``disagree``/``unsure``) on a prediction, with an optional
    reason from :data:`FEEDBACK_REASONS`, a corrected label (one of the prediction's labels)
    and a note (at most :data:`NOTE_MAX_CHARS` characters; it must not identify the patient).
    Earlier feedback is kept; the latest wins in summaries."""
    if verdict not in VERDICTS:
        raise HistoryError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    if reason is not None and reason not in FEEDBACK_REASONS:
        raise HistoryError(
            f"reason {reason!r} is not on the list; choose one of {', '.join(FEEDBACK_REASONS)}"
        )
    if note is not None:
        note = note.strip() or None
        if note is not None and len(note) > NOTE_MAX_CHARS:
            raise HistoryError(f"the note is longer than {NOTE_MAX_CHARS} characters; shorten it")
    pid = resolve_id(db, prediction_id)
    with db.cursor() as cur:
        (labels,) = cur.execute(
            "SELECT [l.name FOR l IN coalesce(labels, [])] FROM predictions WHERE id = ?", [pid]
        ).fetchone() or ([],)
        if corrected_label is not None and corrected_label not in labels:
            choices = ", ".join(labels) if labels else "none (this prediction has no labels)"
            raise HistoryError(
                f"corrected label {corrected_label!r} is not one of this model's labels; "
                f"choose one of: {choices}"
            )
        created = _now()
        cur.execute(
            "INSERT INTO feedback (prediction_id, created_at, verdict, reason, corrected_label, "
            "note) VALUES (?, ?, ?, ?, ?, ?)",
            [uuid.UUID(pid), created, verdict, reason, corrected_label, note],
        )
    return Feedback(pid, verdict, reason, corrected_label, note, created.replace(tzinfo=UTC))


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _dicts(cur: Any, rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [{n: _utc(v) for n, v in zip(names, row, strict=True)} for row in rows]


def get_prediction(db: Database, prediction_id: str) -> dict[str, Any]:
    """Every column of one prediction, plus ``feedback`` (oldest first), ``verdict`` (the
    latest) and ``artifacts`` (file name → path of the artifacts that still exist)."""
    pid = resolve_id(db, prediction_id)
    with db.cursor() as cur:
        rows = cur.execute("SELECT * FROM predictions WHERE id = ?", [uuid.UUID(pid)]).fetchall()
        record = _dicts(cur, rows)[0]
        fb = cur.execute(
            "SELECT verdict, reason, corrected_label, note, created_at FROM feedback "
            "WHERE prediction_id = ? ORDER BY seq",
            [uuid.UUID(pid)],
        ).fetchall()
        record["feedback"] = _dicts(cur, fb)
    record["verdict"] = record["feedback"][-1]["verdict"] if record["feedback"] else None
    record["artifacts"] = art.list_artifacts(db.home, pid)
    return record


def delete_prediction(db: Database, prediction_id: str) -> str:
    """Delete a prediction, its feedback and its artifacts; returns the full id."""
    pid = resolve_id(db, prediction_id)
    key = uuid.UUID(pid)
    with db.cursor() as cur:
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute("DELETE FROM feedback WHERE prediction_id = ?", [key])
            cur.execute("DELETE FROM predictions WHERE id = ?", [key])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    art.delete_artifacts(db.home, pid)
    return pid


_last_purge: dict[Path, float] = {}
_PURGE_EVERY_S = 3600.0


def purge_artifacts(db: Database, *, now: datetime | None = None) -> list[str]:
    """Remove artifacts past the retention period (``artifact_retention_days``) and those of
    predictions no longer in the history; returns the prediction ids whose artifacts went."""
    ids = art.artifact_ids(db.home)
    if not ids:
        return []
    with db.cursor() as cur:
        rows = cur.execute(
            "SELECT id, created_at FROM predictions WHERE list_contains(?::UUID[], id)",
            [ids],
        ).fetchall()
    created = {str(pid): when for pid, when in rows}
    return art.purge_expired(db.home, db.settings.artifact_retention_days, created, now=now)


def maybe_purge_artifacts(db: Database) -> None:
    """Run :func:`purge_artifacts` at most once an hour per process."""
    moment = time.monotonic()
    last = _last_purge.get(db.path)
    if last is not None and moment - last < _PURGE_EVERY_S:
        return
    _last_purge[db.path] = moment
    purge_artifacts(db)


# --------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True, kw_only=True)
class HistoryFilter:
    """Which predictions a query covers; every field left None matches everything.

    ``since``/``until`` take datetimes (naive ones are UTC) or dates; a date ``until``
    includes that whole day. ``verdict`` is the latest feedback, or ``"none"`` for unrated."""

    model: str | None = None
    version: str | None = None
    since: datetime | date | None = None
    until: datetime | date | None = None
    status: str | None = None
    verdict: str | None = None
    modality: str | None = None
    source: str | None = None
    alias: str | None = None


def _as_utc_naive(value: datetime | date, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    moment = datetime(value.year, value.month, value.day)
    return moment + timedelta(days=1) if end else moment


def _where(filters: HistoryFilter | None) -> tuple[str, list[Any]]:
    f = filters or HistoryFilter()
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("model", "version", "status", "modality", "source", "alias"):
        value = getattr(f, column)
        if value is not None:
            clauses.append(f"p.{column} = ?")
            params.append(value)
    if f.since is not None:
        clauses.append("p.created_at >= ?")
        params.append(_as_utc_naive(f.since, end=False))
    if f.until is not None:
        inclusive = isinstance(f.until, datetime)
        clauses.append("p.created_at <= ?" if inclusive else "p.created_at < ?")
        params.append(_as_utc_naive(f.until, end=True))
    if f.verdict is not None:
        if f.verdict == "none":
            clauses.append("lf.verdict IS NULL")
        elif f.verdict in VERDICTS:
            clauses.append("lf.verdict = ?")
            params.append(f.verdict)
        else:
            raise HistoryError(
                f"verdict filter must be one of {', '.join(VERDICTS)} or none, not {f.verdict!r}"
            )
    if f.status is not None and f.status not in STATUSES:
        raise HistoryError(f"status must be one of {', '.join(STATUSES)}, not {f.status!r}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


_LIST_COLUMNS = """p.id, p.created_at, p.status, p.reason_code, p.source, p.model, p.version,
    p.alias, p.task, p.modality, p.kind, p.manufacturer, p.manufacturer_model, p.body_part,
    p.shape_z, p.shape_y, p.shape_x, p.spacing_x_mm, p.spacing_y_mm, p.spacing_z_mm,
    p.slice_thickness_mm, p.intensity_mean, p.intensity_std, p.intensity_p1, p.intensity_p50,
    p.intensity_p99, p.series_hash, p.top_label, p.top_probability, p.decision, p.threshold,
    p.output_value, p.load_ms, p.preprocess_ms, p.infer_ms, p.postprocess_ms, p.total_ms,
    p.artifacts_ms, p.provider, p.onnxruntime_version, p.model_sha256, p.manifest_sha256,
    p.host_id, lf.verdict, lf.reason AS feedback_reason,
    lf.corrected_label, lf.created_at AS feedback_at"""
_FROM = " FROM predictions p LEFT JOIN latest_feedback lf ON lf.prediction_id = p.id"


def recent(
    db: Database, filters: HistoryFilter | None = None, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Predictions matching ``filters``, newest first, one page of ``limit`` from ``offset``.

    Each row is a dict with the typed columns, ``labels`` (list of dicts: idx, name,
    probability, voxels, volume_ml), ``warnings`` and the latest feedback (``verdict``,
    ``feedback_reason``, ``corrected_label``, ``feedback_at``)."""
    where, params = _where(filters)
    sql = (
        f"SELECT {_LIST_COLUMNS}, p.labels, p.warnings{_FROM}{where} "
        "ORDER BY p.created_at DESC, p.id LIMIT ? OFFSET ?"
    )
    with db.cursor() as cur:
        rows = cur.execute(sql, [*params, int(limit), int(offset)]).fetchall()
        return _dicts(cur, rows)


def count(db: Database, filters: HistoryFilter | None = None) -> int:
    """How many predictions match ``filters`` (for paging)."""
    where, params = _where(filters)
    with db.cursor() as cur:
        row = cur.execute(f"SELECT count(*){_FROM}{where}", params).fetchone()
    return int(row[0]) if row else 0


ExportFormat = Literal["csv", "parquet"]


def export(
    db: Database, path: str | Path, *, format: ExportFormat, filters: HistoryFilter | None = None
) -> int:
    """Write the predictions matching ``filters`` (newest first, same columns as
    :func:`recent`, with ``labels`` as JSON text and ``warnings`` joined by `` | ``) to a CSV
    or Parquet file with DuckDB's ``COPY``; returns the number of rows. Feedback notes are not
    exported (free text)."""
    if format not in ("csv", "parquet"):
        raise HistoryError(f"export format must be csv or parquet, not {format!r}")
    target = Path(path)
    where, params = _where(filters)
    query = (
        f"SELECT {_LIST_COLUMNS}, CAST(to_json(p.labels) AS VARCHAR) AS labels, "
        f"array_to_string(p.warnings, ' | ') AS warnings{_FROM}{where} "
        "ORDER BY p.created_at DESC, p.id"
    )
    options = "FORMAT csv, HEADER true" if format == "csv" else "FORMAT parquet"
    literal = str(target).replace("'", "''")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryError(f"cannot create the folder of {target} ({exc.strerror})") from None
    with db.cursor() as cur:
        row = cur.execute(f"COPY ({query}) TO '{literal}' ({options})", params).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class VersionStats:
    """What the history says about one model version.

    ``predictions`` counts every row (ok, rejected and failed); latencies are over ``ok`` rows
    and in milliseconds per stage; ``rejection_rate`` = rejected / predictions;
    ``agreement_rate`` = agree / (agree + disagree) over the latest feedback per prediction
    (unsure does not count); ``mean_output`` is the mean of ``output_value`` (positive-label
    probability or foreground volume in mL)."""

    model: str
    version: str | None
    predictions: int
    ok: int
    rejected: int
    failed: int
    rejection_rate: float
    p50_ms: dict[str, float | None]
    p95_ms: dict[str, float | None]
    rated: int
    agree: int
    disagree: int
    unsure: int
    agreement_rate: float | None
    mean_output: float | None
    first_used: datetime | None
    last_used: datetime | None


def _stage_sql(stage: str) -> str:
    return f"quantile_cont({stage}_ms, [0.5, 0.95]) FILTER (WHERE p.status = 'ok') AS q_{stage}"


def version_stats(db: Database, model: str | None = None) -> list[VersionStats]:
    """Per model version: counts, latency p50/p95 per stage, rejection and agreement rates,
    mean output, first and last use. Sorted by model, then newest version first."""
    sql = f"""SELECT p.model, p.version, count(*) AS n,
        count(*) FILTER (WHERE p.status = 'ok') AS ok,
        count(*) FILTER (WHERE p.status = 'rejected') AS rejected,
        count(*) FILTER (WHERE p.status = 'failed') AS failed,
        {", ".join(_stage_sql(s) for s in STAGES)},
        count(lf.verdict) AS rated,
        count(*) FILTER (WHERE lf.verdict = 'agree') AS agree,
        count(*) FILTER (WHERE lf.verdict = 'disagree') AS disagree,
        count(*) FILTER (WHERE lf.verdict = 'unsure') AS unsure,
        avg(p.output_value) FILTER (WHERE p.status = 'ok') AS mean_output,
        min(p.created_at) AS first_used, max(p.created_at) AS last_used
        {_FROM}
        WHERE ? IS NULL OR p.model = ?
        GROUP BY p.model, p.version"""
    with db.cursor() as cur:
        rows = cur.execute(sql, [model, model]).fetchall()
    out: list[VersionStats] = []
    k = len(STAGES)
    for row in rows:
        name, version, n, ok, rejected, failed = row[:6]
        quantiles = row[6 : 6 + k]
        rated, agree, disagree, unsure, mean_output, first, last = row[6 + k :]
        out.append(
            VersionStats(
                model=name,
                version=version,
                predictions=int(n),
                ok=int(ok),
                rejected=int(rejected),
                failed=int(failed),
                rejection_rate=rejected / n if n else 0.0,
                p50_ms={s: (q[0] if q else None) for s, q in zip(STAGES, quantiles, strict=True)},
                p95_ms={s: (q[1] if q else None) for s, q in zip(STAGES, quantiles, strict=True)},
                rated=int(rated),
                agree=int(agree),
                disagree=int(disagree),
                unsure=int(unsure),
                agreement_rate=agree / (agree + disagree) if agree + disagree else None,
                mean_output=mean_output,
                first_used=_utc(first),
                last_used=_utc(last),
            )
        )
    return _sorted_by_version(out)


def _sorted_by_version(items: list[VersionStats]) -> list[VersionStats]:
    by_model: dict[str, list[VersionStats]] = {}
    for item in items:
        by_model.setdefault(item.model, []).append(item)
    result: list[VersionStats] = []
    for name in sorted(by_model):
        group = by_model[name]
        valid = [s.version for s in group if s.version and is_version(s.version)]
        order = {v: i for i, v in enumerate(sort_versions(valid))}
        result += sorted(
            group, key=lambda s: (order.get(s.version or "", len(order)), s.version or "")
        )
    return result


@dataclass(frozen=True)
class Comparison:
    """Two versions of a model on the same inputs (same ``series_hash``; the latest ``ok``
    prediction of each version per series).

    Disagreement: for classification, a different top label or decision; for segmentation, a
    foreground volume differing by more than ``volume_tolerance`` of the larger one. Volume
    differences are ``b − a`` (``output_value``, and per label in mL, background excluded)."""

    model: str
    a: str
    b: str
    pairs: int
    disagreements: int
    disagreement_rate: float | None
    mean_output_difference: float | None
    mean_abs_output_difference: float | None
    label_volume_difference_ml: dict[str, float | None] = field(default_factory=dict)


def compare_versions(
    db: Database, model: str, a: str, b: str, *, volume_tolerance: float = 0.1
) -> Comparison:
    """How versions ``a`` and ``b`` of ``model`` differ on the series both have seen."""

    def pairs_sql(columns: tuple[str, ...]) -> str:
        """Latest ok prediction per (version, series), paired across the two versions."""
        pick = ", ".join(f"x.{c} AS {c}_a, y.{c} AS {c}_b" for c in columns)
        return f"""WITH latest AS (
            SELECT version, series_hash, task, {", ".join(columns)}
            FROM predictions
            WHERE model = ? AND status = 'ok' AND series_hash IS NOT NULL AND version IN (?, ?)
            QUALIFY row_number() OVER (
                PARTITION BY version, series_hash ORDER BY created_at DESC, id) = 1),
        pairs AS (
            SELECT x.series_hash, x.task, {pick}
            FROM latest x JOIN latest y USING (series_hash)
            WHERE x.version = ? AND y.version = ?)"""

    params = [model, a, b, a, b]
    summary_sql = (
        pairs_sql(("top_label", "decision", "output_value"))
        + """
        SELECT count(*),
            count(*) FILTER (WHERE CASE WHEN task = 'classification'
                THEN top_label_a IS DISTINCT FROM top_label_b
                    OR decision_a IS DISTINCT FROM decision_b
                ELSE abs(coalesce(output_value_b, 0) - coalesce(output_value_a, 0))
                    > ? * greatest(abs(coalesce(output_value_a, 0)),
                                   abs(coalesce(output_value_b, 0)))
                END),
            avg(output_value_b - output_value_a), avg(abs(output_value_b - output_value_a))
        FROM pairs"""
    )
    labels_sql = (
        pairs_sql(("labels",))
        + """,
        va AS (SELECT series_hash, unnest(labels_a, recursive := true) FROM pairs
               WHERE task = 'segmentation'),
        vb AS (SELECT series_hash, unnest(labels_b, recursive := true) FROM pairs
               WHERE task = 'segmentation')
        SELECT va.name, avg(vb.volume_ml - va.volume_ml)
        FROM va JOIN vb ON va.series_hash = vb.series_hash AND va.name = vb.name
        WHERE va.voxels IS NOT NULL AND va.idx <> 0
        GROUP BY va.name, va.idx ORDER BY va.idx"""
    )
    with db.cursor() as cur:
        n, disagree, mean_diff, mean_abs = cur.execute(
            summary_sql, [*params, float(volume_tolerance)]
        ).fetchone() or (0, 0, None, None)
        per_label = cur.execute(labels_sql, params).fetchall()
    return Comparison(
        model=model,
        a=a,
        b=b,
        pairs=int(n),
        disagreements=int(disagree),
        disagreement_rate=disagree / n if n else None,
        mean_output_difference=mean_diff,
        mean_abs_output_difference=mean_abs,
        label_volume_difference_ml={str(name): diff for name, diff in per_label},
    )


@dataclass(frozen=True)
class AliasPeriod:
    """One stretch of time during which ``alias`` pointed at ``version`` (None: unset), with
    the ``ok`` predictions of the model made then: ``served`` counts them per version that
    produced them, ``via_alias`` those requested through the alias, ``via_alias_other`` those
    requested through the alias but served by another version (should stay 0)."""

    alias: str
    version: str | None
    start: datetime | None
    end: datetime | None
    predictions: int
    via_alias: int
    via_alias_other: int
    served: dict[str, int]


def alias_timeline(
    db: Database, store: ModelStore, model: str, *, alias: str = DEFAULT_ALIAS
) -> list[AliasPeriod]:
    """The alias's moves (from the store's alias log) joined with the history: for every
    period, which version the alias pointed at and which versions served predictions."""
    events = store.alias_history(model, alias)
    bounds: list[tuple[datetime | None, datetime | None, str | None]] = []
    start: datetime | None = None
    current: str | None = None
    for event in events:
        when = event.time.astimezone(UTC)
        bounds.append((start, when, current))
        start, current = when, event.to_version
    bounds.append((start, None, current))
    starts = [_as_utc_naive(s, end=False) if s else datetime(1, 1, 1) for s, _, _ in bounds]
    ends = [_as_utc_naive(e, end=False) if e else datetime(9999, 1, 1) for _, e, _ in bounds]
    targets = [t for _, _, t in bounds]
    sql = """WITH periods AS (
            SELECT unnest(?::TIMESTAMP[]) AS t0, unnest(?::TIMESTAMP[]) AS t1,
                unnest(?::VARCHAR[]) AS target, unnest(range(?)) AS idx)
        SELECT idx, p.version, count(*), count(*) FILTER (WHERE p.alias = ?),
            count(*) FILTER (WHERE p.alias = ? AND p.version IS DISTINCT FROM target)
        FROM periods JOIN predictions p
            ON p.created_at >= t0 AND p.created_at < t1
        WHERE p.model = ? AND p.status = 'ok'
        GROUP BY idx, p.version"""
    with db.cursor() as cur:
        rows = cur.execute(
            sql, [starts, ends, targets, len(bounds), alias, alias, model]
        ).fetchall()
    tallies: dict[int, dict[str, Any]] = {
        i: {"n": 0, "via": 0, "other": 0, "served": {}} for i in range(len(bounds))
    }
    for idx, version, n, via, other in rows:
        t = tallies[int(idx)]
        t["n"] += n
        t["via"] += via
        t["other"] += other
        t["served"][version or "?"] = int(n)
    periods = [
        AliasPeriod(
            alias=alias,
            version=target,
            start=s,
            end=e,
            predictions=int(tallies[i]["n"]),
            via_alias=int(tallies[i]["via"]),
            via_alias_other=int(tallies[i]["other"]),
            served=tallies[i]["served"],
        )
        for i, (s, e, target) in enumerate(bounds)
    ]
    # The period before the alias was first set is only shown when something happened in it.
    if len(periods) > 1 and periods[0].predictions == 0:
        periods = periods[1:]
    return periods
