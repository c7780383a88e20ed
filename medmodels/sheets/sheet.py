"""The hardware and cost sheet of one model version on one host, and where sheets are kept.

A :class:`Sheet` holds facts only, each section labelled with its provenance: ``graph`` (read
from the ONNX file), ``host`` (read from the operating system), ``bench`` (measured in a child
process), ``agreement`` (measured, for variants), ``targets`` (ORT conversion measured, operator
coverage read). Costs and target verdicts are derived from a sheet when shown
(:func:`~medmodels.sheets.costs.cost_rows`, :func:`~medmodels.sheets.targets.target_verdicts`),
so an edited price list or a newly measured int8 variant is reflected without re-measuring.

Sheets are JSON files under ``<home>/sheets/<model>/<version>/<host-fingerprint>.json``, so
sheets from several hosts sit side by side; measuring again on the same host replaces its file.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from medmodels.config import Settings, load_settings
from medmodels.errors import ModelNotFoundError
from medmodels.scans.types import Scan
from medmodels.sheets import _pipeline
from medmodels.sheets.agreement import Agreement, measure_agreement
from medmodels.sheets.bench import Bench, Host, Progress, run_benchmark
from medmodels.sheets.costs import PriceList, cost_rows
from medmodels.sheets.errors import SheetError
from medmodels.sheets.profile import GraphProfile, profile_model
from medmodels.sheets.reference import Reference, choose_reference, load_reference, sample_path
from medmodels.sheets.targets import TargetFacts, TargetVerdict, target_facts, target_verdicts
from medmodels.store.manifest import atomic_write_text, is_model_name, is_version, sort_versions
from medmodels.store.store import ModelStore, ModelVersion

SHEETS_DIR = "sheets"
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{16}")

Provenance = Literal["read", "measured", "derived", "estimated"]


def _tool_version() -> str:
    try:
        return f"medmodels {metadata.version('medmodels')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "medmodels (not installed)"


class Sheet(BaseModel):
    """Facts about one model version measured on one host (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    kind: Literal["medmodels-sheet"] = "medmodels-sheet"
    model: str
    version: str
    title: str
    task: Literal["classification", "segmentation"]
    derived_from: str | None = None
    model_sha256: str
    manifest_sha256: str
    created: datetime
    tool: str
    flops_per_prediction: int | None = None
    model_calls: int = 1
    host: Host
    graph: GraphProfile
    bench: Bench
    agreement: Agreement | None = None
    targets: TargetFacts
    warnings: list[str] = []

    @field_validator("model")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_model_name(value):
            raise ValueError(f"not a model name: {value!r}")
        return value

    @field_validator("version", "derived_from")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not is_version(value):
            raise ValueError(f"not a SemVer version: {value!r}")
        return value

    @field_validator("model_sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA_RE.fullmatch(value):
            raise ValueError("expected 64 lowercase hex digits")
        return value

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.model}@{self.version}"

    @property
    def gflops(self) -> float | None:
        """GFLOPs per prediction, or None when nothing could be counted (a graph without
        Conv/Gemm/MatMul, or unknown shapes): its cost is then unknown, not zero."""
        if self.flops_per_prediction is None:
            return None
        if self.flops_per_prediction == 0 and (self.graph.not_counted or self.graph.uncountable):
            return None
        return self.flops_per_prediction / 1e9

    def to_json(self) -> str:
        """The sheet as pretty JSON (what is stored and what ``sheet import`` reads)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "sheet") -> Sheet:
        """Parse and validate; accepts a bare sheet or ``medmodels sheet --json`` output."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SheetError(f"{source}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("sheet"), dict):
            data = data["sheet"]
        if not isinstance(data, dict) or data.get("kind") != "medmodels-sheet":
            raise SheetError(
                f"{source}: not a MedModels sheet (expected a JSON object with "
                '"kind": "medmodels-sheet", as written by \'medmodels sheet\')'
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:8]
            ]
            raise SheetError(f"{source}: invalid sheet: " + "; ".join(lines)) from None

    def figures(self) -> list[Figure]:
        """Every headline figure with its unit, provenance and source, for tables."""
        g, b, h = self.graph, self.bench, self.host
        read = f"read from model.onnx ({g.source})"
        where = f"measured on {h.cpu_model} ({h.usable_cores} cores), {b.runs} warm runs"
        out = [
            Figure("file_mb", "Model file", g.file_bytes / 2**20, "MB", "read", read),
            Figure("parameters", "Parameters", g.parameters, "", "read", read),
            Figure("precision", "Weights precision", g.main_precision, "", "read", read),
            Figure("opset", "Opset", g.opset.get("ai.onnx"), "", "read", read),
            Figure("ir_version", "IR version", g.ir_version, "", "read", read),
            Figure("nodes", "Nodes", g.nodes, "", "read", read),
            Figure(
                "gflops",
                "GFLOPs per prediction",
                self.gflops,
                "GFLOP",
                "read",
                f"{g.flops_method}; input {g.flops_input_shape} × {self.model_calls} call(s); "
                f"not counted: {', '.join(g.not_counted) or 'none'}",
            ),
            Figure(
                "cold_ms",
                "Cold start (decode + session + first run)",
                b.cold.total_ms,
                "ms",
                "measured",
                f"first prediction in a fresh process on {h.cpu_model}",
            ),
            Figure("session_ms", "Session creation", b.cold.session_ms, "ms", "measured", where),
        ]
        for stage, stats in b.stages.items():
            label = stage.replace("_", "-")
            for pct in ("p50", "p95", "p99"):
                out.append(
                    Figure(
                        f"{stage}_{pct}_ms",
                        f"{label} {pct}",
                        getattr(stats, f"{pct}_ms"),
                        "ms",
                        "measured",
                        f"{where}; n={stats.n}, CV {stats.cv:.0%}",
                    )
                )
        for t in b.throughput:
            out.append(
                Figure(
                    f"throughput_{t.mode}",
                    f"Throughput, {t.mode} ({t.sessions} session(s) × {t.intra_op_threads} "
                    "thread(s))",
                    t.per_hour,
                    "predictions/h",
                    "measured",
                    f"{t.predictions} end-to-end predictions in {t.seconds:.1f} s on {h.cpu_model}",
                )
            )
        out += [
            Figure(
                "peak_mb",
                "Peak memory (one session)",
                b.memory.peak_mb,
                "MB",
                "measured",
                b.memory.method,
            ),
            Figure(
                "model_mb",
                "Working memory (peak minus idle process)",
                b.memory.model_mb,
                "MB",
                "measured",
                b.memory.method,
            ),
            Figure(
                "peak_all_mb",
                "Peak memory (parallel sessions)",
                b.memory.peak_all_mb,
                "MB",
                "measured",
                b.memory.method,
            ),
        ]
        if self.targets.mobile.ort_bytes is not None:
            out.append(
                Figure(
                    "ort_mb",
                    "ORT format file",
                    self.targets.mobile.ort_bytes / 2**20,
                    "MB",
                    "measured",
                    self.targets.mobile.source,
                )
            )
        a = self.agreement
        if a is not None:
            if a.task == "segmentation":
                out.append(
                    Figure(
                        "min_dice", f"Min Dice vs {a.parent}", a.min_dice, "", "measured", a.source
                    )
                )
                out.append(
                    Figure(
                        "label_agreement",
                        f"Voxel label agreement vs {a.parent}",
                        a.label_agreement,
                        "",
                        "measured",
                        a.source,
                    )
                )
            else:
                out.append(
                    Figure(
                        "top_label_agreement",
                        f"Top-label agreement vs {a.parent}",
                        a.top_label_agreement,
                        "",
                        "measured",
                        a.source,
                    )
                )
                out.append(
                    Figure(
                        "max_prob_diff",
                        f"Max probability difference vs {a.parent}",
                        a.max_probability_difference,
                        "",
                        "measured",
                        a.source,
                    )
                )
        return out

    def figure(self, key: str) -> Figure | None:
        """One figure of :meth:`figures` by key (``end_to_end_p50_ms``, ``file_mb``...)."""
        return next((f for f in self.figures() if f.key == key), None)


