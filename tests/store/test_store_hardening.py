"""Model-store hardening (issue 7, section 4), beyond test_store_publish/test_store_versions:
every byte of every stored file is verified, external data cannot leave the version folder from
any tensor, custom operator domains are found anywhere in the model, the manifest's input must
be what the graph takes, and a model that asks for a huge allocation is bounded.

No model store is committed (``model_store/`` is built by tools), so the models are tiny graphs
made here. Allocation tests run admission in a child process under an address-space cap, so an
unbounded check cannot take the test run (or the machine) down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from medmodels.errors import AdmissionError, IntegrityError, ManifestError
from medmodels.store import ModelStore, check_admission

from .helpers import IR_VERSION, OPSET, conv_graph, make_manifest, manifest_data, save_proto

MiB = 1 << 20


def failed(report: Any) -> dict[str, str]:
    return {c.name: c.message for c in report.checks if c.status == "fail"}


def statuses(report: Any) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def writable_copy(store: ModelStore, dest: Path) -> ModelStore:
    shutil.copytree(store.root, dest, symlinks=True)
    for path in dest.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)
    return ModelStore(dest)


def model_of(nodes: list, inputs: list, outputs: list, **kwargs: Any) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=kwargs.pop("init", []))
    return helper.make_model(
        graph,
        opset_imports=kwargs.pop("opsets", [helper.make_opsetid("", OPSET)]),
        ir_version=IR_VERSION,
        **kwargs,
    )


IMAGE = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
LOGITS = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, "H", "W"])


# -- integrity: every byte ---------------------------------------------------------------------


@pytest.fixture
def with_weights(tmp_path: Path) -> ModelStore:
    """A store holding lung-mask 1.0.0 with its weights in an external file."""
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
    store = ModelStore(tmp_path / "store")
    store.publish(source, make_manifest())
    return store


def test_every_flipped_byte_of_every_stored_file_refuses_the_version(
    with_weights: ModelStore, tmp_path: Path
) -> None:
    copy = writable_copy(with_weights, tmp_path / "copy")
    folder = copy.root / "lung-mask" / "1.0.0"
    copy.get("lung-mask@1.0.0")  # warm the hash cache: a flip must still be seen
    tried = 0
    for name, step in (("model.onnx", 1), ("weights.bin", 1), ("README.md", 7)):
        path = folder / name
        original = path.read_bytes()
        for i in range(0, len(original), step):
            data = bytearray(original)
            data[i] ^= 0x01 << (i % 8)
            path.write_bytes(bytes(data))
            with pytest.raises(IntegrityError, match=rf"{name} has changed"):
                copy.get("lung-mask@1.0.0")
            tried += 1
        path.write_bytes(original)
    assert tried > 200
    assert copy.verify("lung-mask@1.0.0").ok


SAMPLE_STORE = Path(__file__).resolve().parents[2] / "model_store"


def _intact_sample_versions() -> tuple[list[str], str]:
    """Refs of the sample store's versions when the store is there and every version verifies
    (it is built by tools/ and may be absent or stale in a checkout), else why not."""
    if not SAMPLE_STORE.is_dir():
        return [], "no model_store/ in this checkout"
    store = ModelStore(SAMPLE_STORE)
    try:
        refs = [f"{m}@{v}" for m in store.models() for v in store.versions(m)]
        for ref in refs:
            report = store.verify(ref)
            if not report.ok:
                return [], f"model_store/ does not verify: {report.message()[:200]}"
    except (IntegrityError, ManifestError, OSError) as exc:
        return [], f"model_store/ cannot be read: {exc}"[:200]
    return refs, "" if refs else "model_store/ holds no versions"


def test_flipped_bytes_in_the_sample_models_are_refused(tmp_path: Path) -> None:
    refs, why_not = _intact_sample_versions()
    if not refs:
        pytest.skip(why_not)
    copy = writable_copy(ModelStore(SAMPLE_STORE), tmp_path / "copy")
    for ref in refs:
        name, version = ref.split("@")
        model = copy.root / name / version / "model.onnx"
        original = model.read_bytes()
        for i in np.linspace(0, len(original) - 1, 12).astype(int):
            data = bytearray(original)
            data[i] ^= 0x10
            model.write_bytes(bytes(data))
            with pytest.raises(IntegrityError, match=r"model\.onnx has changed"):
                copy.get(ref)
        model.write_bytes(original)
        assert copy.verify(ref).ok


def test_a_flip_that_keeps_size_and_timestamps_is_still_refused(
    with_weights: ModelStore, tmp_path: Path
) -> None:
    copy = writable_copy(with_weights, tmp_path / "copy")
    weights = copy.root / "lung-mask" / "1.0.0" / "weights.bin"
    copy.get("lung-mask@1.0.0")
    before = weights.stat()
    data = bytearray(weights.read_bytes())
    data[0] ^= 0x80
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the change
    assert weights.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(IntegrityError, match=r"weights\.bin has changed"):
        copy.get("lung-mask@1.0.0")


def test_a_symlinked_folder_inside_a_version_is_refused(
    with_weights: ModelStore, tmp_path: Path
) -> None:
    copy = writable_copy(with_weights, tmp_path / "copy")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"\x00" * 8)
    (copy.root / "lung-mask" / "1.0.0" / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(IntegrityError, match=r"sub is a symlink or special file"):
        copy.get("lung-mask@1.0.0")


def test_a_flipped_byte_in_the_manifest_changes_nothing_silently(
    published: ModelStore, tmp_path: Path
) -> None:
    copy = writable_copy(published, tmp_path / "copy")
    path = copy.root / "lung-mask" / "1.0.0" / "manifest.json"
    raw = path.read_bytes()
    at = raw.index(b'"center": -600') + len(b'"center": -')
    data = bytearray(raw)
    data[at] ^= 0x01  # '6' -> '7'
    path.write_bytes(bytes(data))
    with pytest.raises((IntegrityError, ManifestError)):
        copy.get("lung-mask@1.0.0")


# -- external data ---------------------------------------------------------------------------


def _external(tensor: TensorProto, location: str) -> TensorProto:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "8"}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _weights() -> TensorProto:
    return numpy_helper.from_array(np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1), "w")


def _site_initializer(location: str) -> onnx.ModelProto:
    model = conv_graph()
    _external(model.graph.initializer[0], location)
    return model


def _site_constant(location: str) -> onnx.ModelProto:
    """The weights come from a Constant node whose value tensor is external."""
    const = helper.make_node("Constant", [], ["w"], value=_external(_weights(), location))
    conv = helper.make_node("Conv", ["image", "w"], ["logits"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    return model_of([const, conv], [IMAGE], [out])


def _site_subgraph(location: str) -> onnx.ModelProto:
    """The weights are an external initializer of an If branch."""
    w_out = helper.make_tensor_value_info("wb", TensorProto.FLOAT, [2, 1, 1, 1])
    ident = helper.make_node("Identity", ["w_in"], ["wb"])
    branch_init = _external(
        numpy_helper.from_array(np.zeros((2, 1, 1, 1), np.float32), "w_in"), location
    )
    then_g = helper.make_graph([ident], "then", [], [w_out], initializer=[branch_init])
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["w_in"], ["wb"])],
        "else",
        [],
        [w_out],
        initializer=[numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w_in")],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    branch = helper.make_node("If", ["cond"], ["w"], then_branch=then_g, else_branch=else_g)
    conv = helper.make_node("Conv", ["image", "w"], ["logits"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])
    return model_of([branch, conv], [IMAGE], [out], init=[cond])


SITES = {"initializer": _site_initializer, "constant": _site_constant, "subgraph": _site_subgraph}
KINDS = {
    "dotdot": ("../evil.bin", "contains '..'"),
    "nested-dotdot": ("sub/../../evil.bin", "contains '..'"),
    "absolute": ("{outside}", "absolute"),
    "backslash": ("..\\evil.bin", "Windows-style"),
    "drive": ("C:evil.bin", "Windows-style"),
    "symlink": ("link.bin", "through a symlink"),
    "symlinked-folder": ("linked/evil.bin", "through a symlink"),
}
# test_store_publish.py already covers the initializer with '..', an absolute path and a symlink.
COVERED = {("initializer", "dotdot"), ("initializer", "absolute"), ("initializer", "symlink")}
CASES = [(s, k) for s in SITES for k in KINDS if (s, k) not in COVERED]


@pytest.mark.parametrize(("site", "kind"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_external_data_outside_the_folder_is_refused_from_any_tensor(
    site: str, kind: str, tmp_path: Path, save_model: Callable[..., Path]
) -> None:
    outside = tmp_path / "evil.bin"
    outside.write_bytes(np.array([1.0, -1.0], np.float32).tobytes())
    location, expected = KINDS[kind]
    location = location.format(outside=outside)
    path = save_model(SITES[site](location))
    if kind == "symlink":
        (path.parent / "link.bin").symlink_to(outside)
    if kind == "symlinked-folder":
        (path.parent / "linked").symlink_to(tmp_path, target_is_directory=True)
    report = check_admission(path, make_manifest())
    assert expected in failed(report).get("external_data", ""), failed(report)
    assert statuses(report)["dummy_inference"] == "skip"  # onnxruntime never opened it


@pytest.mark.parametrize("kind", ["nul-byte", "too-long", "symlink-loop"])
def test_an_external_data_location_that_breaks_path_handling_is_a_failed_check(
    kind: str, save_model: Callable[..., Path]
) -> None:
    location = {"nul-byte": "w.bin\x00", "too-long": "x" * 5000, "symlink-loop": "loop.bin"}[kind]
    path = save_model(_site_initializer(location))
    (path.parent / "w.bin").write_bytes(b"\x00" * 8)
    (path.parent / "loop.bin").symlink_to("loop.bin")
    report = check_admission(path, make_manifest())
    assert "external_data" in failed(report)


# -- operator domains ------------------------------------------------------------------------


def _domain_in_subgraph() -> onnx.ModelProto:
    out = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1, "H", "W"])
    evil = helper.make_node("Exfiltrate", ["image"], ["b"], name="evil", domain="com.evil")
    then_g = helper.make_graph([evil], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Identity", ["image"], ["b"])], "else", [], [out])
    cond = numpy_helper.from_array(np.array(True), "cond")
    branch = helper.make_node("If", ["cond"], ["logits"], then_branch=then_g, else_branch=else_g)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.evil", 1)]
    return model_of([branch], [IMAGE], [LOGITS], init=[cond], opsets=opsets)


def _domain_contrib_op() -> onnx.ModelProto:
    # com.microsoft ops are executed by onnxruntime itself: still not a standard domain
    gelu = helper.make_node("Gelu", ["image"], ["logits"], name="evil", domain="com.microsoft")
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return model_of([gelu], [IMAGE], [LOGITS], opsets=opsets)


def _domain_local_function() -> onnx.ModelProto:
    body = [helper.make_node("Relu", ["x"], ["y"])]
    fn = helper.make_function(
        "local.fns", "Helper", ["x"], ["y"], body, [helper.make_opsetid("", OPSET)]
    )
    call = helper.make_node("Helper", ["image"], ["logits"], name="evil", domain="local.fns")
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("local.fns", 1)]
    return model_of([call], [IMAGE], [LOGITS], opsets=opsets, functions=[fn])


def _domain_inside_a_standard_function() -> onnx.ModelProto:
    # A model-local function in the standard domain hides a custom node in its body.
    body = [helper.make_node("Exfiltrate", ["x"], ["y"], name="evil", domain="com.evil")]
    fn = helper.make_function(
        "",
        "Helper",
        ["x"],
        ["y"],
        body,
        [helper.make_opsetid("", OPSET), helper.make_opsetid("com.evil", 1)],
    )
    call = helper.make_node("Helper", ["image"], ["logits"], name="call")
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.evil", 1)]
    return model_of([call], [IMAGE], [LOGITS], opsets=opsets, functions=[fn])


def _domain_preview() -> onnx.ModelProto:
    node = helper.make_node(
        "Identity", ["image"], ["logits"], name="evil", domain="ai.onnx.preview"
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.preview", 1)]
    return model_of([node], [IMAGE], [LOGITS], opsets=opsets)


DOMAINS = {
    "if-branch": (_domain_in_subgraph, "com.evil"),
    "com.microsoft": (_domain_contrib_op, "com.microsoft"),
    "local-function": (_domain_local_function, "local.fns"),
    "inside-a-function": (_domain_inside_a_standard_function, "com.evil"),
    "preview-domain": (_domain_preview, "ai.onnx.preview"),
}


@pytest.mark.parametrize("where", list(DOMAINS))
def test_non_standard_operator_domains_are_refused_anywhere(
    where: str, save_model: Callable[..., Path], store: ModelStore
) -> None:
    build, domain = DOMAINS[where]
    path = save_model(build())
    report = check_admission(path, make_manifest())
    message = failed(report).get("operator_domains", "")
    assert f"uses '{domain}'" in message, failed(report)
    assert statuses(report)["dummy_inference"] == "skip"
    with pytest.raises(AdmissionError, match="Standard operator domains only"):
        store.publish(path, make_manifest())
    assert not (store.root / "lung-mask").exists()


# -- manifest versus graph ---------------------------------------------------------------------


def _rank5() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "D", "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, "D", "H", "W"])
    return model_of([helper.make_node("Relu", ["image"], ["logits"])], [x], [y])


def _two_inputs() -> onnx.ModelProto:
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, "H", "W"])
    node = helper.make_node("Mul", ["image", "mask"], ["logits"])
    return model_of([node], [IMAGE, mask], [LOGITS])


def _input_is_an_initializer() -> onnx.ModelProto:
    # 'scale' is listed as a graph input with a default (an overridable constant)
    scale_in = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])
    scale = numpy_helper.from_array(np.array([2.0], np.float32), "scale")
    node = helper.make_node("Mul", ["image", "scale"], ["logits"])
    return model_of([node], [IMAGE, scale_in], [LOGITS], init=[scale])


def _sequence_input() -> onnx.ModelProto:
    seq = helper.make_tensor_sequence_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    pos = numpy_helper.from_array(np.array(0, np.int64), "pos")
    node = helper.make_node("SequenceAt", ["image", "pos"], ["logits"])
    return model_of([node], [seq], [LOGITS], init=[pos])


MISMATCHES = {
    "rank": (_rank5, {}, "input.shape has 4 axes but the graph's input has 5"),
    "unfed-input": (_two_inputs, {}, "also needs inputs ['mask']"),
    "initializer": (
        _input_is_an_initializer,
        {"input": {"name": "scale"}},
        "input.name is 'scale' but the graph's inputs are ['image']",
    ),
    "not-a-tensor": (_sequence_input, {}, "input 'image' is not a tensor"),
}


@pytest.mark.parametrize("what", list(MISMATCHES))
def test_manifest_input_that_is_not_what_the_graph_takes_is_refused(
    what: str, save_model: Callable[..., Path]
) -> None:
    build, changes, expected = MISMATCHES[what]
    report = check_admission(save_model(build()), make_manifest(**changes))
    assert expected in failed(report).get("io_match", ""), failed(report)
    assert statuses(report)["dummy_inference"] == "skip"


def _fixed_conv(channels: int | str = 1, size: int | str = "H") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, size, size])
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    return model_of([helper.make_node("Conv", ["image", "w"], ["logits"])], [x], [y], init=[w])


WINDOW = {"op": "window", "center": -600, "width": 1500}
FEED_MISMATCHES = {
    # what the preprocessing will feed versus what the graph fixes
    "channel-repeat-3-into-1-channel": (
        _fixed_conv(channels=1),
        {
            "input": {
                "shape": ["N", None, None, None],
                "preprocessing": [WINDOW, {"op": "channel_repeat", "n": 3}],
            }
        },
    ),
    "resize-128-into-64": (
        _fixed_conv(size=64),
        {"input": {"preprocessing": [WINDOW, {"op": "resize_pad", "rows": 128, "cols": 128}]}},
    ),
    "any-size-into-64": (_fixed_conv(size=64), {}),
}


@pytest.mark.parametrize("what", list(FEED_MISMATCHES))
def test_manifest_preprocessing_that_cannot_feed_the_graph_is_refused(
    what: str, save_model: Callable[..., Path]
) -> None:
    model, changes = FEED_MISMATCHES[what]
    report = check_admission(save_model(model), make_manifest(**changes))
    assert not report.ok and "io_match" in failed(report), report.summary()


# -- huge allocations ---------------------------------------------------------------------------

CHILD = """
import json, resource, sys, time
# A soft cap only: a limited worker that admission starts may still set its own limit.
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
from pathlib import Path
from medmodels.store import check_admission
from medmodels.store.manifest import Manifest
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
warm, warm_manifest, *pairs = sys.argv[2:]
warm_report = check_admission(Path(warm), Manifest.load(warm_manifest))  # all loaded and warm
out = []
for model, manifest in zip(pairs[::2], pairs[1::2]):
    before, start = rss(), time.monotonic()
    report = check_admission(Path(model), Manifest.load(manifest))
    out.append({
        "growth": rss() - before,
        "seconds": time.monotonic() - start,
        "ok": report.ok,
        "failed": {c.name: c.message for c in report.checks if c.status == "fail"},
    })
