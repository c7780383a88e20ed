"""The ``medmodels sheet`` and ``medmodels optimize`` commands (registered in ``cli.py``).

Exit codes: 0 success; 2 the measurement, import or conversion failed (the message says why);
3 the model, version or alias does not exist (the valid choices are listed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from medmodels.config import Settings, load_settings
from medmodels.errors import ConfigError, MedModelsError, ModelNotFoundError
from medmodels.sheets.costs import PriceList, cost_rows, load_prices
from medmodels.sheets.sheet import Sheet, SheetStore, build_sheet
from medmodels.sheets.variants import VariantKind, build_ort, build_variant
from medmodels.store import ModelStore


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc), 2)


def _code(exc: MedModelsError) -> int:
    return 3 if isinstance(exc, ModelNotFoundError) else 2


def _progress(enabled: bool) -> Any:
    last = {"message": ""}

    def show(fraction: float, message: str) -> None:
        stem = message.split(" ")[0]
        if stem != last["message"]:
            last["message"] = stem
            click.echo(f"  [{fraction:4.0%}] {message}", err=True)

    return show if enabled else None


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _report(
    sheet: Sheet, store: SheetStore, prices: PriceList, path: Path | None
) -> dict[str, Any]:
    verdicts = store.verdicts(sheet)
    costs = cost_rows(sheet, prices)
    return {
        "sheet": sheet.model_dump(mode="json"),
        "file": None if path is None else str(path),
        "figures": [f.to_dict() for f in sheet.figures()],
        "costs": [c.to_dict() for c in costs],
        "price_list": prices.path,
        "verdicts": [v.to_dict() for v in verdicts],
    }


def _print_text(sheet: Sheet, report: dict[str, Any]) -> None:
    h = sheet.host
    click.echo(f"{sheet.ref} — {sheet.title}")
    click.echo(f"    host {h.fingerprint}: {h.describe()}")
    click.echo(f"    reference: {sheet.bench.reference.description}")
    for fig in sheet.figures():
        click.echo(f"    {fig.label}: {_fmt(fig.value, fig.unit)}  [{fig.provenance}]")
    click.echo("    cost per 1,000 predictions (100 % / 20 % utilisation):")
    for row in report["costs"]:
        if not row["shown"]:
            click.echo(f"      {row['name']}: {row['method']}")
            continue
        per = row["usd_per_1000"]
        click.echo(
            f"      {row['name']} (${row['usd_per_hour']:.4f}/h, {row['price_as_of']}): "
            f"${per['100%']:.4f} / ${per['20%']:.4f}  [{row['provenance']}]"
        )
        if row["provenance"] == "estimated":
            click.echo(f"        {row['method']}")
    for verdict in report["verdicts"]:
        click.echo(f"    {verdict['target']}: {verdict['verdict']}")
        for reason in verdict["reasons"]:
            click.echo(f"      - {reason}")
    for note in sheet.warnings:
        click.echo(f"    warning: {note}")
    if report["file"]:
        click.echo(f"    saved: {report['file']}")


@click.command(
    "sheet",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.argument("ref", metavar="MODEL[@VERSION|@ALIAS] | import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--runs", type=click.IntRange(min=1), help="Warm runs (default MEDMODELS_BENCH_RUNS)."
)
@click.option("--warmup", type=click.IntRange(min=0), help="Warm-up runs before measuring.")
@click.option("--stored", is_flag=True, help="Show the stored sheets instead of measuring.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (importable elsewhere).")
def sheet_command(
    ref: str,
    file: Path | None,
    runs: int | None,
    warmup: int | None,
    stored: bool,
    as_json: bool,
) -> None:
    """Measure a model version's hardware and cost sheet on this machine, and save it.

    \b
    medmodels sheet MODEL@VERSION [--runs N] [--json]   measure and save
    medmodels sheet MODEL@VERSION --stored              show stored sheets (every host)
    medmodels sheet import FILE                         store a sheet measured elsewhere

    Sheets are kept under MEDMODELS_HOME/sheets/<model>/<version>/<host>.json. Every figure
    says whether it was read from the graph, measured, derived or estimated.
    """
    settings = _settings()
    store = ModelStore(settings.store)
    sheets = SheetStore.from_settings(settings)
    try:
        prices = load_prices(settings.prices)
    except MedModelsError as exc:
        _fail(str(exc), 2)
    if ref == "import" and file is not None:
        try:
            sheet, path = sheets.import_file(file, store=store)
        except MedModelsError as exc:
            _fail(str(exc), _code(exc))
        if as_json:
            click.echo(json.dumps(_report(sheet, sheets, prices, path), indent=2))
        else:
            click.echo(f"imported {sheet.ref} measured on {sheet.host.describe()} → {path}")
        return
    if file is not None:
        _fail("unexpected extra argument; to import a sheet use 'medmodels sheet import FILE'", 2)
    try:
        version = store.get(ref)
    except MedModelsError as exc:
        _fail(str(exc), _code(exc))
    if stored:
        found = sheets.sheets(version.name, version.version)
        if not found:
            _fail(
                f"no stored sheet for {version.ref}; measure one with 'medmodels sheet "
                f"{version.ref}'",
                2,
            )
        reports = [_report(s, sheets, prices, None) for s in found]
        if as_json:
            click.echo(json.dumps(reports, indent=2))
        else:
            for s, r in zip(found, reports, strict=True):
                _print_text(s, r)
        return
    try:
        sheet = build_sheet(
            store,
            version.ref,
            settings=settings,
            runs=runs,
            warmup=warmup,
            progress=_progress(not as_json),
        )
    except MedModelsError as exc:
        _fail(str(exc), _code(exc))
    path = sheets.path_for(sheet.model, sheet.version, sheet.host.fingerprint)
    report = _report(sheet, sheets, prices, path)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_text(sheet, report)


@click.command("optimize", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
@click.option("--int8", "int8", is_flag=True, help="Publish MODEL@VERSION+int8 (static QDQ).")
@click.option("--fp16", "fp16", is_flag=True, help="Publish MODEL@VERSION+fp16.")
@click.option("--ort", "ort", is_flag=True, help="Convert to the ORT format (for phones).")
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Warm runs for the latency comparison.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def optimize_command(ref: str, int8: bool, fp16: bool, ort: bool, runs: int, as_json: bool) -> None:
    """Build optimised variants of a model version, measured against it.

    int8 and fp16 variants are published as new versions (VERSION+int8, VERSION+fp16) with
    derived_from, their size, latency and agreement with the parent in their model card. The
    ORT-format file is kept under MEDMODELS_HOME/variants/<model>/<version>/model.ort.
    """
    if not (int8 or fp16 or ort):
        _fail("choose at least one of --int8, --fp16, --ort", 2)
    settings = _settings()
    store = ModelStore(settings.store)
    results: list[dict[str, Any]] = []
    try:
        wanted: list[tuple[VariantKind, bool]] = [("int8", int8), ("fp16", fp16)]
        kinds = [kind for kind, on in wanted if on]
        for kind in kinds:
            result = build_variant(
                store,
                ref,
                kind,
                settings=settings,
                runs=runs,
                progress=_progress(not as_json),
            )
            results.append(result.to_dict())
            if not as_json:
                click.echo(
                    f"published {result.version.ref} (derived from {result.parent.version}): "
                    f"{result.size_bytes / 2**20:.2f} MB vs {result.parent_size_bytes / 2**20:.2f}"
                    f" MB; p50 {result.latency_p50_ms:.1f} ms vs "
                    f"{result.parent_latency_p50_ms:.1f} ms; {result.agreement.describe()}"
                )
                click.echo(f"    make its sheet: medmodels sheet {result.version.ref}")
        if ort:
            artifact = build_ort(
                store, ref, settings=settings, runs=runs, progress=_progress(not as_json)
            )
            results.append({"kind": "ort", **artifact.model_dump(mode="json")})
            if not as_json:
                click.echo(
                    f"ORT format of {artifact.model}@{artifact.version}: "
                    f"{artifact.size_bytes / 2**20:.2f} MB at {artifact.path}; p50 "
                    f"{artifact.latency_p50_ms:.1f} ms vs {artifact.parent_latency_p50_ms:.1f} ms"
                    f" (.onnx); {artifact.agreement.describe()}"
                )
    except MedModelsError as exc:
        if as_json and results:
            click.echo(json.dumps(results, indent=2))
        _fail(str(exc), _code(exc))
    if as_json:
        click.echo(json.dumps(results, indent=2))
