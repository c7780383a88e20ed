"""predict(): real onnxruntime sessions on tiny published models, results checked by hand."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from medmodels.errors import ScanMismatchError
from medmodels.inference import check_fit, clear_sessions, fit_problems, predict
from medmodels.scans.types import Scan
from medmodels.store import Manifest, ModelStore


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def sign_net() -> onnx.ModelProto:
    """[N,1,H,W] → logits [N,2,H,W] = (−x, x): argmax is 1 exactly where x > 0."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    w = numpy_helper.from_array(np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1, 1), "w")
    node = helper.make_node("Conv", ["image", "w"], ["logits"])
    graph = helper.make_graph([node], "sign", [x], [y], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def mean_net() -> onnx.ModelProto:
    """[N,1,H,W] → logits [N,2] = (−m, m) with m the image mean."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["m"], keepdims=1),
        helper.make_node("Flatten", ["m"], ["mf"], axis=1),
        helper.make_node("Neg", ["mf"], ["neg"]),
        helper.make_node("Concat", ["neg", "mf"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "mean", [x], [y], initializer=[axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def manifest(**changes: Any) -> Manifest:
    data: dict[str, Any] = {
        "name": "blob-finder",
        "version": "1.0.0",
        "title": "Blob finder",
        "summary": "Marks voxels above 100 HU.",
        "task": "segmentation",
        "authors": ["Tests"],
        "licence": "Apache-2.0",
        "created": "2026-01-01",
        "changelog": "First.",
        "card": {
            "intended_use": "Testing.",
            "limitations": ["A test model."],
            "training_data": "None.",
        },
        "input": {
            "modalities": ["CT"],
            "dimensionality": "slice2d",
            "name": "image",
            "shape": ["N", 1, None, None],
            "dtype": "float32",
            "units": "HU",
            "preprocessing": [{"op": "scale_offset", "scale": 1.0, "offset": -100.0}],
        },
        "output": {
            "names": ["logits"],
            "activation": "softmax",
            "labels": [
                {"index": 0, "name": "background", "colour": "#000000"},
                {"index": 1, "name": "blob", "colour": "#ff0000"},
            ],
            "postprocessing": [{"op": "argmax"}],
        },
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[key] = value
    return Manifest.from_dict(data)


def ct_scan(array: np.ndarray, spacing=(0.5, 0.5, 2.0), modality: str = "CT") -> Scan:
    kind = "volume" if array.shape[0] > 1 else "slice"
    return Scan(
        array=array,
        spacing_mm=spacing,
        affine=np.diag([*spacing, 1.0]) if spacing else None,
        modality=modality,
        kind=kind,
        summary={"modality": modality},
    )


@pytest.fixture(autouse=True)
def _fresh_sessions():
    clear_sessions()
    yield
    clear_sessions()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


def blobs() -> np.ndarray:
    a = np.full((3, 8, 8), -50, np.int16)
    a[0:2, 1:3, 1:3] = 500  # 8 voxels
    a[2, 6, 6] = 300  # 1 voxel, a separate component
    return a


def test_segmentation_counts_and_volumes(store: ModelStore, tmp_path: Path) -> None:
    mv = store.publish(_save(sign_net(), tmp_path / "m.onnx"), manifest())
    pred = predict(ct_scan(blobs()), mv)
    expected = (blobs() > 100).astype(np.uint8)
    np.testing.assert_array_equal(pred.label_volume, expected)
    blob = pred.labels[1]
    assert blob.voxels == 9
    assert blob.volume_ml == pytest.approx(9 * 0.5 * 0.5 * 2.0 / 1000)
    assert blob.largest_slice == 0
    assert pred.volumes_ml["background"] == pytest.approx((3 * 64 - 9) * 0.0005)
    assert pred.model_sha256 == mv.model_sha256 and pred.version == "1.0.0"
    assert pred.provider == "CPUExecutionProvider"
    assert set(pred.timings_ms) == {"load", "preprocess", "infer", "postprocess", "total"}
    assert pred.timings_ms["total"] >= pred.timings_ms["infer"] >= 0
    out = pred.to_dict()
    assert out["result"]["volumes_ml"]["blob"] == pytest.approx(0.0045)


def test_postprocessing_keep_largest_and_geometry_steps_round_trip(
    store: ModelStore, tmp_path: Path
) -> None:
    m = manifest(
        input__preprocessing=[
            {"op": "scale_offset", "scale": 1.0, "offset": -100.0},
            {"op": "resample_spacing", "spacing_mm": [0.25, 0.25]},
            {"op": "resize_pad", "rows": 20, "cols": 20, "mode": "pad"},
        ],
        output__postprocessing=[{"op": "argmax"}, {"op": "keep_largest", "n": 1}],
    )
    mv = store.publish(_save(sign_net(), tmp_path / "m.onnx"), m)
    pred = predict(ct_scan(blobs()), mv)
    expected = (blobs() > 100).astype(np.uint8)
    expected[2, 6, 6] = 0  # the single voxel is not the largest component
    assert pred.label_volume is not None and pred.label_volume.shape == (3, 8, 8)
    np.testing.assert_array_equal(pred.label_volume, expected)
    assert pred.labels[1].voxels == 8


def test_batches_of_slices_give_the_same_result_as_one_call(
    store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict_module = importlib.import_module("medmodels.inference.predict")

    rng = np.random.default_rng(0)
    vol = rng.integers(-300, 300, size=(37, 6, 5)).astype(np.int16)
    mv = store.publish(_save(sign_net(), tmp_path / "m.onnx"), manifest())
    whole = predict(ct_scan(vol), mv).label_volume
    monkeypatch.setattr(predict_module, "BATCH_SLICES", 4)
    batched = predict(ct_scan(vol), mv).label_volume
    np.testing.assert_array_equal(whole, batched)
    np.testing.assert_array_equal(whole, (vol > 100).astype(np.uint8))


def test_classification_probability_and_threshold(store: ModelStore, tmp_path: Path) -> None:
    m = manifest(
        name="mean-classifier",
        task="classification",
        input__modalities=["OT"],
        input__dimensionality="image2d",
        input__units="0-255",
        input__preprocessing=[{"op": "scale_offset", "scale": 0.01, "offset": 0.0}],
        output__labels=[
            {"index": 0, "name": "normal", "colour": "#00ff00"},
            {"index": 1, "name": "abnormal", "colour": "#ff0000"},
        ],
        output__threshold=0.7,
        output__postprocessing=[],
    )
    mv = store.publish(_save(mean_net(), tmp_path / "c.onnx"), m)
    image = np.arange(16, dtype=np.int16).reshape(1, 4, 4) * 10  # mean 75 → m = 0.75
    scan = Scan(image, None, None, "OT", "image", {"modality": "OT"})
    pred = predict(scan, mv)
    p = 1 / (1 + math.exp(-1.5))
    assert pred.probabilities["abnormal"] == pytest.approx(p, rel=1e-5)
    assert pred.probabilities["normal"] == pytest.approx(1 - p, rel=1e-5)
    assert pred.top_label == "abnormal"
    assert pred.decision is (p >= 0.7)
    assert predict(scan, mv, threshold=0.9).decision is False
    assert pred.label_volume is None


def test_mismatch_reasons_are_plain_and_complete(store: ModelStore, tmp_path: Path) -> None:
    m = manifest(input__spacing_range_mm=[0.4, 1.0])
    mv = store.publish(_save(sign_net(), tmp_path / "m.onnx"), m)
    mr = ct_scan(blobs(), spacing=(2.0, 2.0, 2.0), modality="MR")
    reasons = fit_problems(mr, m)
    assert any("expects CT in Hounsfield units; the upload is MR" in r for r in reasons)
    assert any("2.00 × 2.00 mm" in r for r in reasons)
    with pytest.raises(ScanMismatchError, match="the upload is MR"):
        predict(mr, mv)
    check_fit(ct_scan(blobs()), m)  # fits: no exception
    image = Scan(blobs()[:1], None, None, "CT", "image", {"modality": "CT"})
    assert any("pixel spacing" in r for r in fit_problems(image, m))


def test_sessions_are_reused(store: ModelStore, tmp_path: Path) -> None:
    from medmodels.inference.runtime import get_session

    mv = store.publish(_save(sign_net(), tmp_path / "m.onnx"), manifest())
    first, created = get_session(mv.model_path, mv.model_sha256)
    again, created_again = get_session(mv.model_path, mv.model_sha256)
    assert created and not created_again and first is again
