"""Optimised variants of a model version: int8 (static QDQ), fp16 and the ORT format.

int8 and fp16 variants are published as new store versions with build metadata
(``1.0.0+int8``, ``1.0.0+fp16``) and ``derived_from`` set to the parent. Before publishing,
each variant is run through ``predict()`` on the parent's reference input and compared with the
parent; its manifest's card carries, as ``measured`` metrics, its file size, its end-to-end
latency (median, measured in a child process on this host, parent measured alongside) and its
agreement with the parent. The parent's own metrics are *not* copied: they were not measured on
the variant.

* **int8**: ``onnxruntime.quantization.quant_pre_process`` (``skip_symbolic_shape=True``), then
  ``quantize_static`` in QDQ format (uint8 activations, int8 per-channel weights, MinMax
  calibration) on the preprocessed slices of the reference scan. QuantizeLinear and
  DequantizeLinear are standard operators, so the store admits the result.
* **fp16**: ``onnxconverter_common.float16.convert_float_to_float16`` with ``keep_io_types`` (the
  manifest's float32 input stays valid) and its default op block list; any operator whose fp16
  node keeps onnxruntime from loading the model is added to the block list and the conversion
  repeated, and the blocked operators are written in the changelog.
* **ORT format** (for phones): converted with ``convert_onnx_models_to_ort`` and kept *beside*
  the store, at ``<home>/variants/<model>/<version>/model.ort`` with an ``ort.json`` record (size,
  SHA-256, agreement, latency). It is not a store version: the store admits ONNX graphs that the
  app can run and verify, and publishing has no way to add an extra file to a version folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict

from medmodels.config import Settings, load_settings
from medmodels.errors import VersionExistsError
from medmodels.scans.types import Scan
from medmodels.sheets import _pipeline
from medmodels.sheets.agreement import Agreement, measure_agreement
from medmodels.sheets.bench import Bench, Host, Progress, run_benchmark
from medmodels.sheets.errors import VariantError
from medmodels.sheets.reference import Reference, choose_reference, load_reference, sample_path
from medmodels.sheets.targets import convert_to_ort_format
from medmodels.store.admission import STANDARD_DOMAINS
from medmodels.store.manifest import MODEL_FILE, Manifest, SemVer
from medmodels.store.store import ModelStore, ModelVersion, sha256_file

VariantKind = Literal["int8", "fp16"]
VARIANTS_DIR = "variants"
CALIBRATION_SAMPLES = 32
CALIBRATION_BATCH = 4
LATENCY_RUNS = 10


@dataclass(frozen=True)
class VariantResult:
    """A published variant and what was measured about it before publishing."""

    kind: VariantKind
    version: ModelVersion
    parent: ModelVersion
    size_bytes: int
    parent_size_bytes: int
    latency_p50_ms: float
    parent_latency_p50_ms: float
    agreement: Agreement
    host: Host
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "kind": self.kind,
            "ref": self.version.ref,
            "derived_from": self.parent.version,
            "size_bytes": self.size_bytes,
            "parent_size_bytes": self.parent_size_bytes,
            "latency_p50_ms": self.latency_p50_ms,
            "parent_latency_p50_ms": self.parent_latency_p50_ms,
            "agreement": self.agreement.model_dump(mode="json"),
            "host": self.host.fingerprint,
            "notes": list(self.notes),
        }


class OrtArtifact(BaseModel):
    """A model version converted to the ORT format, kept beside the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provenance: str = "measured"
    model: str
    version: str
    path: str
    size_bytes: int
    sha256: str
    source_sha256: str
    onnxruntime_version: str
    optimization_style: str = "Fixed"
    target_platform: str = "arm"
    created: datetime
    agreement: Agreement
    latency_p50_ms: float
    parent_latency_p50_ms: float
    host: str


# --------------------------------------------------------------------------------------------
# Helpers


def _variant_version(parent: ModelVersion, build: str) -> str:
    parsed = SemVer.parse(parent.version)
    if parsed.build or parent.manifest.derived_from:
        raise VariantError(
            f"{parent.ref} is itself a variant; make variants from a plain version (e.g. "
            f"{parsed.major}.{parsed.minor}.{parsed.patch})"
        )
    return f"{parent.version}+{build}"


def _prune_opsets(model: onnx.ModelProto) -> None:
    """Drop opset imports no node uses (quantisation tools add several)."""
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _check_domains(model: onnx.ModelProto, kind: str) -> None:
    bad = sorted(
        {f"{n.domain}:{n.op_type}" for n in model.graph.node if n.domain not in STANDARD_DOMAINS}
    )
    if bad:
        raise VariantError(
            f"the {kind} conversion produced non-standard operators ({', '.join(bad)}), which "
            "the store does not admit"
        )


