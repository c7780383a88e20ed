"""Publishing: admission checks on real ONNX graphs run by onnxruntime, atomic immutable folders."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from medmodels.errors import AdmissionError, VersionExistsError
from medmodels.store import ModelStore, check_admission, publish, sha256_file

from .helpers import IR_VERSION, OPSET, conv_graph, make_manifest


def failed(report_or_error: object) -> dict[str, str]:
    checks = report_or_error.checks  # type: ignore[attr-defined]
    return {c.name: c.message for c in checks if c.status == "fail"}


def test_publish_writes_a_verified_immutable_folder(
    store: ModelStore, build_model: Callable[..., Path]
) -> None:
    source = build_model()
    mv = publish(source, make_manifest(), store)
    folder = store.root / "lung-mask" / "1.0.0"
    assert mv.folder == folder and mv.ref == "lung-mask@1.0.0"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "manifest.json", "model.onnx"]
    assert mv.model_sha256 == sha256_file(source) == mv.manifest.files["model.onnx"]
    assert set(mv.manifest.files) == {"model.onnx", "README.md"}
    assert mv.manifest_sha256 == sha256_file(folder / "manifest.json")
    readme = (folder / "README.md").read_text()
    assert "# Lung mask" in readme and mv.model_sha256 in readme
    assert not os.stat(folder / "model.onnx").st_mode & stat.S_IWUSR  # read-only
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".publish-")]
    # The admission report is attached, every check passed, the dummy run was timed.
    assert mv.admission is not None and mv.admission.ok
    assert [c.name for c in mv.admission.checks] == [
        "onnx_file",
        "derived_from",
        "external_data",
        "onnx_checker",
        "operator_domains",
        "io_match",
        "dummy_inference",
    ]
    assert mv.admission.inference_seconds is not None
    assert "(1, 1, 32, 32)" in mv.admission.checks[-1].message
    assert store.get("lung-mask@1.0.0").model_sha256 == mv.model_sha256


def test_custom_readme_is_kept(store: ModelStore, build_model: Callable[..., Path]) -> None:
    mv = store.publish(build_model(), make_manifest(), readme="# Hand-written card\n")
    assert mv.readme_path.read_text() == "# Hand-written card\n"
    assert mv.manifest.files["README.md"] == sha256_file(mv.readme_path)


def test_existing_version_is_never_overwritten(
    store: ModelStore, build_model: Callable[..., Path]
) -> None:
    store.publish(build_model(), make_manifest())
    before = sha256_file(store.root / "lung-mask/1.0.0/model.onnx")
    with pytest.raises(
        VersionExistsError, match=r"lung-mask@1\.0\.0 is already published.*1\.0\.1"
    ):
        store.publish(build_model("other.onnx", weight=3.0), make_manifest(title="Changed"))
    assert sha256_file(store.root / "lung-mask/1.0.0/model.onnx") == before


def test_mismatched_input_name_and_dtype_are_refused(
    store: ModelStore, build_model: Callable[..., Path]
) -> None:
    manifest = make_manifest(input={"name": "pixels", "dtype": "float16"})
    with pytest.raises(AdmissionError) as info:
        store.publish(build_model(), manifest)
    message = str(info.value)
    assert "lung-mask@1.0.0 cannot be published: 1 admission check(s) failed" in message
    assert "input.name is 'pixels' but the graph's inputs are ['image']" in message
    assert not (store.root / "lung-mask" / "1.0.0").exists()

    report = check_admission(build_model(), make_manifest(input={"dtype": "float16"}))
    assert "input.dtype is float16 but the graph's input is float32" in failed(report)["io_match"]
    assert report.checks[-1].status == "skip"


def test_fixed_dimension_and_output_names_must_match(build_model: Callable[..., Path]) -> None:
    manifest = make_manifest(input={"shape": [1, 3, 64, 64]}, output={"names": ["probs"]})
    problems = failed(check_admission(build_model(), manifest))["io_match"]
    assert "input.shape[1] is 3 but the graph fixes it to 1" in problems
    assert "output.names lists 'probs' but the graph's outputs are ['logits']" in problems


def test_non_standard_operator_domain_is_refused(
    save_model: Callable[..., Path], store: ModelStore
) -> None:
    model = conv_graph(output_name="mid")
    evil = helper.make_node("Exfiltrate", ["mid"], ["logits"], name="evil", domain="com.evil")
    model.graph.node.append(evil)
    model.graph.output[0].name = "logits"
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    with pytest.raises(AdmissionError) as info:
        store.publish(save_model(model), make_manifest())
    assert "node 'evil' (Exfiltrate) uses 'com.evil'" in str(info.value)
    assert "re-export the model with standard operators only" in str(info.value)


def _external_model(location: str) -> onnx.ModelProto:
    model = conv_graph()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "8"}.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return model


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_refused(
    kind: str, tmp_path: Path, save_model: Callable[..., Path]
) -> None:
    outside = tmp_path / "evil.bin"
    outside.write_bytes(np.array([1.0, -1.0], np.float32).tobytes())
    location = {"dotdot": "../evil.bin", "absolute": str(outside), "symlink": "link.bin"}[kind]
    path = save_model(_external_model(location))
    if kind == "symlink":
        (path.parent / "link.bin").symlink_to(outside)
    report = check_admission(path, make_manifest())
    message = failed(report)["external_data"]
    expected = {"dotdot": "contains '..'", "absolute": "absolute", "symlink": "through a symlink"}
    assert expected[kind] in message and "relative file name" in message
    assert {c.name: c.status for c in report.checks}["dummy_inference"] == "skip"


def test_external_data_inside_the_folder_is_copied_and_hashed(
    tmp_path: Path, store: ModelStore
) -> None:
    source = tmp_path / "src" / "net.onnx"
    source.parent.mkdir()
    onnx.save(
        conv_graph(),
        source,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    mv = store.publish(source, make_manifest())
    assert set(mv.manifest.files) == {"model.onnx", "weights.bin", "README.md"}
    assert (mv.folder / "weights.bin").read_bytes() == (source.parent / "weights.bin").read_bytes()
    assert mv.admission is not None and "weights.bin" in mv.admission.checks[2].message


def test_graph_that_fails_to_run_is_refused(save_model: Callable[..., Path]) -> None:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [7, 3])
    shape = numpy_helper.from_array(np.array([7, 3], np.int64), "shape")
    node = helper.make_node("Reshape", ["image", "shape"], ["logits"])
    graph = helper.make_graph([node], "bad", [x], [y], initializer=[shape])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    report = check_admission(save_model(model), make_manifest())
    assert [c.name for c in report.failed] == ["dummy_inference"]
    message = report.failed[0].message
    assert "could not run the model on zeros of shape (1, 1, 32, 32)" in message
    assert "Check input.shape" in message


def test_unreadable_file_and_missing_parent(tmp_path: Path, store: ModelStore) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 10)
    report = check_admission(junk, make_manifest())
    assert "not an ONNX model" in failed(report)["onnx_file"]
    assert all(c.status == "skip" for c in report.checks[1:])
    assert (
        "no file at"
        in failed(check_admission(tmp_path / "nope.onnx", make_manifest()))["onnx_file"]
    )


def test_variant_needs_its_parent(store: ModelStore, build_model: Callable[..., Path]) -> None:
    variant = make_manifest(version="1.0.0+int8", derived_from="1.0.0")
    with pytest.raises(AdmissionError, match=r"derived_from is 1\.0\.0 but lung-mask has no such"):
        store.publish(build_model(), variant)
    store.publish(build_model(), make_manifest())
    mv = store.publish(build_model(), variant)
    assert mv.manifest.derived_from == "1.0.0"
    assert store.versions("lung-mask") == ["1.0.0+int8", "1.0.0"]
    saved = json.loads((mv.folder / "manifest.json").read_text())
    assert saved["derived_from"] == "1.0.0" and saved["version"] == "1.0.0+int8"