print(json.dumps({"warm": warm_report.summary(), "warm_ok": warm_report.ok, "runs": out}))
"""
CHILD_LIMIT = 3 * 1024 * MiB
"""Address space of the child that runs admission (a safety net for this machine)."""
CHILD_ENV = {"MEDMODELS_DECODE_MEMORY_MB": "2048", "MEDMODELS_DECODE_TIMEOUT_S": "30"}
"""Limits for admission's own worker, if it has one (the decode worker's settings)."""


def _reduce_to_logits(big_nodes: list, init: list) -> onnx.ModelProto:
    """``logits = image * sum(big)``: the graph's output depends on the big tensor."""
    nodes = [
        *big_nodes,
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Mul", ["image", "total"], ["logits"]),
    ]
    return model_of(nodes, [IMAGE], [LOGITS], init=init)


def constant_of_shape(shape: list[int]) -> onnx.ModelProto:
    """A constant tensor of ``shape`` float ones (onnxruntime folds it at session creation)."""
    one = numpy_helper.from_array(np.array([1.0], np.float32))
    node = helper.make_node("ConstantOfShape", ["shape"], ["big"], value=one)
    shape_t = numpy_helper.from_array(np.array(shape, np.int64), "shape")
    return _reduce_to_logits([node], [shape_t])


