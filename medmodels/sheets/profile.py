"""Facts read from an ONNX graph: size, parameters, opsets, operators, I/O, FLOPs, precision.

Nothing here runs the model. FLOPs are counted for a concrete input shape: the graph's dynamic
input axes are fixed to that shape and ``onnx.shape_inference`` propagates it, so every
intermediate shape is known where ONNX can infer it.

Counting convention (stated in every profile's ``flops_method``): one multiply-accumulate is
2 FLOPs; a bias addition is 1 FLOP per output element. Counted operators: ``Conv``,
``ConvTranspose``, ``Gemm`` and ``MatMul``. Every other operator (activations, element-wise
arithmetic, pooling, normalisation, resizing...) is listed in ``not_counted``; in convolutional
networks they are usually a few percent of the total.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, helper
from pydantic import BaseModel, ConfigDict, Field

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
FLOPS_METHOD = (
    "2 FLOPs per multiply-accumulate of Conv, ConvTranspose, Gemm and MatMul, plus 1 per "
    "output element for a bias; shapes from onnx.shape_inference with the input fixed to "
    "the stated shape; other operators are not counted"
)

Dim = int | str | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorInfo(_Model):
    """A graph input or output: name, element type and shape (a name or None = dynamic)."""

    name: str
    dtype: str
    shape: list[Dim] | None


class GraphProfile(_Model):
    """Everything read from one ONNX file (provenance: ``read``)."""

    provenance: str = "read"
    source: str
    file_bytes: int = Field(description="model file plus external-data files, in bytes")
    parameters: int = Field(description="elements of all initializers")
    weights_bytes: int
    weights_precision: dict[str, int] = Field(
        description="initializer elements by element type, e.g. {'float32': 1200}"
    )
    ir_version: int
    opset: dict[str, int] = Field(description="domain ('ai.onnx' for '') → version")
    producer: str
    operators: dict[str, int] = Field(description="op type (domain:op for non-standard) → count")
    nodes: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    flops: int | None = Field(None, description="FLOPs for one call with flops_input_shape")
    macs: int | None = None
    flops_input_shape: list[int] | None = None
    flops_by_op: dict[str, int] = Field(default_factory=dict)
    not_counted: dict[str, int] = Field(
        default_factory=dict, description="op type → nodes whose FLOPs were not counted"
    )
    uncountable: list[str] = Field(
        default_factory=list,
        description="counted op types whose shapes were unknown, as 'node (op): why'",
    )
    flops_method: str = FLOPS_METHOD

    @property
    def main_precision(self) -> str:
        """The element type holding most weights (``float32``, ``int8``, ...)."""
        if not self.weights_precision:
            return "none"
        return max(self.weights_precision.items(), key=lambda kv: kv[1])[0]

    @property
    def flops_per_sample(self) -> float | None:
        """FLOPs divided by the batch size of ``flops_input_shape``."""
        if self.flops is None or not self.flops_input_shape:
            return None
        return self.flops / max(1, self.flops_input_shape[0])


# --------------------------------------------------------------------------------------------
# Graph walking


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graphs(sub)


def _nodes(model: ModelProto) -> Iterator[NodeProto]:
    for graph in _graphs(model.graph):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def _op_name(node: NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def _dtype_name(elem_type: int) -> str:
    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return TensorProto.DataType.Name(elem_type).lower()


def _tensor_info(value: ValueInfoProto) -> TensorInfo:
    ttype = value.type.tensor_type
    shape: list[Dim] | None = None
    if ttype.HasField("shape"):
        shape = []
        for dim in ttype.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            elif dim.HasField("dim_param"):
                shape.append(dim.dim_param)
            else:
                shape.append(None)
    return TensorInfo(name=value.name, dtype=_dtype_name(ttype.elem_type), shape=shape)


def _file_bytes(path: Path, model: ModelProto) -> int:
    total = path.stat().st_size
    seen: set[str] = set()
    for graph in _graphs(model.graph):
        for tensor in graph.initializer:
            if tensor.data_location == TensorProto.EXTERNAL:
                for entry in tensor.external_data:
                    if entry.key == "location" and entry.value not in seen:
                        seen.add(entry.value)
                        extra = path.parent / entry.value
                        if extra.is_file():
                            total += extra.stat().st_size
    return total


def _real_inputs(graph: GraphProto) -> list[ValueInfoProto]:
    initializers = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in initializers]


# --------------------------------------------------------------------------------------------
# FLOPs


def _shapes(model: ModelProto) -> dict[str, list[int | None]]:
    shapes: dict[str, list[int | None]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        info = _tensor_info(value)
        if info.shape is not None:
            shapes[value.name] = [d if isinstance(d, int) else None for d in info.shape]
    for tensor in graph.initializer:
        shapes[tensor.name] = [int(d) for d in tensor.dims]
    return shapes


def _attr(node: NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _known(shape: Sequence[int | None] | None) -> list[int] | None:
    if shape is None or any(d is None for d in shape):
        return None
    return [int(d) for d in shape if d is not None]


def _prod(values: Sequence[int]) -> int:
    return int(np.prod(values, dtype=np.int64)) if values else 1


def _node_macs(node: NodeProto, shapes: dict[str, list[int | None]]) -> tuple[int, int] | str:
    """``(macs, bias_adds)`` for a counted node, or why it could not be counted."""
    get = shapes.get
    out = _known(get(node.output[0]))
    if out is None:
        return "output shape unknown"
    has_bias = len(node.input) > 2 and node.input[2] != ""
    if node.op_type == "Conv":
        w = _known(get(node.input[1]))
        if w is None:
            return "weight shape unknown"
        # weight [Cout, Cin/group, k...]; output [N, Cout, spatial...]
        macs = _prod(out) * _prod(w[1:])
        return macs, (_prod(out) if has_bias else 0)
    if node.op_type == "ConvTranspose":
        x = _known(get(node.input[0]))
        w = _known(get(node.input[1]))
        if x is None or w is None:
            return "input or weight shape unknown"
        # weight [Cin, Cout/group, k...]: every input element is scattered over a kernel window
        macs = _prod(x) * _prod(w[1:])
        return macs, (_prod(out) if has_bias else 0)
    if node.op_type == "Gemm":
        a = _known(get(node.input[0]))
        if a is None or len(a) != 2:
            return "input shape unknown"
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return _prod(out) * k, (_prod(out) if has_bias else 0)
    if node.op_type == "MatMul":
        a = _known(get(node.input[0]))
        if a is None:
            return "input shape unknown"
        k = a[-1]
        return _prod(out) * k, 0
    return "not a counted operator"


def _fix_input_shape(model: ModelProto, input_shape: Sequence[int]) -> ModelProto:
    fixed = ModelProto()
    fixed.CopyFrom(model)
    inputs = _real_inputs(fixed.graph)
    if not inputs:
        return fixed
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise ValueError(
            f"input {inputs[0].name!r} has {len(dims)} axes; the shape given has {len(input_shape)}"
        )
    for dim, size in zip(dims, input_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    del fixed.graph.value_info[:]
    return fixed


def count_flops(
    model: ModelProto, input_shape: Sequence[int]
) -> tuple[int, int, dict[str, int], dict[str, int], list[str]]:
    """FLOPs of one call with the first input set to ``input_shape``.

    Returns ``(flops, macs, flops_by_op, not_counted, uncountable)`` where ``not_counted`` maps
    op types that are never counted to their node counts and ``uncountable`` names counted
    nodes whose shapes were unknown."""
    fixed = _fix_input_shape(model, input_shape)
    inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=False, data_prop=True)
    shapes = _shapes(inferred)
    flops = macs_total = 0
    by_op: Counter[str] = Counter()
    not_counted: Counter[str] = Counter()
    uncountable: list[str] = []
    for node in inferred.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in COUNTED_OPS:
            not_counted[_op_name(node)] += 1
            continue
        result = _node_macs(node, shapes)
        if isinstance(result, str):
            uncountable.append(f"{node.name or '(unnamed)'} ({node.op_type}): {result}")
            continue
        macs, bias = result
        node_flops = 2 * macs + bias
        macs_total += macs
        flops += node_flops
        by_op[node.op_type] += node_flops
    # Nodes inside subgraphs (If/Loop bodies) and functions are not walked for FLOPs.
    for graph in list(_graphs(inferred.graph))[1:]:
        for node in graph.node:
            not_counted[_op_name(node)] += 1
    return flops, macs_total, dict(by_op), dict(sorted(not_counted.items())), uncountable


# --------------------------------------------------------------------------------------------
# The profile


def profile_model(
    path: str | os.PathLike[str],
    *,
    input_shape: Sequence[int] | None = None,
    source: str | None = None,
) -> GraphProfile:
    """Read the facts of the ONNX file at ``path``; FLOPs are counted when ``input_shape``
    (the first input's concrete shape) is given or the graph's input shape is fully fixed."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    params = 0
    weights_bytes = 0
    precision: Counter[str] = Counter()
    for graph in _graphs(model.graph):
        for tensor in graph.initializer:
            n = _prod([int(d) for d in tensor.dims])
            dtype = _dtype_name(tensor.data_type)
            params += n
            precision[dtype] += n
            try:
                itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
            except (KeyError, TypeError, ValueError):
                itemsize = 0
            weights_bytes += n * itemsize
    operators = Counter(_op_name(node) for node in _nodes(model))
    inputs = [_tensor_info(v) for v in _real_inputs(model.graph)]
    outputs = [_tensor_info(v) for v in model.graph.output]
    opset = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}

    shape = list(input_shape) if input_shape is not None else None
    first = inputs[0].shape if inputs else None
    if shape is None and first is not None and all(isinstance(d, int) for d in first):
        shape = [int(d) for d in first if isinstance(d, int)]
    flops = macs = None
    by_op: dict[str, int] = {}
    not_counted: dict[str, int] = {}
    uncountable: list[str] = []
    if shape is not None:
        try:
            flops, macs, by_op, not_counted, uncountable = count_flops(model, shape)
        except (ValueError, onnx.shape_inference.InferenceError) as exc:
            uncountable = [f"shape inference failed: {' '.join(str(exc).split())[:300]}"]
    return GraphProfile(
        source=source or f"{path.name}, read with onnx {onnx.__version__}",
        file_bytes=_file_bytes(path, model),
        parameters=params,
        weights_bytes=weights_bytes,
        weights_precision=dict(precision.most_common()),
        ir_version=int(model.ir_version),
        opset=dict(sorted(opset.items())),
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        operators=dict(operators.most_common()),
        nodes=sum(operators.values()),
        inputs=inputs,
        outputs=outputs,
        flops=flops,
        macs=macs,
        flops_input_shape=shape,
        flops_by_op=by_op,
        not_counted=not_counted,
        uncountable=uncountable,
    )