def _calibration_batches(tensor: np.ndarray, manifest: Manifest) -> Iterator[np.ndarray]:
    """Up to :data:`CALIBRATION_SAMPLES` evenly spaced samples of the model input, batched."""
    if manifest.input.dimensionality == "volume3d":
        yield tensor
        return
    n = tensor.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, CALIBRATION_SAMPLES)).round().astype(int))
    batch_dim = manifest.input.shape[0]
    size = batch_dim if isinstance(batch_dim, int) else CALIBRATION_BATCH
    for start in range(0, len(picks), size):
        chosen = picks[start : start + size]
        if len(chosen) < size and isinstance(batch_dim, int):
            break
        yield np.ascontiguousarray(tensor[chosen])


def _temp_version(parent: ModelVersion, manifest: Manifest, path: Path) -> ModelVersion:
    return ModelVersion(
        name=manifest.name,
        version=manifest.version,
        folder=path.parent,
        manifest=manifest,
        model_path=path,
        model_sha256=sha256_file(path),
        manifest_sha256="",
    )


def _reference(
    parent: ModelVersion, reference: Reference | None, settings: Settings
) -> tuple[Reference, Scan]:
    if reference is None:
        return choose_reference(parent.manifest, settings)
    return reference, load_reference(reference, settings)


def _latency(
    version: ModelVersion,
    reference: Reference,
    settings: Settings,
    runs: int,
) -> tuple[Host, Bench]:
    return run_benchmark(
        model_path=version.model_path,
        model_sha256=version.model_sha256,
        manifest_data=version.manifest.to_data(),
        reference=reference,
        reference_path=sample_path(reference, settings) if reference.kind == "sample" else None,
        runs=runs,
        warmup=2,
        throughput=False,
        cv_warn=settings.bench_cv_warn,
        timeout_s=settings.bench_timeout_s,
    )


# --------------------------------------------------------------------------------------------
# Conversions


