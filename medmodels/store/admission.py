"""Admission checks: what an ONNX file and its manifest must pass before they are published.

Each check reports pass, fail or skip with a message that says what to fix, so a UI can show
them one by one. Checks, in order:

``onnx_file``        the file exists and parses as an ONNX model;
``derived_from``     a variant's parent version is already in the store;
``external_data``    external-data locations are relative, without ``..``, inside the model's
                     folder once symlinks are resolved, present, and not a reserved file name;
``onnx_checker``     ``onnx.checker.check_model(path, full_check=True)``;
``operator_domains`` every node uses the standard domains ``""``, ``ai.onnx`` or ``ai.onnx.ml``;
``io_match``         the manifest's input name, rank, fixed sizes and dtype, and its output
                     names, match the graph;
``dummy_inference``  one onnxruntime run (CPU, bounded threads) on zeros of the declared shape.

A check is skipped when an earlier one it depends on failed. Dynamic axes of the dummy input
are 1 for the batch axis, the ``channel_repeat`` count (else 1) for the channel axis, and the
``resize_pad`` size (else :data:`DUMMY_SPATIAL`) for spatial axes: a size of 1 would make many
real networks (pooling, strided convolutions) fail for no fault of their own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

from medmodels.errors import UnreadableScanError
from medmodels.store.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    README_FILE,
    ChannelRepeat,
    Manifest,
    ResizePad,
)

if TYPE_CHECKING:
    from medmodels.scans.worker import DecodePool
    from medmodels.store.store import ModelStore

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""Operator domains a published graph may use."""

DUMMY_SPATIAL = 32
"""Size given to a dynamic spatial axis in the dummy inference when the manifest fixes none."""

RESERVED_FILES = frozenset({MODEL_FILE, MANIFEST_FILE, README_FILE})

CheckStatus = Literal["pass", "fail", "skip"]

TITLES = {
    "onnx_file": "ONNX file readable",
    "derived_from": "Parent version exists",
    "external_data": "External data stays inside the model folder",
    "onnx_checker": "ONNX checker (full check)",
    "operator_domains": "Standard operator domains only",
    "io_match": "Manifest inputs/outputs match the graph",
    "dummy_inference": "One dummy inference runs",
}
"""A human title for each check id, in the order the checks run."""


@dataclass(frozen=True)
class AdmissionCheck:
    """The outcome of one admission check; ``message`` says what was found or what to fix."""

    name: str
    status: CheckStatus
    message: str
    seconds: float | None = None

    @property
    def title(self) -> str:
        """Human title of the check."""
        return TITLES.get(self.name, self.name)

    @property
    def ok(self) -> bool:
        """Whether the check passed."""
        return self.status == "pass"