def expand(shape: list[int]) -> onnx.ModelProto:
    """A scalar broadcast to ``shape`` (no initializer holds the data)."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    shape_t = numpy_helper.from_array(np.array(shape, np.int64), "shape")
    node = helper.make_node("Expand", ["one", "shape"], ["big"])
    return _reduce_to_logits([node], [one, shape_t])


def tile(repeats: list[int]) -> onnx.ModelProto:
    """The input tiled ``repeats`` times: allocated during the dummy inference, not before."""
    reps = numpy_helper.from_array(np.array(repeats, np.int64), "reps")
    return _reduce_to_logits([helper.make_node("Tile", ["image", "reps"], ["big"])], [reps])


def loop_forever() -> onnx.ModelProto:
    """A Loop of 2^62 trips adding 1 to a scalar: tiny, and it never ends."""
    scalar = {
        n: helper.make_tensor_value_info(n, t, [])
        for n, t in (
            ("i", TensorProto.INT64),
            ("c_in", TensorProto.BOOL),
            ("v_in", TensorProto.FLOAT),
            ("c_out", TensorProto.BOOL),
            ("v_out", TensorProto.FLOAT),
        )
    }
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c_in"], ["c_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [scalar["i"], scalar["c_in"], scalar["v_in"]],
        [scalar["c_out"], scalar["v_out"]],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    init = [
        numpy_helper.from_array(np.array(1 << 62, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "go"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Loop", ["trips", "go", "zero"], ["total"], body=body),
        helper.make_node("Mul", ["image", "total"], ["logits"]),
    ]
    return model_of(nodes, [IMAGE], [LOGITS], init=init)


def _write(folder: Path, name: str, model: onnx.ModelProto, manifest: dict) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    save_proto(model, folder / f"{name}.onnx")
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    return [str(folder / f"{name}.onnx"), str(folder / f"{name}.json")]


def _start(
    folder: Path, cases: dict[str, tuple[onnx.ModelProto, dict]], **env: str
) -> subprocess.Popen:
    args = _write(folder, "warm", conv_graph(), manifest_data())
    for name, (model, manifest) in cases.items():
        args += _write(folder, name, model, manifest)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(CHILD_LIMIT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CHILD_ENV, **env},
    )


def _results(proc: subprocess.Popen, names: list[str]) -> dict[str, dict]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, f"admission child died ({proc.returncode}): {err[-2000:]}"
    data = json.loads(out.strip().splitlines()[-1])
    # A tiny valid model is admitted in the same conditions: the refusals are not vacuous.
    assert data["warm_ok"], data["warm"]
    return dict(zip(names, data["runs"], strict=True))


PB = [1 << 20, 1 << 20, 1 << 10]  # 2^50 floats: 4 PiB
IMPOSSIBLE = {
    "constant-of-shape-4PiB": (constant_of_shape(PB), manifest_data()),
    "expand-4PiB": (expand(PB), manifest_data()),
    "tile-16TiB-at-run": (tile([1, 1, 1 << 16, 1 << 16]), manifest_data()),
    "manifest-dummy-input-4TiB": (
        conv_graph(),
        manifest_data(input={"shape": [1, 1, 1 << 20, 1 << 20]}),
    ),
}
# Each asks for 32-256 MiB: small enough to run under this test's safety net, and more than a
# dummy inference of a tiny graph has any business allocating in the caller's process.
MODERATE = {
    "constant-of-shape-256MiB-at-creation": (constant_of_shape([64, 1024, 1024]), manifest_data()),
    "tile-256MiB-at-run": (tile([1, 1, 256, 256]), manifest_data()),
    # 32 MiB of zeros, but onnxruntime's Conv makes the caller grow by ~0.5 GiB
    "manifest-dummy-input-32MiB": (
        conv_graph(),
        manifest_data(input={"shape": [1, 1, 2048, 4096]}),
    ),
}


@pytest.fixture(scope="module")
def allocation_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Admission of every allocation case (and an endless loop), in children started together
    (they take a while)."""
    root = tmp_path_factory.mktemp("alloc")
    impossible = _start(root / "impossible", IMPOSSIBLE)
    moderate = {name: _start(root / name, {name: case}) for name, case in MODERATE.items()}
    endless = _start(
        root / "loop",
        {"loop-forever": (loop_forever(), manifest_data())},
        MEDMODELS_DECODE_TIMEOUT_S="3",
    )
    results = _results(impossible, list(IMPOSSIBLE))
    for name, proc in moderate.items():
        results.update(_results(proc, [name]))
    results.update(_results(endless, ["loop-forever"]))
    return results


