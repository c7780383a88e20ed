"""The ``medmodels`` command line. Each command calls the library and prints what it returns."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medmodels")
def main() -> None:
    """MedModels: try versioned medical imaging models on DICOM/NIfTI scans.

    Research use only — not for diagnosis.
    """