@dataclass(frozen=True)
class AdmissionReport:
    """Every admission check for one model file and manifest, in the order they ran."""

    ref: str
    checks: tuple[AdmissionCheck, ...]
    external_files: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether every check passed (the model may be published)."""
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[AdmissionCheck]:
        """The checks that failed."""
        return [check for check in self.checks if check.status == "fail"]

    @property
    def inference_seconds(self) -> float | None:
        """Time of the dummy inference run (session creation excluded), if it ran."""
        for check in self.checks:
            if check.name == "dummy_inference" and check.ok:
                return check.seconds
        return None

    def summary(self) -> str:
        """Why the model cannot be published: one line per failed check, with the fix."""
        if self.ok:
            return f"{self.ref}: all {len(self.checks)} admission checks passed."
        failed = self.failed
        skipped = sum(1 for check in self.checks if check.status == "skip")
        lines = [
            f"{self.ref} cannot be published: {len(failed)} admission check(s) failed"
            + (f" ({skipped} later check(s) skipped)" if skipped else "")
            + ":"
        ]
        lines += [f"- {check.title}: {check.message}" for check in failed]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Graph walking


def _subgraphs(attr: AttributeProto) -> Iterator[GraphProto]:
    if attr.type == AttributeProto.GRAPH:
        yield attr.g
    elif attr.type == AttributeProto.GRAPHS:
        yield from attr.graphs


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                yield from _graphs(sub)


def _all_graphs(model: ModelProto) -> Iterator[GraphProto]:
    yield from _graphs(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                for sub in _subgraphs(attr):
                    yield from _graphs(sub)


def _all_nodes(model: ModelProto) -> Iterator[NodeProto]:
    for graph in _all_graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def _all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    for graph in _all_graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in _all_nodes(model):
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices


# --------------------------------------------------------------------------------------------
# Checks


def _fail(name: str, message: str) -> AdmissionCheck:
    return AdmissionCheck(name, "fail", message)


def _first_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_DRIVE_RE = re.compile(r"[A-Za-z]:")


def _location_problem(location: str, folder: Path, base: Path) -> str | None:
    """Why an external-data ``location`` may not be used, or None when it may."""
    parts = PurePosixPath(location).parts
    if location.startswith(("/", "\\")) or _DRIVE_RE.match(location) or "\\" in location:
        return f"{location!r} is an absolute or Windows-style path"
    if ".." in parts:
        return f"{location!r} contains '..'"
    if not (folder / location).resolve().is_relative_to(base):
        return f"{location!r} resolves (through a symlink) outside the model folder"
    if not (folder / location).is_file():
        return f"{location!r} does not exist next to the model"
    if PurePosixPath(location).as_posix() in RESERVED_FILES:
        return f"{location!r} is a reserved file name in a version folder"
    return None


def _check_external_data(model: ModelProto, folder: Path) -> tuple[AdmissionCheck, list[str]]:
    """Check every external-data location; return the check and the files to copy."""
    locations: set[str] = set()
    problems: list[str] = []
    for tensor in _all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        if not location:
            problems.append(f"tensor {tensor.name!r} is stored externally but names no file")
        else:
            locations.add(location)
    base = folder.resolve()
    files: list[str] = []
    for location in sorted(locations):
        try:
            problem = _location_problem(location, folder, base)
        except (ValueError, OSError, RuntimeError):  # NUL bytes, names too long, symlink loops
            problem = f"{location[:80]!r} is not a usable file name"
        if problem:
            problems.append(problem)
        else:
            files.append(PurePosixPath(location).as_posix())
    if problems:
        return (
            _fail(
                "external_data",
                "; ".join(problems) + ". Save the weights with a plain relative file name in the "
                "model's own folder (onnx.save(..., save_as_external_data=True, "
                "location='weights.bin')), or embed them in the .onnx file.",
            ),
            [],
        )
    if files:
        return AdmissionCheck("external_data", "pass", f"external data: {', '.join(files)}"), files
    return AdmissionCheck("external_data", "pass", "no external data"), []


def _check_domains(model: ModelProto) -> AdmissionCheck:
    bad: list[str] = []
    for node in _all_nodes(model):
        if node.domain not in STANDARD_DOMAINS:
            bad.append(f"node {node.name or '(unnamed)'!r} ({node.op_type}) uses {node.domain!r}")
    if not bad:
        return AdmissionCheck("operator_domains", "pass", "all nodes use standard domains")
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return _fail(
        "operator_domains",
        f"{'; '.join(bad[:5])}{more}. Only the domains '', 'ai.onnx' and 'ai.onnx.ml' are "
        "allowed: re-export the model with standard operators only (no custom or "
        "com.microsoft operators, no model-local functions).",
    )


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None] | None:
    tensor_type = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]


def _np_dtype_name(elem_type: int) -> str:
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _check_io(model: ModelProto, manifest: Manifest) -> AdmissionCheck:
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in initializers]
    input_names = [vi.name for vi in inputs]
    output_names = [vi.name for vi in graph.output]
    spec = manifest.input
    problems: list[str] = []
    if spec.name not in input_names:
        problems.append(
            f"input.name is {spec.name!r} but the graph's inputs are {input_names}; "
            "set input.name to the graph's input"
        )
    extra = [n for n in input_names if n != spec.name]
    if spec.name in input_names and extra:
        problems.append(
            f"the graph also needs inputs {extra} that the manifest does not feed; a model "
            "must take exactly one input (re-export it with one)"
        )
    for name in manifest.output.names:
        if name not in output_names:
            problems.append(
                f"output.names lists {name!r} but the graph's outputs are {output_names}"
            )
    if spec.name in input_names:
        vi = inputs[input_names.index(spec.name)]
        if not vi.type.HasField("tensor_type"):
            problems.append(f"the graph's input {spec.name!r} is not a tensor")
        else:
            dtype = _np_dtype_name(vi.type.tensor_type.elem_type)
            if dtype != spec.dtype:
                problems.append(f"input.dtype is {spec.dtype} but the graph's input is {dtype}")
            dims = _dims(vi)
            if dims is not None:
                if len(dims) != len(spec.shape):
                    problems.append(
                        f"input.shape has {len(spec.shape)} axes but the graph's input has "
                        f"{len(dims)}"
                    )
                else:
                    for i, (declared, actual) in enumerate(zip(spec.shape, dims, strict=True)):
                        if isinstance(declared, int) and actual is not None and declared != actual:
                            problems.append(
                                f"input.shape[{i}] is {declared} but the graph fixes it to {actual}"
                            )
                    problems += _feed_problems(spec, dims)
    if problems:
        return _fail("io_match", "; ".join(problems) + ".")
    return AdmissionCheck(
        "io_match",
        "pass",
        f"input {spec.name!r} ({spec.dtype}, {len(spec.shape)} axes); outputs "
        f"{', '.join(manifest.output.names)}",
    )


def _feed_problems(spec: Any, dims: list[int | None]) -> list[str]:
    """Sizes the graph fixes that the manifest's preprocessing would not produce."""
    problems: list[str] = []
    channels = next((s.n for s in spec.preprocessing if isinstance(s, ChannelRepeat)), 1)
    if dims[1] is not None and dims[1] != channels:
        problems.append(
            f"the graph takes {dims[1]} channel(s) but the preprocessing produces {channels}; "
            f"add or fix a channel_repeat step (n={dims[1]})"
        )
    resize = next((s for s in spec.preprocessing if isinstance(s, ResizePad)), None)
    rows, cols = dims[-2], dims[-1]
    if rows is not None or cols is not None:
        if resize is None:
            problems.append(
                f"the graph fixes the image size to {rows}×{cols} but scans come in any size; "
                f"add a resize_pad step with rows={rows} and cols={cols}"
            )
        elif (rows is not None and rows != resize.rows) or (
            cols is not None and cols != resize.cols
        ):
            problems.append(
                f"the graph fixes the image size to {rows}×{cols} but resize_pad produces "
                f"{resize.rows}×{resize.cols}"
            )
    return problems