@pytest.mark.parametrize("case", list(IMPOSSIBLE))
def test_a_model_asking_for_more_memory_than_exists_is_refused_cleanly(
    case: str, allocation_runs: dict[str, dict]
) -> None:
    run = allocation_runs[case]
    assert not run["ok"]
    assert list(run["failed"]) == ["dummy_inference"], run["failed"]
    message = run["failed"]["dummy_inference"]
    assert "could not run the model" in message or "needed more than" in message
    assert run["growth"] < 64 * MiB


@pytest.mark.parametrize("case", list(MODERATE))
def test_admission_does_not_spend_the_models_memory_in_the_calling_process(
    case: str, allocation_runs: dict[str, dict]
) -> None:
    run = allocation_runs[case]
    # The safety net (CHILD_LIMIT) must not be what stopped the allocation: that would hide
    # the caller paying for it.
    assert "allocate" not in run["failed"].get("dummy_inference", ""), run["failed"]
    assert run["growth"] < 128 * MiB, f"the caller grew by {run['growth'] / MiB:.0f} MiB"


def test_a_model_that_never_finishes_is_stopped_at_the_time_limit(
    allocation_runs: dict[str, dict],
) -> None:
    run = allocation_runs["loop-forever"]
    assert not run["ok"] and list(run["failed"]) == ["dummy_inference"], run["failed"]
    assert "longer than the time limit" in run["failed"]["dummy_inference"]
    assert run["seconds"] < 30  # MEDMODELS_DECODE_TIMEOUT_S=3 in that child
