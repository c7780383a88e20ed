"""Settings: every knob MedModels has, declared once with its default and help text.

Each field of :class:`Settings` is read from the environment variable ``MEDMODELS_<NAME>``
(for example ``MEDMODELS_MAX_UPLOAD_MB=200``). The README's settings table lists every one of
them; a test checks it does. ``medmodels settings`` prints the table.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from medmodels.errors import ConfigError

_MB = 1024 * 1024


class Settings(BaseSettings):
    """Process-wide settings, read from ``MEDMODELS_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MEDMODELS_", frozen=True, extra="ignore")

    store: Path = Field(
        Path("model_store"),
        description="Folder of the model store (one sub-folder per model, one per version).",
    )
    home: Path = Field(
        Path(".medmodels"),
        description="Folder for the prediction database, artifacts, secrets and sheets.",
    )
    max_upload_mb: int = Field(
        1024, gt=0, description="Largest upload accepted, in MiB, summed over all its files."
    )
    max_files: int = Field(
        5000, gt=0, description="Most files accepted in one upload (loose files plus zip entries)."
    )
    max_zip_entries: int = Field(
        5000, gt=0, description="Most entries one zip archive may list before it is refused."
    )
    max_decompressed_mb: int = Field(
        2048,
        gt=0,
        description="Most bytes, in MiB, that zip, gzip and deflate content may inflate to "
        "(counted while streaming, so a bomb stops early).",
    )
    max_compression_ratio: int = Field(
        200,
        gt=1,
        description="Largest inflated-to-compressed size ratio of one archive entry or "
        "gzip/deflate stream; above it the entry is treated as a bomb.",
    )
    max_image_mb: int = Field(
        2048,
        gt=0,
        description="Most bytes, in MiB, that one image's decoded pixels may take "
        "(rows × columns × frames × bytes per pixel), checked before decoding.",
    )
    decode_workers: int = Field(
        1, ge=1, le=16, description="Worker processes that read and decode uploads for the app."
    )
    decode_memory_mb: int = Field(
        6144,
        ge=256,
        description="Address-space limit, in MiB, of each decode worker; a file that needs more "
        "is refused instead of exhausting the machine.",
    )
    decode_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a decode worker may spend on one upload before it is "
        "stopped and replaced.",
    )
    max_slice_gap_ratio: float = Field(
        0.01,
        ge=0.0,
        lt=1.0,
        description="Tolerance for uneven slice spacing in a series, as a fraction of the "
        "median spacing (0.01 = 1 %, as highdicom uses).",
    )

    log_predictions: bool = Field(
        True,
        description="Record every prediction (and every rejected input) in the history database "
        "under the home folder; `medmodels predict --no-log` skips one.",
    )
    save_artifacts: bool = Field(
        True,
        description="With each logged prediction, save de-identified artifacts under "
        "`<home>/artifacts/<id>/`: the key slice as PNG with and without the overlay, and the "
        "label volume as `.npz`.",
    )
    artifact_retention_days: int = Field(
        90,
        ge=0,
        description="Days to keep a prediction's artifacts before they are removed (the "
        "history row stays); 0 keeps them until the prediction is deleted.",
    )

    sample_data: Path = Field(
        Path("sample_data"),
        description="Folder of the sample scans; hardware sheets use them as reference inputs "
        "(CT: ct-chest-phantom, MR: mni152-t1-2mm.nii.gz).",
    )
    prices: Path | None = Field(
        None,
        description="TOML price list for cost figures (same format as "
        "medmodels/sheets/prices.toml); unset = the dated list shipped with MedModels.",
    )
    bench_runs: int = Field(
        20, ge=1, description="Warm runs per measurement in a hardware sheet (after warm-up)."
    )
    bench_warmup: int = Field(
        3, ge=0, description="Unrecorded warm-up runs before a sheet's warm measurements."
    )
    bench_timeout_s: int = Field(
        1800, gt=0, description="Longest a sheet's benchmark child process may run, in seconds."
    )
    bench_cv_warn: float = Field(
        0.15,
        gt=0,
        description="A sheet warns when warm latency's coefficient of variation (standard "
        "deviation / mean) exceeds this.",
    )

    share_secret: SecretStr | None = Field(
        None,
        description="Secret that signs share links; unset, one is generated into the home folder "
        "(mode 0600). Set the same value on every server that must accept the same links.",
    )
    share_days: float = Field(
        7.0, gt=0, description="Days a new share link stays valid (it can be revoked earlier)."
    )

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return self.max_upload_mb * _MB

    @property
    def max_decompressed_bytes(self) -> int:
        """``max_decompressed_mb`` in bytes."""
        return self.max_decompressed_mb * _MB

    @property
    def max_image_bytes(self) -> int:
        """``max_image_mb`` in bytes."""
        return self.max_image_mb * _MB


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"MEDMODELS_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, applying ``overrides`` on top.

    Raises :class:`ConfigError` naming the variable and what it expects when a value is unusable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f"{env_name(field)} is not usable: {first['msg']}. "
            f"Fix or unset it (see the settings table in README.md)."
        ) from None


def settings_table() -> str:
    """The settings as a Markdown table (variable, default, meaning), for the README and CLI."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | `{field.default}` | {field.description} |")
    return "\n".join(rows)