def quantize_int8(source: Path, target: Path, manifest: Manifest, calibration: np.ndarray) -> str:
    """Static QDQ int8 of ``source`` into ``target``; returns the method for the changelog."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = list(_calibration_batches(calibration, manifest))
    if not batches:
        raise VariantError("no calibration samples could be taken from the reference input")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{manifest.input.name: b} for b in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    with tempfile.TemporaryDirectory(prefix="medmodels-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    model = onnx.load(str(target))
    _prune_opsets(model)
    _check_domains(model, "int8")
    target.write_bytes(model.SerializeToString())
    samples = sum(b.shape[0] for b in batches)
    return (
        f"static int8 quantisation (QDQ, uint8 activations, per-channel int8 weights, MinMax "
        f"calibration on {samples} preprocessed sample(s) of the reference input) with "
        f"onnxruntime {ort.__version__} quantize_static after quant_pre_process"
    )


def _load_error(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> str | None:
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        session.run(None, feed)
    except Exception as exc:
        return " ".join(str(exc).split())
    return None


def convert_fp16(
    source: Path, target: Path, manifest: Manifest, sample: np.ndarray, *, max_tries: int = 12
) -> str:
    """fp16 of ``source`` into ``target`` (float32 I/O kept), blocking operators that keep
    onnxruntime from loading or running it; returns the method for the changelog."""
    import re

    import onnxconverter_common
    from onnxconverter_common import float16

    original = onnx.load(str(source))
    block = list(float16.DEFAULT_OP_BLOCK_LIST)
    added: list[str] = []
    feed = {manifest.input.name: sample}
    for _ in range(max_tries):
        model = float16.convert_float_to_float16(original, keep_io_types=True, op_block_list=block)
        error = _load_error(model, feed)
        if error is None:
            _prune_opsets(model)
            _check_domains(model, "fp16")
            target.write_bytes(model.SerializeToString())
            extra = f"; also blocked: {', '.join(added)}" if added else ""
            return (
                f"float16 weights and activations with onnxconverter-common "
                f"{onnxconverter_common.__version__} convert_float_to_float16 (float32 inputs "
                f"and outputs kept, default op block list{extra})"
            )
        match = re.search(r"implementation for (\w+)\(", error) or re.search(
            r"\bop(?:erator)? '?(\w+)'?", error
        )
        op = match.group(1) if match else None
        if op is None or op in block:
            raise VariantError(f"the fp16 model does not load in onnxruntime: {error[:300]}")
        block.append(op)
        added.append(op)
    raise VariantError(f"fp16 conversion still fails after blocking {', '.join(added)}")


# --------------------------------------------------------------------------------------------
# Building and publishing


def _metrics(
    kind: str,
    parent: ModelVersion,
    size: int,
    latency: float,
    parent_latency: float,
    agreement: Agreement,
    host: Host,
    runs: int,
) -> list[dict[str, Any]]:
    ref = agreement.reference
    where = (
        f"measured by medmodels optimize on {host.cpu_model} ({host.usable_cores} cores, "
        f"onnxruntime {host.onnxruntime_version}, host {host.fingerprint})"
    )
    metrics: list[dict[str, Any]] = [
        {
            "name": "model size (MB)",
            "value": round(size / 2**20, 6),
            "dataset": "model.onnx",
            "note": f"measured: file size; {parent.version} is "
            f"{parent.model_path.stat().st_size / 2**20:.6f} MB",
        },
        {
            "name": "end-to-end latency p50 (ms)",
            "value": round(latency, 3),
            "dataset": ref,
            "note": f"{where}; median of {runs} warm runs in a child process; "
            f"{parent.version} measured alongside: {parent_latency:.3f} ms",
        },
    ]
    vs = f"vs {parent.version}"
    if agreement.task == "segmentation":
        metrics.append(
            {
                "name": f"voxel label agreement {vs}",
                "value": round(agreement.label_agreement or 0.0, 6),
                "dataset": ref,
                "note": f"{where}; fraction of voxels given the same label by both",
            }
        )
        for label, value in (agreement.dice or {}).items():
            metrics.append(
                {
                    "name": f"Dice {label} {vs}",
                    "value": round(value, 6),
                    "dataset": ref,
                    "note": f"{where}; the parent's mask taken as reference",
                }
            )
    else:
        metrics.append(
            {
                "name": f"top-label agreement {vs}",
                "value": agreement.top_label_agreement,
                "dataset": ref,
                "note": f"{where}; 1 = same top label",
            }
        )
        metrics.append(
            {
                "name": f"max probability difference {vs}",
                "value": round(agreement.max_probability_difference or 0.0, 6),
                "dataset": ref,
                "note": f"{where}; largest absolute difference over the labels",
            }
        )
    return metrics


def variant_manifest(
    parent: ModelVersion, kind: str, method: str, metrics: list[dict[str, Any]]
) -> Manifest:
    """The manifest of ``parent``'s ``kind`` variant: same contract, its own card metrics."""
    data = parent.manifest.to_data()
    data.pop("files", None)
    data["version"] = _variant_version(parent, kind)
    data["derived_from"] = parent.version
    data["title"] = f"{parent.manifest.title} ({kind})"
    data["created"] = date.today().isoformat()
    data["changelog"] = f"{kind} variant of {parent.version}: {method}."
    card = dict(data["card"])
    card["metrics"] = metrics
    card["warnings"] = [
        *card.get("warnings", []),
        f"Optimised {kind} variant: its agreement with {parent.version} was measured on one "
        "reference input only, and the parent's performance metrics were not re-measured on "
        "it. Validate it before relying on it.",
    ]
    data["card"] = card
    return Manifest.from_dict(data, source=f"{parent.name}@{data['version']} manifest")