def dummy_shape(model: ModelProto, manifest: Manifest) -> tuple[int, ...]:
    """The concrete input shape used for the dummy inference (see the module docstring)."""
    spec = manifest.input
    graph_dims: list[int | None] = [None] * len(spec.shape)
    for vi in model.graph.input:
        if vi.name == spec.name:
            dims = _dims(vi)
            if dims is not None and len(dims) == len(spec.shape):
                graph_dims = dims
    channels = next((s.n for s in spec.preprocessing if isinstance(s, ChannelRepeat)), 1)
    resize = next((s for s in spec.preprocessing if isinstance(s, ResizePad)), None)
    spatial_default = [DUMMY_SPATIAL] * (len(spec.shape) - 2)
    if resize is not None and len(spatial_default) >= 2:
        spatial_default[-2:] = [resize.rows, resize.cols]
    shape: list[int] = []
    for i, declared in enumerate(spec.shape):
        if isinstance(declared, int):
            shape.append(declared)
        elif graph_dims[i]:
            shape.append(int(graph_dims[i] or 1))
        elif i == 0:
            shape.append(1)
        elif i == 1:
            shape.append(channels)
        else:
            shape.append(spatial_default[i - 2])
    return tuple(shape)


def run_dummy_inference(
    path: str, input_name: str, shape: tuple[int, ...], dtype: str, outputs: list[str], threads: int
) -> tuple[float, float, list[tuple[int, ...]]]:
    """Create a session and run it once on zeros; ``(created_s, run_s, output_shapes)``.

    Runs inside a limited worker process (see :func:`_check_inference`); onnxruntime's errors
    come back as RuntimeError with onnxruntime's first line.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        start = time.perf_counter()
        session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        created = time.perf_counter() - start
        feed = {input_name: np.zeros(shape, dtype=np.dtype(dtype))}
        start = time.perf_counter()
        results = session.run(outputs, feed)
        seconds = time.perf_counter() - start
    except MemoryError:
        raise
    except Exception as exc:  # onnxruntime raises its own (non-exported) error types
        raise RuntimeError(_first_line(exc)) from None
    return created, seconds, [tuple(int(d) for d in np.shape(r)) for r in results]


_POOL: DecodePool | None = None


def _pool() -> DecodePool:
    """The worker that runs dummy inferences, with the decode workers' memory and time limits."""
    global _POOL
    if _POOL is None:
        from medmodels.config import load_settings
        from medmodels.scans.worker import DecodePool

        _POOL = DecodePool(load_settings(), workers=1)
    return _POOL


