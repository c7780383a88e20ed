"""Target verdicts come with reasons; facts behind them are gathered from real tools."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from medmodels.sheets import Agreement, target_verdicts
from medmodels.sheets.targets import edge_verdict, web_facts

from .conftest import save


def test_every_verdict_has_reasons(measured) -> None:
    sheet, _, _ = measured
    verdicts = target_verdicts(sheet)
    assert [v.target for v in verdicts] == ["mobile", "edge", "web"]
    for verdict in verdicts:
        assert verdict.verdict in ("yes", "maybe", "no", "unknown")
        assert verdict.reasons and all(isinstance(r, str) and r for r in verdict.reasons)
        assert verdict.provenance == "derived"
    mobile, edge, web = verdicts
    assert sheet.targets.mobile.ort_converted and sheet.targets.mobile.ort_loads
    assert mobile.verdict == "yes"
    assert any(r.startswith("NNAPI:") for r in mobile.reasons)
    assert any(r.startswith("CoreML MLProgram:") for r in mobile.reasons)
    assert edge.verdict == "maybe" and "no int8 variant" in edge.reasons[0]
    assert web.verdict == "yes"
    assert any("opset 17" in r for r in web.reasons)
    assert sheet.targets.web.unsupported_ops == []
    assert set(sheet.targets.web.checked_ops) == {"Conv", "Relu"}


def test_edge_verdict_follows_the_int8_agreement(measured) -> None:
    sheet, _, _ = measured

    def int8_with(dice: float):
        agreement = Agreement(
            source="test",
            parent="1.0.0",
            task="segmentation",
            reference="synthetic",
            label_agreement=0.99,
            dice={"spot": dice},
        )
        return sheet.model_copy(update={"version": "1.0.0+int8", "agreement": agreement})

    assert edge_verdict(sheet, int8_with(0.99)).verdict == "yes"
    assert edge_verdict(sheet, int8_with(0.92)).verdict == "maybe"
    low = edge_verdict(sheet, int8_with(0.5))
    assert low.verdict == "no"
    assert any("Dice spot 0.500" in r for r in low.reasons)
    assert any("speed-up" in r for r in low.reasons)


def test_web_facts_flag_operators_without_a_cpu_kernel(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    shift = helper.make_tensor("shift", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        helper.make_node("Constant", [], ["c"], value=shift),  # no kernel: folded at load
        helper.make_node("Add", ["x", "c"], ["a"]),
        helper.make_node("Mish", ["a"], ["m"]),  # no kernel: runs as its function body
        helper.make_node("Sparkle", ["m"], ["y"], domain="org.example"),
    ]
    graph = helper.make_graph(nodes, "odd", [x], [y])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("org.example", 1)],
        ir_version=9,
    )
    facts = web_facts(save(model, tmp_path / "odd.onnx"))
    assert facts.provenance == "read"
    assert facts.unsupported_ops == [f"org.example:Sparkle (unknown to onnx {onnx.__version__})"]
    assert {"Constant", "Add", "Mish"} <= set(facts.checked_ops)
    assert facts.expanded_ops == ["Mish-18"]
    assert "onnxruntime-web" in facts.method