def build_variant(
    store: ModelStore,
    ref: str,
    kind: VariantKind,
    *,
    settings: Settings | None = None,
    runs: int = LATENCY_RUNS,
    reference: Reference | None = None,
    progress: Progress | None = None,
) -> VariantResult:
    """Build ``ref``'s ``kind`` variant, measure it against the parent and publish it.

    ``reference`` overrides the parent's reference input (calibration and comparison)."""
    settings = settings or load_settings()
    report: Callable[[float, str], None] = progress or (lambda fraction, message: None)
    parent = store.get(ref)
    version = _variant_version(parent, kind)
    if version in store.versions(parent.name):
        raise VersionExistsError(
            f"{parent.name}@{version} is already published; versions are immutable (make its "
            f"sheet with 'medmodels sheet {parent.name}@{version}')"
        )
    report(0.0, "choosing the reference input")
    reference, scan = _reference(parent, reference, settings)
    tensor = _pipeline.model_input(scan, parent.manifest)
    with tempfile.TemporaryDirectory(prefix=f"medmodels-{kind}-") as tmp:
        path = Path(tmp) / MODEL_FILE
        report(0.05, f"converting to {kind}")
        if kind == "int8":
            method = quantize_int8(parent.model_path, path, parent.manifest, tensor)
        elif kind == "fp16":
            sample = np.ascontiguousarray(tensor[:1])
            method = convert_fp16(parent.model_path, path, parent.manifest, sample)
        else:  # pragma: no cover - guarded by the type
            raise VariantError(f"unknown variant kind {kind!r}; choose int8 or fp16")
        draft = variant_manifest(parent, kind, method, [])
        candidate = _temp_version(parent, draft, path)
        report(0.3, "comparing with the parent")
        agreement = measure_agreement(parent, candidate, scan, reference=reference.description)
        report(0.4, "measuring the parent's latency")
        host, parent_bench = _latency(parent, reference, settings, runs)
        report(0.65, f"measuring the {kind} latency")
        _, bench = _latency(candidate, reference, settings, runs)
        size = path.stat().st_size
        latency = bench.stages["end_to_end"].p50_ms
        parent_latency = parent_bench.stages["end_to_end"].p50_ms
        metrics = _metrics(kind, parent, size, latency, parent_latency, agreement, host, runs)
        manifest = variant_manifest(parent, kind, method, metrics)
        report(0.9, "publishing")
        published = store.publish(path, manifest)
    report(1.0, "done")
    notes = [method]
    if reference.note:
        notes.append(f"reference input is synthetic: {reference.note}")
    return VariantResult(
        kind=kind,
        version=published,
        parent=parent,
        size_bytes=size,
        parent_size_bytes=parent.model_path.stat().st_size,
        latency_p50_ms=latency,
        parent_latency_p50_ms=parent_latency,
        agreement=agreement,
        host=host,
        notes=tuple(notes),
    )


def ort_folder(settings: Settings, name: str, version: str) -> Path:
    """Where the ORT-format file of ``name@version`` is kept."""
    return Path(settings.home) / VARIANTS_DIR / name / version


def load_ort_artifact(settings: Settings, name: str, version: str) -> OrtArtifact | None:
    """The stored ORT-format record of ``name@version``, if any."""
    record = ort_folder(settings, name, version) / "ort.json"
    if not record.is_file():
        return None
    return OrtArtifact.model_validate_json(record.read_text(encoding="utf-8"))


def build_ort(
    store: ModelStore,
    ref: str,
    *,
    settings: Settings | None = None,
    runs: int = LATENCY_RUNS,
    reference: Reference | None = None,
    progress: Progress | None = None,
) -> OrtArtifact:
    """Convert ``ref`` to the ORT format, check it loads and agrees with the ONNX model on the
    reference input, measure its latency, and keep it under ``<home>/variants``."""
    import onnxruntime as ort

    settings = settings or load_settings()
    report: Callable[[float, str], None] = progress or (lambda fraction, message: None)
    parent = store.get(ref)
    report(0.0, "converting to the ORT format")
    folder = ort_folder(settings, parent.name, parent.version)
    with tempfile.TemporaryDirectory(prefix="medmodels-ort-") as tmp:
        try:
            converted = convert_to_ort_format(parent.model_path, Path(tmp))
        except RuntimeError as exc:
            raise VariantError(
                f"{parent.ref} cannot be converted to the ORT format: {exc}"
            ) from None
        reference, scan = _reference(parent, reference, settings)
        candidate = _temp_version(parent, parent.manifest, converted)
        report(0.3, "comparing with the ONNX model")
        try:
            agreement = measure_agreement(parent, candidate, scan, reference=reference.description)
        except Exception as exc:
            raise VariantError(f"the .ort file of {parent.ref} does not run: {exc}") from None
        report(0.5, "measuring latency")
        host, parent_bench = _latency(parent, reference, settings, runs)
        _, bench = _latency(candidate, reference, settings, runs)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "model.ort"
        shutil.copyfile(converted, target)
    artifact = OrtArtifact(
        model=parent.name,
        version=parent.version,
        path=str(target),
        size_bytes=target.stat().st_size,
        sha256=sha256_file(target),
        source_sha256=parent.model_sha256,
        onnxruntime_version=str(ort.__version__),
        created=datetime.now(UTC),
        agreement=agreement,
        latency_p50_ms=bench.stages["end_to_end"].p50_ms,
        parent_latency_p50_ms=parent_bench.stages["end_to_end"].p50_ms,
        host=host.fingerprint,
    )
    (folder / "ort.json").write_text(
        json.dumps(artifact.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
    )
    report(1.0, "done")
    return artifact
