"""The ``medmodels`` command line. Each command calls the library and prints what it returns."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from medmodels.config import Settings, load_settings, settings_table
from medmodels.errors import ConfigError, MedModelsError, ModelNotFoundError, ScanMismatchError
from medmodels.history.commands import feedback_command, history_group, open_or_exit
from medmodels.history.log import alias_used, record_prediction, record_rejection
from medmodels.inference import predict
from medmodels.scans import Scan, load_scans
from medmodels.store import Manifest, ModelStore, diff


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medmodels")
def main() -> None:
    """MedModels: try versioned medical imaging models on DICOM/NIfTI scans.

    Research use only — not for diagnosis.
    """


def _scan_record(index: int, scan: Scan) -> dict[str, Any]:
    return {
        "index": index,
        "description": scan.describe(),
        "modality": scan.modality,
        "kind": scan.kind,
        "format": scan.source_format,
        "shape": list(scan.shape),
        "spacing_mm": None if scan.spacing_mm is None else list(scan.spacing_mm),
        "dtype": str(scan.array.dtype),
        "files": scan.file_count,
        "summary": dict(scan.summary),
        "warnings": list(scan.warnings),
        "removed": list(scan.removed),
    }


@main.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def scan_command(paths: tuple[Path, ...], as_json: bool) -> None:
    """Show what the loader sees in PATHS (files, folders, zips, NIfTI).

    Per series or volume: summary, shape, spacing, warnings and the names of the identifying
    attributes that were dropped. Exit code 0 when at least one scan loaded, 2 when none did
    (one line per rejected file on stderr).
    """
    settings = _settings()
    result = load_scans(list(paths), settings=settings)
    records = [_scan_record(i, s) for i, s in enumerate(result.scans, start=1)]
    problems = [{"file": p.name, "code": p.code, "reason": p.reason} for p in result.problems]
    if as_json:
        click.echo(
            json.dumps(
                {"scans": records, "problems": problems, "warnings": result.warnings}, indent=2
            )
        )
    else:
        for rec in records:
            click.echo(
                f"[{rec['index']}] {rec['description']}  ({rec['format']}, "
                f"{rec['files']} file{'s' if rec['files'] != 1 else ''})"
            )
            for key, value in rec["summary"].items():
                if value is not None and key not in ("shape", "spacing_mm", "modality"):
                    click.echo(f"      {key}: {value}")
            for note in rec["warnings"]:
                click.echo(f"      warning: {note}")
            removed = ", ".join(rec["removed"]) or "none"
            click.echo(f"      identifying attributes dropped: {removed}")
        for note in result.warnings:
            click.echo(f"warning: {note}")
    for p in result.problems:
        click.echo(f"{p.name}: {p.reason} [{p.code}]", err=True)
    if not result.scans:
        sys.exit(2)


def _store(settings: Settings) -> ModelStore:
    return ModelStore(settings.store)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def models_command(as_json: bool) -> None:
    """List the models in the store with their versions (newest first) and aliases."""
    store = _store(_settings())
    records: list[dict[str, Any]] = []
    for name in store.models():
        versions = store.versions(name)
        newest = store.get(f"{name}@{versions[0]}").manifest
        records.append(
            {
                "name": name,
                "title": newest.title,
                "task": newest.task,
                "modalities": list(newest.input.modalities),
                "versions": versions,
                "aliases": store.aliases(name),
            }
        )
    if as_json:
        click.echo(json.dumps({"store": str(store.root), "models": records}, indent=2))
        return
    if not records:
        click.echo(f"No models in {store.root}. Publish one with 'medmodels publish'.")
    for rec in records:
        aliases = ", ".join(f"{a} → {v}" for a, v in sorted(rec["aliases"].items())) or "none"
        click.echo(f"{rec['name']}: {rec['title']} ({rec['task']}, {', '.join(rec['modalities'])})")
        click.echo(f"    versions: {', '.join(rec['versions'])}")
        click.echo(f"    aliases:  {aliases}")


@main.command("predict")
@click.argument("model_ref", metavar="MODEL[@VERSION|@ALIAS]")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--series",
    type=int,
    default=None,
    help="Which scan to use (1-based) when the upload holds several; see 'medmodels scan'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-log", is_flag=True, help="Do not record the prediction in the history.")
def predict_command(
    model_ref: str, paths: tuple[Path, ...], series: int | None, as_json: bool, no_log: bool
) -> None:
    """Run a model version on a scan and print the result.

    Exit codes: 0 success; 2 the input was rejected or does not fit the model; 3 the model,
    version or alias does not exist (the valid choices are listed); 4 the history database is
    held by another process (run with --no-log, or stop it).

    The prediction is logged in the history (rejected inputs too, with a reason code and
    nothing identifying) and its id is printed.
    """
    settings = _settings()
    store = _store(settings)
    try:
        model = store.get(model_ref)
    except ModelNotFoundError as exc:
        _fail(str(exc), 3)
    except MedModelsError as exc:
        _fail(str(exc), 2)
    db = None
    if not no_log and settings.log_predictions:
        db = open_or_exit(settings, hint=" Or run with --no-log.")
    alias = alias_used(store, model_ref)

    def log_rejection(code: str, scan: Scan | None = None, status: str = "rejected") -> None:
        if db is None:
            return
        try:
            logged = record_rejection(
                db,
                model=model.name,
                version=model.version,
                alias=alias,
                reason_code=code,
                scan=scan,
                status="failed" if status == "failed" else "rejected",
                task=model.manifest.task,
            )
        except MedModelsError as exc:
            click.echo(f"warning: the rejection was not logged: {exc}", err=True)
        else:
            click.echo(f"logged as {logged} ({status}: {code})", err=True)

    result = load_scans(list(paths), settings=settings)
    for problem in result.problems:
        click.echo(f"{problem.name}: {problem.reason} [{problem.code}]", err=True)
    if not result.scans:
        log_rejection(result.problems[0].code if result.problems else "empty")
        _fail("no scan could be read from the input", 2)
    if len(result.scans) > 1 and series is None:
        listing = "; ".join(f"{i}: {s.describe()}" for i, s in enumerate(result.scans, 1))
        _fail(
            f"the input holds {len(result.scans)} scans ({listing}); choose one with --series N", 2
        )
    index = (series or 1) - 1
    if not 0 <= index < len(result.scans):
        _fail(f"--series must be between 1 and {len(result.scans)}", 2)
    scan = result.scans[index]
    try:
        prediction = predict(scan, model)
    except ScanMismatchError as exc:
        log_rejection("scan-mismatch", scan)
        _fail(str(exc), 2)
    except MedModelsError as exc:
        log_rejection("inference-error", scan, status="failed")
        _fail(str(exc), 2)
    prediction_id = None
    if db is not None:
        try:
            prediction_id = record_prediction(db, prediction, scan, alias=alias, source="cli")
        except MedModelsError as exc:
            click.echo(f"warning: the prediction was not logged: {exc}", err=True)
    record = {"prediction_id": prediction_id, **prediction.to_dict(), "scan": scan.describe()}
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"{model.name}@{model.version} ({model.model_sha256[:12]}) on {scan.describe()}")
    click.echo("Research use only — not for diagnosis.")
    click.echo(f"prediction_id: {prediction_id or 'not logged'}")
    if prediction.task == "classification":
        for lab in prediction.labels:
            click.echo(f"    {lab.name}: {lab.probability:.3f}")
        if prediction.threshold is not None:
            click.echo(
                f"    decision at {prediction.threshold:g}: "
                f"{'positive' if prediction.decision else 'negative'}"
            )
    else:
        for lab in prediction.labels:
            volume = "n/a (spacing unknown)" if lab.volume_ml is None else f"{lab.volume_ml:.1f} mL"
            click.echo(f"    {lab.name}: {volume} ({lab.voxels} voxels)")
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in prediction.timings_ms.items())
    click.echo(f"    timings: {timings}; {prediction.provider}")
    for note in prediction.warnings:
        click.echo(f"    warning: {note}")


@main.command("publish")
@click.argument("onnx_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("manifest_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Markdown README for the version (default: rendered from the card).",
)
def publish_command(onnx_path: Path, manifest_path: Path, readme: Path | None) -> None:
    """Admit ONNX_PATH with MANIFEST_PATH and publish it as a new, immutable version."""
    store = _store(_settings())
    try:
        manifest = Manifest.load(manifest_path)
        version = store.publish(onnx_path, manifest, readme=readme.read_text() if readme else None)
    except MedModelsError as exc:
        _fail(str(exc), 2)
    click.echo(f"published {version.ref} ({version.model_sha256[:12]}) in {version.folder}")
    if version.admission is not None:
        for check in version.admission.checks:
            click.echo(f"    {check.status:4} {check.name}: {check.message}")


@main.group("alias")
def alias_group() -> None:
    """Move, list and roll back aliases (production, staging, ...)."""


@alias_group.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@click.option("--reason", help="Why (recorded in the alias log).")
def alias_set(name: str, alias: str, version: str, reason: str | None) -> None:
    """Point ALIAS of model NAME at VERSION."""
    store = _store(_settings())
    try:
        event = store.set_alias(name, alias, version, reason=reason, actor=_actor())
    except MedModelsError as exc:
        _fail(str(exc), 3 if isinstance(exc, ModelNotFoundError) else 2)
    if event is None:
        click.echo(f"{name}@{alias} already points to {version}")
    else:
        click.echo(f"{name}@{alias}: {event.from_version or '(new)'} → {event.to_version}")


@alias_group.command("rollback")
@click.argument("name")
@click.argument("alias")
@click.option("--reason", required=True, help="Why (recorded in the alias log).")
def alias_rollback(name: str, alias: str, reason: str) -> None:
    """Move ALIAS of NAME back to the version it pointed to before its last move."""
    store = _store(_settings())
    try:
        event = store.rollback(name, alias, reason=reason, actor=_actor())
    except MedModelsError as exc:
        _fail(str(exc), 3 if isinstance(exc, ModelNotFoundError) else 2)
    click.echo(f"{name}@{alias}: {event.from_version} → {event.to_version}")


@alias_group.command("history")
@click.argument("name")
@click.option("--alias", help="Only this alias.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def alias_history(name: str, alias: str | None, as_json: bool) -> None:
    """Every alias move of NAME: when, from, to, why and by whom."""
    store = _store(_settings())
    try:
        events = store.alias_history(name, alias)
    except MedModelsError as exc:
        _fail(str(exc), 3 if isinstance(exc, ModelNotFoundError) else 2)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in events], indent=2))
        return
    for e in events:
        why = f" — {e.reason}" if e.reason else ""
        who = f" by {e.actor}" if e.actor else ""
        click.echo(
            f"{e.time.isoformat(timespec='seconds')}  {e.alias}: "
            f"{e.from_version or '(new)'} → {e.to_version or '(removed)'}{who}{why}"
        )


@main.command("diff")
@click.argument("ref_a")
@click.argument("ref_b")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff_command(ref_a: str, ref_b: str, as_json: bool) -> None:
    """What changed between two versions (manifest fields, metrics, file hashes)."""
    store = _store(_settings())
    try:
        result = diff(store.get(ref_a), store.get(ref_b))
    except MedModelsError as exc:
        _fail(str(exc), 3 if isinstance(exc, ModelNotFoundError) else 2)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        return
    click.echo(f"{result.old} → {result.new}")
    if result.empty:
        click.echo("    no differences")
    for f in result.fields:
        click.echo(f"    {f.path}: {f.old!r} → {f.new!r}")
    for m in result.metrics:
        click.echo(f"    metric {m.name} ({m.dataset}): {m.old} → {m.new}")
    for fc in result.files:
        click.echo(f"    file {fc.name}: {(fc.old or '-')[:12]} → {(fc.new or '-')[:12]}")


def _actor() -> str | None:
    return os.environ.get("USER") or None


@main.command("settings")
def settings_command() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    click.echo(settings_table())


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


main.add_command(history_group)
main.add_command(feedback_command)

from medmodels.sheets.commands import optimize_command, sheet_command  # noqa: E402

main.add_command(sheet_command)
main.add_command(optimize_command)