def _check_inference(
    path: Path, model: ModelProto, manifest: Manifest, threads: int
) -> AdmissionCheck:
    """One run on zeros in a limited worker process: a model that asks for a huge allocation
    or crashes onnxruntime costs that worker, not the caller (the app, for an uploaded model)."""
    shape = dummy_shape(model, manifest)
    pool = _pool()
    limit = pool.settings.decode_memory_mb
    try:
        created, seconds, out_shapes = pool.call(
            run_dummy_inference,
            str(path),
            manifest.input.name,
            shape,
            manifest.input.dtype,
            list(manifest.output.names),
            threads,
            label="model",
        )
    except MemoryError:
        return _fail(
            "dummy_inference",
            f"running the model on zeros of shape {shape} needed more than {limit} MiB "
            "(MEDMODELS_DECODE_MEMORY_MB); check input.shape, or the graph's allocations.",
        )
    except UnreadableScanError as exc:  # the worker died or timed out
        what = (
            "took longer than the time limit"
            if exc.code == "decoder-timeout"
            else f"crashed onnxruntime or needed more than {limit} MiB"
        )
        return _fail(
            "dummy_inference",
            f"running the model on zeros of shape {shape} {what}; fix the graph or "
            "input.shape in the manifest.",
        )
    except RuntimeError as exc:
        return _fail(
            "dummy_inference",
            f"onnxruntime could not run the model on zeros of shape {shape}: {exc}. Check "
            "input.shape and input.dtype in the manifest, or fix and re-export the graph.",
        )
    shapes = ", ".join(
        f"{name} {out}" for name, out in zip(manifest.output.names, out_shapes, strict=True)
    )
    return AdmissionCheck(
        "dummy_inference",
        "pass",
        f"ran on zeros of shape {shape} in {seconds * 1000:.1f} ms "
        f"(session created in {created * 1000:.1f} ms); outputs: {shapes}",
        seconds=seconds,
    )


def check_admission(
    onnx_path: str | os.PathLike[str],
    manifest: Manifest,
    *,
    store: ModelStore | None = None,
    threads: int = 1,
) -> AdmissionReport:
    """Run every admission check on ``onnx_path`` against ``manifest``; never raises for a
    failed check (see :class:`AdmissionReport`). ``store`` enables the ``derived_from`` check;
    ``threads`` bounds onnxruntime's intra-op threads for the dummy inference."""
    path = Path(onnx_path)
    checks: list[AdmissionCheck] = []

    def skip_rest(reason: str) -> AdmissionReport:
        done = {c.name for c in checks}
        for name in TITLES:
            if name not in done:
                checks.append(AdmissionCheck(name, "skip", reason))
        return AdmissionReport(manifest.ref, tuple(checks))

    try:
        if not path.is_file():
            raise FileNotFoundError(path)
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        checks.append(_fail("onnx_file", f"no file at {path}; give the path of the .onnx file"))
        return skip_rest("skipped: the ONNX file could not be read")
    except Exception as exc:  # protobuf's DecodeError and friends
        checks.append(
            _fail(
                "onnx_file",
                f"not an ONNX model ({_first_line(exc, 200)}); export the model to ONNX and "
                "give that file",
            )
        )
        return skip_rest("skipped: the ONNX file could not be read")
    size_mb = path.stat().st_size / 1e6
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    checks.append(
        AdmissionCheck(
            "onnx_file",
            "pass",
            f"{size_mb:.2f} MB, IR version {model.ir_version}, opsets: {opsets}",
        )
    )

    if manifest.derived_from is None:
        checks.append(AdmissionCheck("derived_from", "pass", "not a variant (no derived_from)"))
    elif store is None:
        checks.append(AdmissionCheck("derived_from", "skip", "no store given to look in"))
    else:
        known = store.versions(manifest.name) if manifest.name in store.models() else []
        if manifest.derived_from in known:
            checks.append(
                AdmissionCheck("derived_from", "pass", f"parent {manifest.derived_from} exists")
            )
        else:
            checks.append(
                _fail(
                    "derived_from",
                    f"derived_from is {manifest.derived_from} but {manifest.name} has no such "
                    f"version (available: {', '.join(known) or 'none'}); publish the parent "
                    "first or correct derived_from",
                )
            )

    external, files = _check_external_data(model, path.parent)
    checks.append(external)
    if not external.ok:
        return skip_rest("skipped: fix the external data first")

    try:
        onnx.checker.check_model(str(path), full_check=True)
        checks.append(AdmissionCheck("onnx_checker", "pass", "the graph is valid"))
    except Exception as exc:  # onnx raises ValidationError, InferenceError and others
        checks.append(
            _fail(
                "onnx_checker",
                f"{_first_line(exc)}. Fix the graph (re-export it with a supported opset) and "
                "try again.",
            )
        )

    checks.append(_check_domains(model))
    checks.append(_check_io(model, manifest))

    if all(c.status == "pass" for c in checks if c.name != "derived_from"):
        checks.append(_check_inference(path, model, manifest, threads))
        return AdmissionReport(manifest.ref, tuple(checks), tuple(files))
    return skip_rest("skipped: fix the failed checks above first")
