"""Graph facts: FLOPs equal hand counts; parameters, opsets, operators, I/O and precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from medmodels.sheets import count_flops, profile_model

from .conftest import cls_net, save


def _ones(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "net", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def known_net() -> onnx.ModelProto:
    """Conv 3×3 1→4 (pad 1, bias) → Relu → Conv 1×1 4→2 (bias) → Conv 3×3 2→3 (stride 2, pad 1,
    no bias) → GlobalAveragePool → Flatten → Gemm 3→5 (bias). Input [N, 1, H, W], dynamic."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node(
            "Conv", ["c2", "w3"], ["c3"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]
        ),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["y"], transB=1),
    ]
    inits = [
        _ones("w1", (4, 1, 3, 3)),
        _ones("b1", (4,)),
        _ones("w2", (2, 4, 1, 1)),
        _ones("b2", (2,)),
        _ones("w3", (3, 2, 3, 3)),
        _ones("w4", (5, 3)),
        _ones("b4", (5,)),
    ]
    return _model(nodes, [x], [y], inits)


# Hand count for input [1, 1, 8, 8] (2 FLOPs per multiply-accumulate, 1 per bias addition):
#   conv1: output 4×8×8 = 256 values × (1×3×3) MACs = 2304 MACs → 4608 + 256 bias = 4864
#   conv2: output 2×8×8 = 128 values × 4 MACs = 512 MACs → 1024 + 128 bias      = 1152
#   conv3: output 3×4×4 = 48 values × (2×3×3) MACs = 864 MACs → 1728, no bias   = 1728
#   gemm:  1×5 outputs × 3 MACs = 15 MACs → 30 + 5 bias                         =   35
HAND_FLOPS = 4864 + 1152 + 1728 + 35
HAND_MACS = 2304 + 512 + 864 + 15


def test_flops_of_a_known_conv_net_equal_the_hand_count(tmp_path: Path) -> None:
    path = save(known_net(), tmp_path / "net.onnx")
    profile = profile_model(path, input_shape=[1, 1, 8, 8])
    assert profile.flops == HAND_FLOPS
    assert profile.macs == HAND_MACS
    assert profile.flops_by_op == {"Conv": 4864 + 1152 + 1728, "Gemm": 35}
    assert profile.not_counted == {"Flatten": 1, "GlobalAveragePool": 1, "Relu": 1}
    assert profile.uncountable == []
    assert profile.flops_input_shape == [1, 1, 8, 8]
    assert "multiply-accumulate" in profile.flops_method


def test_flops_scale_with_the_batch(tmp_path: Path) -> None:
    path = save(known_net(), tmp_path / "net.onnx")
    profile = profile_model(path, input_shape=[3, 1, 8, 8])
    assert profile.flops == 3 * HAND_FLOPS
    assert profile.flops_per_sample == HAND_FLOPS


def test_matmul_conv_transpose_and_grouped_conv_hand_counts() -> None:
    # MatMul [2,3,4] × [4,5] → [2,3,5]: 30 outputs × 4 = 120 MACs.
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 4])
    out = helper.make_tensor_value_info("m", TensorProto.FLOAT, None)
    node = helper.make_node("MatMul", ["a", "b"], ["m"])
    matmul = _model([node], [a], [out], [_ones("b", (4, 5))])
    assert count_flops(matmul, [2, 3, 4])[:2] == (240, 120)

    # ConvTranspose [1,2,4,4] with weight [2,3,2,2], stride 2 → [1,3,8,8]:
    # each of the 32 input values meets 3×2×2 weights = 384 MACs.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    deconv = _model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], kernel_shape=[2, 2])],
        [x],
        [y],
        [_ones("w", (2, 3, 2, 2))],
    )
    assert count_flops(deconv, [1, 2, 4, 4])[:2] == (768, 384)

    # Grouped Conv (group 2) [1,4,8,8], weight [4,2,3,3], pad 1 → [1,4,8,8]: 256 × 18 MACs.
    x4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    grouped = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=2, kernel_shape=[3, 3], pads=[1] * 4)],
        [x4],
        [y],
        [_ones("w", (4, 2, 3, 3))],
    )
    assert count_flops(grouped, [1, 4, 8, 8])[:2] == (2 * 4608, 4608)


def test_graph_facts(tmp_path: Path) -> None:
    path = save(cls_net(), tmp_path / "cls.onnx")
    profile = profile_model(path)
    assert profile.provenance == "read"
    assert profile.parameters == 4 * 9 + 4 + 2 * 4 + 2
    assert profile.weights_precision == {"float32": 50}
    assert profile.main_precision == "float32"
    assert profile.weights_bytes == 200
    assert profile.file_bytes == path.stat().st_size
    assert profile.opset == {"ai.onnx": 17}
    assert profile.ir_version == 9
    assert profile.nodes == 5
    assert profile.operators["Conv"] == 1 and profile.operators["Gemm"] == 1
    assert [(i.name, i.dtype, i.shape) for i in profile.inputs] == [
        ("image", "float32", [1, 1, 32, 32])
    ]
    assert [(o.name, o.shape) for o in profile.outputs] == [("logits", [1, 2])]
    # A fully fixed input shape needs no shape from the caller.
    assert profile.flops == 2 * (4 * 32 * 32 * 9) + 4 * 32 * 32 + 2 * 8 + 2


def test_unknown_shapes_are_listed_not_guessed(tmp_path: Path) -> None:
    path = save(known_net(), tmp_path / "net.onnx")
    profile = profile_model(path)  # dynamic input, no shape given
    assert profile.flops is None
    with pytest.raises(ValueError, match="axes"):
        count_flops(known_net(), [1, 8, 8])
