"""The ``medmodels`` command line. Each command calls the library and prints what it returns."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from medmodels.config import Settings, load_settings, settings_table
from medmodels.errors import ConfigError
from medmodels.scans import Scan, load_scans


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