@dataclass(frozen=True)
class Figure:
    """One number (or short text) of a sheet, with where it came from."""

    key: str
    label: str
    value: float | int | str | None
    unit: str
    provenance: Provenance
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "provenance": self.provenance,
            "source": self.source,
        }


# --------------------------------------------------------------------------------------------
# Storage


class SheetStore:
    """Sheets on disk: ``<root>/<model>/<version>/<host-fingerprint>.json``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SheetStore({str(self.root)!r})"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SheetStore:
        """The sheets folder under ``Settings.home``."""
        settings = settings or load_settings()
        return cls(Path(settings.home) / SHEETS_DIR)

    def path_for(self, model: str, version: str, fingerprint: str) -> Path:
        """Where the sheet of ``model@version`` measured on ``fingerprint`` is kept."""
        if not is_model_name(model) or not is_version(version):
            raise SheetError(f"{model}@{version} is not a valid model reference")
        if not _FINGERPRINT_RE.fullmatch(fingerprint):
            raise SheetError(f"{fingerprint!r} is not a host fingerprint (16 hex digits)")
        return self.root / model / version / f"{fingerprint}.json"

    def save(self, sheet: Sheet) -> Path:
        """Write ``sheet`` (replacing the same host's earlier sheet of that version)."""
        path = self.path_for(sheet.model, sheet.version, sheet.host.fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, sheet.to_json())
        return path

    def load(self, path: str | os.PathLike[str]) -> Sheet:
        """Read one sheet file."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SheetError(f"{path}: cannot be read ({exc.strerror})") from None
        return Sheet.from_json(raw, source=str(path))

    def sheets(
        self,
        model: str | None = None,
        version: str | None = None,
        *,
        problems: list[str] | None = None,
    ) -> list[Sheet]:
        """Stored sheets (of ``model`` / ``version`` if given): by model, newest version first,
        then newest measurement first. Unreadable files are skipped and described in
        ``problems`` when a list is given."""
        found: list[Sheet] = []
        if not self.root.is_dir():
            return found
        models = [model] if model else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        for name in models:
            model_dir = self.root / name
            if not model_dir.is_dir():
                continue
            versions = (
                [version]
                if version
                else [p.name for p in model_dir.iterdir() if p.is_dir() and is_version(p.name)]
            )
            for v in sort_versions([v for v in versions if (model_dir / v).is_dir()]):
                batch = []
                for path in sorted((model_dir / v).glob("*.json")):
                    try:
                        batch.append(self.load(path))
                    except SheetError as exc:
                        if problems is not None:
                            problems.append(str(exc))
                found += sorted(batch, key=lambda s: s.created, reverse=True)
        return found

    def get(self, model: str, version: str, fingerprint: str | None = None) -> Sheet | None:
        """The sheet of ``model@version`` from host ``fingerprint`` (default: the newest)."""
        candidates = self.sheets(model, version)
        if fingerprint is not None:
            candidates = [s for s in candidates if s.host.fingerprint == fingerprint]
        return candidates[0] if candidates else None

    def variant_sheet(self, sheet: Sheet, build: str = "int8") -> Sheet | None:
        """The sheet of ``sheet``'s variant (e.g. ``1.0.0+int8``), same host preferred."""
        version = f"{sheet.version}+{build}"
        if "+" in sheet.version or not is_version(version):
            return None
        return self.get(sheet.model, version, sheet.host.fingerprint) or self.get(
            sheet.model, version
        )

    def verdicts(self, sheet: Sheet) -> list[TargetVerdict]:
        """Mobile/edge/web verdicts of ``sheet``, using its int8 variant's sheet if stored."""
        return target_verdicts(sheet, int8=self.variant_sheet(sheet, "int8"))

    def import_file(
        self, path: str | os.PathLike[str], *, store: ModelStore | None = None
    ) -> tuple[Sheet, Path]:
        """Validate a sheet measured elsewhere and store it beside the local ones.

        Refused (SheetError) when it is not a valid sheet, its host facts do not give its
        fingerprint, or ``store`` holds that version with a different model file; a version
        missing from ``store`` raises ModelNotFoundError listing the choices."""
        sheet = self.load(path)
        if sheet.host.fingerprint != sheet.host.expected_fingerprint():
            raise SheetError(
                f"{path}: its host fingerprint does not match its host facts; it was edited "
                "by hand. Measure again with 'medmodels sheet' on that host."
            )
        if store is not None:
            local = store.get(sheet.ref)
            if local.model_sha256 != sheet.model_sha256:
                raise SheetError(
                    f"{path}: measured on a different model file than {sheet.ref} in this store "
                    f"(SHA-256 {sheet.model_sha256[:12]}… vs {local.model_sha256[:12]}…); "
                    "measure the published version instead"
                )
        return sheet, self.save(sheet)


# --------------------------------------------------------------------------------------------
# Comparing sheets


def comparison_row(
    sheet: Sheet,
    prices: PriceList,
    *,
    sheets: SheetStore | None = None,
    hardware: str | None = None,
    utilisation: float = 1.0,
) -> dict[str, Any]:
    """One flat row for a side-by-side table of versions × hosts (and its bar charts).

    ``hardware`` is the price entry the cost column uses (default: the first ``own`` entry);
    ``sheets`` lets the edge verdict use the version's int8 sheet. Keys ending in ``_provenance``
    say where the neighbouring figure came from."""
    entry = (
        prices.get(hardware)
        if hardware
        else next((e for e in prices.hardware if e.kind == "own"), prices.hardware[0])
    )
    row = next(r for r in cost_rows(sheet, prices, utilisations=(utilisation,)) if r.entry == entry)
    verdicts = sheets.verdicts(sheet) if sheets is not None else target_verdicts(sheet)
    b = sheet.bench
    e2e = b.stages["end_to_end"]
    a = sheet.agreement
    return {
        "model": sheet.model,
        "version": sheet.version,
        "derived_from": sheet.derived_from,
        "host": sheet.host.fingerprint,
        "cpu": sheet.host.cpu_model,
        "cores": sheet.host.usable_cores,
        "measured_at": sheet.created,
        "size_mb": sheet.graph.file_bytes / 2**20,
        "parameters": sheet.graph.parameters,
        "precision": sheet.graph.main_precision,
        "gflops": sheet.gflops,
        "cold_start_ms": b.cold.total_ms,
        "p50_ms": e2e.p50_ms,
        "p95_ms": e2e.p95_ms,
        "throughput_per_h": b.best_throughput().per_hour,
        "peak_mb": b.memory.peak_mb,
        "working_mb": b.memory.model_mb,
        "usd_per_1000": row.cost_per_1000.get(utilisation),
        "usd_per_1000_hardware": entry.name,
        "usd_per_1000_provenance": row.provenance,
        "usd_per_1000_method": row.method,
        "agreement": None if a is None else a.describe(),
        "agreement_provenance": None if a is None else a.provenance,
        **{v.target: v.verdict for v in verdicts},
        **{f"{v.target}_reasons": list(v.reasons) for v in verdicts},
        "read_provenance": "read",
        "timing_provenance": "measured",
    }


# --------------------------------------------------------------------------------------------
# Making a sheet


def _call_shape(tensor_shape: tuple[int, ...], version: ModelVersion) -> tuple[list[int], int]:
    """The input shape of one session call and how many calls one prediction makes."""
    batch = version.manifest.input.shape[0]
    n = tensor_shape[0]
    if isinstance(batch, int) and batch != n:
        return [batch, *tensor_shape[1:]], math.ceil(n / batch)
    return list(tensor_shape), 1


def build_sheet(
    store: ModelStore,
    ref: str,
    *,
    settings: Settings | None = None,
    runs: int | None = None,
    warmup: int | None = None,
    reference: Reference | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> Sheet:
    """Read, measure and (by default) save the sheet of ``ref`` on this host.

    ``runs``/``warmup`` default to the settings; ``reference`` overrides the chosen reference
    input; ``progress(fraction, message)`` is called throughout (for a progress bar)."""
    settings = settings or load_settings()
    runs = settings.bench_runs if runs is None else runs
    warmup = settings.bench_warmup if warmup is None else warmup
    report: Callable[[float, str], None] = progress or (lambda fraction, message: None)
    version = store.get(ref)
    manifest = version.manifest
    report(0.0, "choosing the reference input")
    scan: Scan
    if reference is None:
        reference, scan = choose_reference(manifest, settings)
    else:
        scan = load_reference(reference, settings)
    warnings: list[str] = []
    if reference.note:
        warnings.append(f"reference input is synthetic: {reference.note}")

    report(0.02, "reading the graph")
    tensor = _pipeline.model_input(scan, manifest)
    call_shape, calls = _call_shape(tuple(tensor.shape), version)
    graph = profile_model(
        version.model_path,
        input_shape=call_shape,
        source=f"{version.ref} model.onnx (SHA-256 {version.model_sha256[:12]}…)",
    )
    flops_total = None if graph.flops is None else graph.flops * calls

    def bench_progress(fraction: float, message: str) -> None:
        report(0.05 + 0.75 * fraction, message)

    host, bench = run_benchmark(
        model_path=version.model_path,
        model_sha256=version.model_sha256,
        manifest_data=manifest.to_data(),
        reference=reference,
        reference_path=sample_path(reference, settings) if reference.kind == "sample" else None,
        runs=runs,
        warmup=warmup,
        cv_warn=settings.bench_cv_warn,
        timeout_s=settings.bench_timeout_s,
        progress=bench_progress,
    )
    warnings += bench.warnings

    agreement = None
    if manifest.derived_from:
        report(0.82, f"comparing with {manifest.derived_from}")
        try:
            parent = store.get(f"{manifest.name}@{manifest.derived_from}")
        except ModelNotFoundError:
            warnings.append(f"parent {manifest.derived_from} is not in the store; no agreement")
        else:
            agreement = measure_agreement(parent, version, scan, reference=reference.description)

    report(0.88, "checking mobile and web targets")
    targets = target_facts(version.model_path, fixed_shape=[1, *call_shape[1:]])
    sheet = Sheet(
        model=version.name,
        version=version.version,
        title=manifest.title,
        task=manifest.task,
        derived_from=manifest.derived_from,
        model_sha256=version.model_sha256,
        manifest_sha256=version.manifest_sha256,
        created=datetime.now(UTC),
        tool=_tool_version(),
        flops_per_prediction=flops_total,
        model_calls=calls,
        host=host,
        graph=graph,
        bench=bench,
        agreement=agreement,
        targets=targets,
        warnings=warnings,
    )
    if save:
        SheetStore.from_settings(settings).save(sheet)
    report(1.0, "done")
    return sheet
