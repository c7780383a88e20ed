"""Will the model run on a phone, an edge box or in a web page? Facts, then verdicts with reasons.

Facts are gathered when a sheet is made and stored in it:

* **mobile**: the model is converted to the ORT format with
  ``onnxruntime.tools.convert_onnx_models_to_ort`` (in a child process, into a temporary
  folder; ``--target_platform arm``) and the result loaded; NNAPI (Android) and CoreML (iOS)
  coverage comes from onnxruntime's mobile usability checker
  (``onnxruntime.tools.mobile_helpers.usability_checker``), called in-process, on the graph as
  it is and with its input fixed to the reference input's shape (batch 1);
* **web**: every node's operator is looked up in the CPU execution provider's kernel registry of
  the installed onnxruntime (``get_all_opkernel_def``) at the model's opset.
  onnxruntime-web's WebAssembly backend compiles those same CPU kernels, so an operator missing
  there is missing in the browser too; the converse holds only for an onnxruntime-web of the
  same version (an older one may lack newer opsets), and type constraints are not checked.

Verdicts (``yes``, ``maybe``, ``no``, ``unknown``) are derived from the facts, the measured
benchmark and, for the edge, the int8 variant's sheet. The budgets below are rules of thumb,
stated next to each verdict so a reader can disagree with them.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import onnx
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from medmodels.sheets.sheet import Sheet

_MB = 1024 * 1024
_GB = 1024 * _MB

MOBILE_BUNDLE_MB = 50
"""A model up to this size can ship inside a phone app."""
MOBILE_DOWNLOAD_MB = 150
"""Up to this size it needs an on-demand download after install; beyond, it is impractical."""
MOBILE_RAM_MB = 1024
"""Working memory (peak minus an idle process) a phone app can reasonably give one model."""
EDGE_RAM_MB = 2048
"""Working memory on an edge box with 4 GB of RAM (half for the model, half for the rest)."""
EDGE_MIN_DICE = (0.95, 0.90)
"""Segmentation: int8 Dice vs fp32 for a ``yes`` and for a ``maybe``."""
EDGE_MAX_PROB_DIFF = (0.05, 0.10)
"""Classification: largest probability difference vs fp32 for a ``yes`` and for a ``maybe``."""
WEB_DOWNLOAD_MB = (50, 200)
"""A page download that is comfortable, and the most that is practical with caching."""
WEB_FILE_LIMIT_MB = 2048
"""Largest single ONNX file a browser session can load (protobuf's 2 GiB message limit)."""
WEB_MEMORY_MB = 2048
"""WebAssembly heap budget: wasm32 addresses at most 4 GiB and browsers often allow less."""

VerdictValue = Literal["yes", "maybe", "no", "unknown"]
Target = Literal["mobile", "edge", "web"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EpCoverage(_Model):
    """How much of the graph an accelerator execution provider could take (usability checker)."""

    ep: str
    nodes: int
    supported_nodes: int
    partitions: int
    unsupported_ops: list[str]
    suitability: str
    fixed_shape_supported_nodes: int | None = None
    fixed_shape_partitions: int | None = None
    fixed_shape_suitability: str | None = None

    def describe(self) -> str:
        """``NNAPI: 12/14 nodes in 1 partition (YES)``."""
        text = (
            f"{self.ep}: {self.supported_nodes}/{self.nodes} nodes in {self.partitions} "
            f"partition(s) ({self.suitability})"
        )
        if self.fixed_shape_suitability is not None:
            text += (
                f"; with the input fixed to the reference shape {self.fixed_shape_supported_nodes}"
                f"/{self.nodes} in {self.fixed_shape_partitions} ({self.fixed_shape_suitability})"
            )
        if self.unsupported_ops:
            text += f"; unsupported: {', '.join(self.unsupported_ops)}"
        return text


class MobileFacts(_Model):
    """ORT-format conversion and accelerator coverage (provenance: ``measured``)."""

    provenance: str = "measured"
    source: str
    ort_converted: bool
    ort_bytes: int | None = None
    ort_loads: bool = False
    ort_error: str | None = None
    dynamic_inputs: list[str] = []
    coverage: list[EpCoverage] = []


class WebFacts(_Model):
    """Operator support of onnxruntime-web's WebAssembly backend (provenance: ``read``)."""

    provenance: str = "read"
    source: str
    method: str
    opset: int
    checked_ops: list[str]
    unsupported_ops: list[str]
    expanded_ops: list[str] = []


class TargetFacts(_Model):
    """What the verdicts are made from, stored in the sheet."""

    mobile: MobileFacts
    web: WebFacts


@dataclass(frozen=True)
class TargetVerdict:
    """Whether a model suits one target, and every reason (provenance: ``derived``)."""

    target: Target
    verdict: VerdictValue
    reasons: tuple[str, ...]
    provenance: str = "derived"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "target": self.target,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "provenance": self.provenance,
        }


_ORDER: dict[VerdictValue, int] = {"no": 0, "unknown": 1, "maybe": 2, "yes": 3}


def _worst(*values: VerdictValue) -> VerdictValue:
    return min(values, key=lambda v: _ORDER[v])


# --------------------------------------------------------------------------------------------
# Facts: mobile


def convert_to_ort_format(model_path: Path, out_dir: Path, *, timeout_s: float = 600) -> Path:
    """Convert ``model_path`` to ``out_dir/<stem>.ort`` for ARM phones; raises RuntimeError
    with the converter's message on failure. The converter runs in a child process: it prints
    to stdout and leaves files open."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medmodels-ort-") as tmp:
        src = Path(tmp) / "model.onnx"
        src.write_bytes(Path(model_path).read_bytes())
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime.tools.convert_onnx_models_to_ort",
                str(src),
                "--output_dir",
                str(out_dir),
                "--optimization_style",
                "Fixed",
                "--target_platform",
                "arm",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    result = out_dir / "model.ort"
    (out_dir / "model.required_operators.config").unlink(missing_ok=True)
    if proc.returncode != 0 or not result.is_file():
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise RuntimeError(" ".join(lines[-3:])[:500] or f"exit code {proc.returncode}")
    return result


def _ort_loads(path: Path) -> str | None:
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return " ".join(str(exc).split())[:300]
    return None


def _with_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _coverage(
    model_path: Path, fixed_shape: list[int] | None
) -> tuple[list[EpCoverage], list[str]]:
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    quiet = logging.getLogger("medmodels.sheets.usability")
    quiet.setLevel(logging.ERROR)
    model = onnx.load(str(model_path))
    dynamic = _with_shapes(model)
    dynamic_inputs, _ = uc.check_shapes(dynamic.graph, quiet)
    fixed = None
    if fixed_shape is not None and dynamic_inputs:
        make_input_shape_fixed(model.graph, dynamic_inputs[0].name, fixed_shape)
        fixed = _with_shapes(model)

    checks = {
        "NNAPI": lambda m, f: uc.check_nnapi_partitions(m, f),
        "CoreML MLProgram": lambda m, f: uc.check_coreml_partitions(
            m, f, "coreml_supported_mlprogram_ops.md"
        ),
        "CoreML NeuralNetwork": lambda m, f: uc.check_coreml_partitions(
            m, f, "coreml_supported_neuralnetwork_ops.md"
        ),
    }
    out: list[EpCoverage] = []
    for ep, check in checks.items():
        info = check(dynamic, True)
        extra: dict[str, object] = {}
        if fixed is not None:
            fixed_info = check(fixed, True)
            extra = {
                "fixed_shape_supported_nodes": fixed_info.num_supported_nodes,
                "fixed_shape_partitions": fixed_info.num_partitions,
                "fixed_shape_suitability": fixed_info.suitability().name,
            }
        out.append(
            EpCoverage(
                ep=ep,
                nodes=info.num_nodes,
                supported_nodes=info.num_supported_nodes,
                partitions=info.num_partitions,
                unsupported_ops=sorted(info.unsupported_ops),
                suitability=info.suitability().name,
                **extra,  # type: ignore[arg-type]
            )
        )
    return out, [i.name for i in dynamic_inputs]


def mobile_facts(model_path: Path, *, fixed_shape: list[int] | None = None) -> MobileFacts:
    """Convert to the ORT format in a temporary folder, load it, and check NNAPI/CoreML."""
    import onnxruntime as ort

    source = (
        f"onnxruntime {ort.__version__}: convert_onnx_models_to_ort (Fixed, arm) in a temporary "
        "folder; mobile_helpers.usability_checker"
    )
    converted, size, loads, error = False, None, False, None
    with tempfile.TemporaryDirectory(prefix="medmodels-mobile-") as tmp:
        try:
            ort_path = convert_to_ort_format(model_path, Path(tmp))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            error = f"conversion to the ORT format failed: {exc}"
        else:
            converted, size = True, ort_path.stat().st_size
            load_error = _ort_loads(ort_path)
            loads = load_error is None
            if load_error:
                error = f"the .ort file does not load: {load_error}"
    try:
        coverage, dynamic = _coverage(model_path, fixed_shape)
    except Exception as exc:  # the checker is best effort; its failure is a fact to report
        coverage, dynamic = [], []
        error = (error + "; " if error else "") + f"usability checker failed: {exc}"
    return MobileFacts(
        source=source,
        ort_converted=converted,
        ort_bytes=size,
        ort_loads=loads,
        ort_error=error,
        dynamic_inputs=dynamic,
        coverage=coverage,
    )


# --------------------------------------------------------------------------------------------
# Facts: web


@functools.lru_cache(maxsize=1)
def _cpu_kernels() -> dict[tuple[str, str], list[tuple[int, int]]]:
    from onnxruntime.capi import _pybind_state as C

    kernels: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for kernel in C.get_all_opkernel_def():
        if kernel.provider != "CPUExecutionProvider":
            continue
        domain = kernel.domain or "ai.onnx"
        start, end = kernel.version_range
        kernels.setdefault((domain, kernel.op_name), []).append((int(start), int(end)))
    return kernels


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _nodes(sub)


# Handled by onnxruntime itself when a graph is loaded, without a kernel.
_LOAD_TIME_OPS = {("ai.onnx", "Constant")}


def web_facts(model_path: Path) -> WebFacts:
    """Which of the model's operators have no CPU kernel (hence no wasm kernel) at its opset.

    ``Constant`` needs no kernel (onnxruntime turns it into an initializer when loading), and an
    operator whose ONNX schema defines a function body runs as that body when no kernel exists
    (listed in ``expanded_ops``)."""
    import onnxruntime as ort

    model = onnx.load(str(model_path), load_external_data=False)
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    kernels = _cpu_kernels()
    checked: set[str] = set()
    unsupported: set[str] = set()
    expanded: set[str] = set()
    for node in _nodes(model.graph):
        domain = node.domain or "ai.onnx"
        label = node.op_type if domain == "ai.onnx" else f"{domain}:{node.op_type}"
        if label in checked:
            continue
        checked.add(label)
        if (domain, node.op_type) in _LOAD_TIME_OPS:
            continue
        opset = opsets.get(domain, 1)
        try:
            schema = onnx.defs.get_schema(
                node.op_type, opset, "" if domain == "ai.onnx" else domain
            )
        except onnx.defs.SchemaError:
            unsupported.add(f"{label} (unknown to onnx {onnx.__version__})")
            continue
        since = schema.since_version
        ranges = kernels.get((domain, node.op_type), [])
        if any(start <= since <= end for start, end in ranges):
            continue
        if getattr(schema, "has_function", False) or getattr(
            schema, "has_context_dependent_function", False
        ):
            expanded.add(f"{label}-{since}")
        else:
            unsupported.add(f"{label}-{since}")
    return WebFacts(
        source=f"CPUExecutionProvider kernel registry of onnxruntime {ort.__version__}",
        method=(
            "each operator's schema version at the model's opset looked up in the CPU kernels "
            f"of onnxruntime {ort.__version__} (Constant needs none; an operator with an ONNX "
            "function body runs as that body); onnxruntime-web's WebAssembly backend is built "
            "from the same CPU kernels (type constraints not checked)"
        ),
        opset=opsets.get("ai.onnx", 0),
        checked_ops=sorted(checked),
        unsupported_ops=sorted(unsupported),
        expanded_ops=sorted(expanded),
    )


def target_facts(model_path: Path, *, fixed_shape: list[int] | None = None) -> TargetFacts:
    """Mobile and web facts for one model file."""
    return TargetFacts(
        mobile=mobile_facts(model_path, fixed_shape=fixed_shape), web=web_facts(model_path)
    )


# --------------------------------------------------------------------------------------------
# Verdicts


def _mb(n: float) -> str:
    return f"{n / _MB:.1f} MB" if n >= _MB / 10 else f"{n / 1024:.1f} KB"


def mobile_verdict(sheet: Sheet) -> TargetVerdict:
    """Phone: the ORT format converts and loads, size and working memory fit, and how much
    NNAPI/CoreML could accelerate."""
    facts = sheet.targets.mobile
    reasons: list[str] = []
    verdict: VerdictValue = "yes"
    if not facts.ort_converted or not facts.ort_loads:
        return TargetVerdict("mobile", "no", (facts.ort_error or "ORT conversion failed",))
    size = facts.ort_bytes or sheet.graph.file_bytes
    reasons.append(f"converts to the ORT format and loads ({_mb(size)} .ort)")
    if size > MOBILE_DOWNLOAD_MB * _MB:
        verdict = "no"
        reasons.append(
            f"{_mb(size)} is more than a phone app can practically download "
            f"(budget {MOBILE_DOWNLOAD_MB} MB); try the int8 variant"
        )
    elif size > MOBILE_BUNDLE_MB * _MB:
        verdict = _worst(verdict, "maybe")
        reasons.append(
            f"{_mb(size)} is too big to bundle in an app (budget {MOBILE_BUNDLE_MB} MB); "
            "download it on demand"
        )
    else:
        reasons.append(f"small enough to bundle in an app (budget {MOBILE_BUNDLE_MB} MB)")
    working = sheet.bench.memory.model_mb
    if working > MOBILE_RAM_MB:
        verdict = _worst(verdict, "maybe")
        reasons.append(
            f"needs about {working:.0f} MB of working memory on the measured host "
            f"(phone budget {MOBILE_RAM_MB} MB); process fewer slices at once"
        )
    else:
        reasons.append(
            f"needs about {working:.0f} MB of working memory on the measured host "
            f"(phone budget {MOBILE_RAM_MB} MB)"
        )
    if facts.coverage:
        best = max(
            (c.fixed_shape_suitability or c.suitability for c in facts.coverage),
            key=lambda v: {"NO": 0, "MAYBE": 1, "YES": 2}.get(v, 0),
        )
        if best == "NO":
            reasons.append(
                "runs on the phone's CPU (onnxruntime CPU execution provider); NNAPI and CoreML "
                "would not accelerate it as it is"
            )
        else:
            reasons.append(
                "NNAPI or CoreML may accelerate it (usability checker: "
                f"{best}); compare them with the CPU on the device"
            )
    for cov in facts.coverage:
        reasons.append(cov.describe())
    if not facts.coverage:
        reasons.append("NNAPI/CoreML coverage unknown (the usability checker did not run)")
    reasons.append(
        "the phone's CPU speed was not measured; latency on a phone is unknown until measured "
        "there and imported"
    )
    return TargetVerdict("mobile", verdict, tuple(reasons))


def edge_verdict(sheet: Sheet, int8: Sheet | None = None) -> TargetVerdict:
    """Edge box: the int8 variant's size, latency and agreement with fp32, and RAM needed."""
    own_int8 = "int8" in sheet.version.partition("+")[2].split(".")
    candidate = sheet if own_int8 else int8
    reasons: list[str] = []
    if candidate is None:
        working = sheet.bench.memory.model_mb
        fits = working <= EDGE_RAM_MB
        reasons.append(
            "no int8 variant measured yet: build one with 'medmodels optimize "
            f"{sheet.model}@{sheet.version} --int8' and make its sheet"
        )
        reasons.append(
            f"the fp32 model needs about {working:.0f} MB of working memory "
            f"(edge budget {EDGE_RAM_MB} MB)"
        )
        return TargetVerdict("edge", "maybe" if fits else "no", tuple(reasons))
    verdict: VerdictValue = "yes"
    size = candidate.graph.file_bytes
    reasons.append(
        f"int8 variant {candidate.version}: {_mb(size)}"
        + ("" if own_int8 else f" vs {_mb(sheet.graph.file_bytes)} fp32")
    )
    p50 = candidate.bench.stages["end_to_end"].p50_ms
    if own_int8:
        reasons.append(f"end-to-end p50 {p50:.0f} ms on the measured host")
    else:
        base = sheet.bench.stages["end_to_end"].p50_ms
        reasons.append(
            f"end-to-end p50 {p50:.0f} ms vs {base:.0f} ms fp32 on the measured host "
            f"({base / p50:.2f}× speed-up); the edge device itself was not measured"
        )
    agreement = candidate.agreement
    if agreement is None:
        verdict = "unknown"
        reasons.append("agreement with the fp32 parent was not measured")
    elif agreement.task == "segmentation":
        low = agreement.min_dice if agreement.min_dice is not None else 1.0
        good, fair = EDGE_MIN_DICE
        value: VerdictValue = "yes" if low >= good else "maybe" if low >= fair else "no"
        verdict = _worst(verdict, value)
        reasons.append(
            f"agreement with {agreement.parent}: {agreement.describe()} (needs Dice ≥ {good} "
            f"for yes, ≥ {fair} for maybe)"
        )
    else:
        diff = agreement.max_probability_difference or 0.0
        good, fair = EDGE_MAX_PROB_DIFF
        value = "yes" if diff <= good else "maybe" if diff <= fair else "no"
        if agreement.top_label_agreement != 1.0:
            value = "no"
        verdict = _worst(verdict, value)
        reasons.append(
            f"agreement with {agreement.parent}: {agreement.describe()} (needs the same top "
            f"label and a difference ≤ {good} for yes, ≤ {fair} for maybe)"
        )
    working = candidate.bench.memory.model_mb
    if working > EDGE_RAM_MB:
        verdict = _worst(verdict, "no")
    reasons.append(
        f"needs about {working:.0f} MB of working memory (edge budget {EDGE_RAM_MB} MB, a 4 GB box)"
    )
    reasons.append(
        f"agreement measured on one reference input only ({candidate.bench.reference.name})"
    )
    return TargetVerdict("edge", verdict, tuple(reasons))


def web_verdict(sheet: Sheet) -> TargetVerdict:
    """Browser: file size against download budgets and hard limits, memory, operators, opset."""
    facts = sheet.targets.web
    size = sheet.graph.file_bytes
    reasons: list[str] = []
    verdict: VerdictValue = "yes"
    comfortable, practical = WEB_DOWNLOAD_MB
    if size > WEB_FILE_LIMIT_MB * _MB:
        verdict = "no"
        reasons.append(f"{_mb(size)} is over the 2 GiB limit of one ONNX file in a browser")
    elif size > practical * _MB:
        verdict = "no"
        reasons.append(f"{_mb(size)} is more than a page can practically download ({practical} MB)")
    elif size > comfortable * _MB:
        verdict = "maybe"
        reasons.append(
            f"{_mb(size)} download: more than {comfortable} MB, cache it (Cache API) after the "
            "first visit"
        )
    else:
        reasons.append(f"{_mb(size)} download (comfortable budget {comfortable} MB)")
    working = sheet.bench.memory.model_mb
    if working > WEB_MEMORY_MB:
        verdict = _worst(verdict, "no")
        reasons.append(
            f"needs about {working:.0f} MB of working memory, over the {WEB_MEMORY_MB} MB "
            "WebAssembly heap budget"
        )
    else:
        reasons.append(
            f"needs about {working:.0f} MB of working memory (WebAssembly heap budget "
            f"{WEB_MEMORY_MB} MB)"
        )
    if facts.unsupported_ops:
        verdict = "no"
        reasons.append(
            f"operators without a WebAssembly (CPU) kernel: {', '.join(facts.unsupported_ops)}"
        )
    else:
        reasons.append(
            f"all {len(facts.checked_ops)} operator types run in onnxruntime's CPU/WebAssembly "
            f"build at opset {facts.opset} ({facts.source})"
        )
    if facts.expanded_ops:
        reasons.append(
            f"run as their ONNX function bodies (no dedicated kernel, may be slower): "
            f"{', '.join(facts.expanded_ops)}"
        )
    reasons.append(
        f"opset {facts.opset}: use onnxruntime-web {sheet.host.onnxruntime_version} or newer "
        "(an older release may not know this opset)"
    )
    return TargetVerdict("web", verdict, tuple(reasons))


def target_verdicts(sheet: Sheet, *, int8: Sheet | None = None) -> list[TargetVerdict]:
    """Mobile, edge and web verdicts for ``sheet`` (``int8``: its int8 variant's sheet)."""
    return [mobile_verdict(sheet), edge_verdict(sheet, int8), web_verdict(sheet)]
