"""``medmodels models | predict | publish | alias | diff`` as subprocesses on a temporary store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
PHANTOM = ROOT / "sample_data" / "ct-chest-phantom"
MR_FILE = ROOT / "sample_data" / "dicom" / "MR_small.dcm"


def threshold_net(cut: float) -> onnx.ModelProto:
    """[N,1,H,W] HU → logits [N,2,H,W] = (0, x − cut): label 1 where HU > cut."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    w = numpy_helper.from_array(np.array([0.0, 1.0], np.float32).reshape(2, 1, 1, 1), "w")
    b = numpy_helper.from_array(np.array([0.0, -cut], np.float32), "b")
    node = helper.make_node("Conv", ["image", "w", "b"], ["logits"])
    graph = helper.make_graph([node], "threshold", [x], [y], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def manifest(version: str, changelog: str) -> dict[str, Any]:
    return {
        "name": "dense-tissue",
        "version": version,
        "title": "Dense tissue",
        "summary": "Marks voxels denser than a cut-off.",
        "task": "segmentation",
        "authors": ["Tests"],
        "licence": "Apache-2.0",
        "created": "2026-01-01",
        "changelog": changelog,
        "card": {
            "intended_use": "Testing the command line.",
            "limitations": ["A threshold, not a model."],
            "training_data": "None.",
        },
        "input": {
            "modalities": ["CT"],
            "dimensionality": "slice2d",
            "name": "image",
            "shape": ["N", 1, None, None],
            "units": "HU",
        },
        "output": {
            "names": ["logits"],
            "activation": "softmax",
            "labels": [
                {"index": 0, "name": "background", "colour": "#000000"},
                {"index": 1, "name": "dense", "colour": "#ffcc00"},
            ],
            "postprocessing": [{"op": "argmax"}],
        },
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MEDMODELS_STORE": str(tmp_path / "store"),
        "MEDMODELS_HOME": str(tmp_path / "home"),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from medmodels.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
    )


def publish(env: dict[str, str], tmp_path: Path, version: str, cut: float, note: str) -> None:
    model = tmp_path / f"m{version}.onnx"
    model.write_bytes(threshold_net(cut).SerializeToString())
    man = tmp_path / f"m{version}.json"
    man.write_text(json.dumps(manifest(version, note)))
    proc = cli(env, "publish", str(model), str(man))
    assert proc.returncode == 0, proc.stderr
    assert f"published dense-tissue@{version}" in proc.stdout


def test_publish_predict_alias_rollback_diff(env: dict[str, str], tmp_path: Path) -> None:
    publish(env, tmp_path, "1.0.0", 100.0, "First.")
    publish(env, tmp_path, "1.1.0", 500.0, "Higher cut-off.")

    proc = cli(env, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    (model,) = json.loads(proc.stdout)["models"]
    assert model["versions"] == ["1.1.0", "1.0.0"] and model["aliases"] == {}

    assert cli(env, "alias", "set", "dense-tissue", "production", "1.1.0").returncode == 0
    assert cli(env, "alias", "set", "dense-tissue", "production", "1.0.0").returncode == 0
    proc = cli(env, "alias", "rollback", "dense-tissue", "production", "--reason", "regression")
    assert proc.returncode == 0, proc.stderr
    assert "1.0.0 → 1.1.0" in proc.stdout
    history = json.loads(cli(env, "alias", "history", "dense-tissue", "--json").stdout)
    assert [e["to"] for e in history][-3:] == ["1.1.0", "1.0.0", "1.1.0"]

    # bare name → production alias → 1.1.0 (cut-off 500 HU): fewer dense voxels than 1.0.0
    out_prod = json.loads(cli(env, "predict", "dense-tissue", str(PHANTOM), "--json").stdout)
    out_old = json.loads(
        cli(env, "predict", "dense-tissue@1.0.0", str(PHANTOM), "--json", "--no-log").stdout
    )
    assert out_prod["version"] == "1.1.0" and out_old["version"] == "1.0.0"
    dense_new = out_prod["result"]["volumes_ml"]["dense"]
    dense_old = out_old["result"]["volumes_ml"]["dense"]
    assert 0 < dense_new < dense_old
    assert set(out_prod["timings_ms"]) >= {"preprocess", "infer", "postprocess", "total"}

    proc = cli(env, "diff", "dense-tissue@1.0.0", "dense-tissue@1.1.0")
    assert proc.returncode == 0, proc.stderr
    assert "changelog" in proc.stdout and "model.onnx" in proc.stdout


def test_predict_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    publish(env, tmp_path, "1.0.0", 100.0, "First.")
    proc = cli(env, "predict", "nope", str(PHANTOM))
    assert proc.returncode == 3
    assert "dense-tissue" in proc.stderr  # the valid choices are listed
    proc = cli(env, "predict", "dense-tissue@9.9.9", str(PHANTOM))
    assert proc.returncode == 3 and "1.0.0" in proc.stderr
    proc = cli(env, "predict", "dense-tissue", str(MR_FILE))
    assert proc.returncode == 2
    assert "expects CT" in proc.stderr and "MR" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(MR_FILE.read_bytes()[:300])
    proc = cli(env, "predict", "dense-tissue", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_publish_refuses_a_mismatched_manifest(env: dict[str, str], tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(threshold_net(0.0).SerializeToString())
    data = manifest("1.0.0", "First.")
    data["input"]["name"] = "pixels"
    man = tmp_path / "m.json"
    man.write_text(json.dumps(data))
    proc = cli(env, "publish", str(model), str(man))
    assert proc.returncode == 2
    assert "pixels" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "store" / "dense-tissue" / "1.0.0").exists()
