"""Optimised variants of tiny models: int8 and fp16 published with derived_from and measured
agreement, the ORT format kept beside the store; then the variant's own sheet."""

from __future__ import annotations

import onnx
import pytest

from medmodels.errors import VersionExistsError
from medmodels.sheets import (
    SheetStore,
    VariantError,
    build_ort,
    build_sheet,
    build_variant,
    load_ort_artifact,
)
from medmodels.store.admission import STANDARD_DOMAINS


def _metrics(version) -> dict[str, object]:
    return {m.name: m for m in version.manifest.card.metrics}


def test_int8_variant_of_a_tiny_conv_model(make_store) -> None:
    store, settings = make_store()
    result = build_variant(store, "tiny-seg@1.0.0", "int8", settings=settings, runs=2)
    version = result.version
    assert version.ref == "tiny-seg@1.0.0+int8"
    assert version.manifest.derived_from == "1.0.0"
    assert store.get("tiny-seg@1.0.0+int8").model_sha256 == version.model_sha256
    graph = onnx.load(str(version.model_path))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert {o.domain for o in graph.opset_import} <= STANDARD_DOMAINS
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.graph.initializer)

    metrics = _metrics(version)
    for name in (
        "model size (MB)",
        "end-to-end latency p50 (ms)",
        "voxel label agreement vs 1.0.0",
        "Dice spot vs 1.0.0",
    ):
        assert metrics[name].note.startswith("measured"), name
    assert "Dice" not in metrics  # the parent's own metric is not carried over
    assert 0.0 <= result.agreement.label_agreement <= 1.0
    assert result.agreement.provenance == "measured"
    dice = result.agreement.dice["spot"]
    assert metrics["Dice spot vs 1.0.0"].value == pytest.approx(dice, abs=1e-6)
    assert result.size_bytes == version.model_path.stat().st_size
    assert "int8 variant of 1.0.0" in version.manifest.changelog

    with pytest.raises(VersionExistsError, match="already published"):
        build_variant(store, "tiny-seg@1.0.0", "int8", settings=settings, runs=2)
    with pytest.raises(VariantError, match="itself a variant"):
        build_variant(store, "tiny-seg@1.0.0+int8", "int8", settings=settings, runs=2)

    # The variant's own sheet measures its agreement with the parent; the parent's sheet then
    # finds it for the edge verdict.
    variant_sheet = build_sheet(store, version.ref, settings=settings, runs=2, warmup=0)
    assert variant_sheet.derived_from == "1.0.0"
    assert variant_sheet.agreement is not None and variant_sheet.agreement.parent == "1.0.0"
    assert variant_sheet.graph.main_precision in ("int8", "uint8")
    parent_sheet = build_sheet(store, "tiny-seg@1.0.0", settings=settings, runs=2, warmup=0)
    sheets = SheetStore.from_settings(settings)
    edge = {v.target: v for v in sheets.verdicts(parent_sheet)}["edge"]
    assert edge.verdict in ("yes", "maybe", "no")
    assert any("int8 variant 1.0.0+int8" in r for r in edge.reasons)
    assert any("Dice" in r for r in edge.reasons)


def test_int8_classification_agreement_and_fp16(make_store) -> None:
    store, settings = make_store()
    result = build_variant(store, "tiny-cls@1.0.0", "int8", settings=settings, runs=2)
    agreement = result.agreement
    assert agreement.task == "classification"
    assert agreement.top_label_agreement in (0.0, 1.0)
    assert 0.0 <= agreement.max_probability_difference <= 1.0
    metrics = _metrics(result.version)
    assert "top-label agreement vs 1.0.0" in metrics
    assert "max probability difference vs 1.0.0" in metrics

    fp16 = build_variant(store, "tiny-cls@1.0.0", "fp16", settings=settings, runs=2)
    assert fp16.version.ref == "tiny-cls@1.0.0+fp16"
    graph = onnx.load(str(fp16.version.model_path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.agreement.top_label_agreement == 1.0
    assert fp16.agreement.max_probability_difference < 0.01


def test_ort_format_is_kept_beside_the_store(make_store) -> None:
    store, settings = make_store()
    artifact = build_ort(store, "tiny-seg@1.0.0", settings=settings, runs=2)
    path = settings.home / "variants" / "tiny-seg" / "1.0.0" / "model.ort"
    assert artifact.path == str(path) and path.is_file()
    assert artifact.size_bytes == path.stat().st_size
    assert artifact.agreement.dice == {"spot": 1.0}
    assert load_ort_artifact(settings, "tiny-seg", "1.0.0") == artifact
    assert store.versions("tiny-seg") == ["1.0.0"]  # no store version for the .ort
