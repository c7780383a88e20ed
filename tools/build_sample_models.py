"""Build the sample model store (``model_store/``) from scratch: seeded and reproducible.

    .venv/bin/python tools/build_sample_models.py

Needs the ``build`` extra (torch, nilearn) on top of the runtime dependencies; nothing is
downloaded. Most of the time goes into training the brain U-Net: 800 iterations at about
0.35 s each on an idle 2-core CPU (about 5 minutes), three times longer on a busy shared one.

What it builds, each published through :meth:`medmodels.store.ModelStore.publish` (so the
admission checks run and the SHA-256 of every file is written):

* ``ct-body-lung`` 1.0.0 and 1.1.0: a classical graph written with ``onnx.helper`` (no
  training): HU thresholds, morphological opening/closing with MaxPool, hole filling by
  geodesic reconstruction from the image border (an ONNX ``Loop`` that runs until nothing
  changes). 1.0.0 uses a 7×7 opening, 1.1.0 the fixed 5×5 one. Alias ``production`` → 1.1.0
  (after pointing at 1.0.0 first, so the alias history shows the fix).
* ``brain-tissue`` 1.0.0: a small 2D U-Net trained with torch on axial slices of the MNI152
  2009 template, exported with ``torch.onnx.export(..., dynamo=False)``; alias ``production``.
* ``brain-tissue`` 1.0.0+int8: static QDQ int8 quantisation of 1.0.0 (onnxruntime).

Every metric written into a manifest is measured here, by publishing the model into a scratch
store and running :func:`medmodels.inference.predict` on scans read with
:func:`medmodels.scans.load_scans` (the same path as ``medmodels predict``); the final version
is then published with those figures. ``tests/test_sample_models.py`` measures them again.

The store is built in a temporary folder beside ``model_store/`` and swapped in at the end, so
an interrupted build leaves the old store untouched.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning, which keeps
# training usable on a shared, busy CPU (spinning threads made it ~3x slower here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import onnx
from nibabel.processing import resample_from_to
from onnx import TensorProto, helper, numpy_helper
from scipy import ndimage

from medmodels.inference import clear_sessions, predict
from medmodels.scans import Scan, load_scans
from medmodels.store import Manifest, Metric, ModelStore, ModelVersion

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
PHANTOM_DIR = SAMPLE_DATA / "ct-chest-phantom"
PHANTOM_TRUTH = SAMPLE_DATA / "ct-chest-phantom-truth.npz"
MNI_T1 = SAMPLE_DATA / "mni152-t1-2mm.nii.gz"
DIPY_SLICE = SAMPLE_DATA / "dipy-t1-coronal-slice.nii.gz"

# Fixed so that a rebuild writes identical manifests (the day these versions were built).
CREATED = date(2026, 11, 29)
AUTHORS = ["MedModels sample models (tools/build_sample_models.py)"]
ACTOR = "tools/build_sample_models.py"
SEED = 20261129
OPSET = 17

# ---------------------------------------------------------------------------------------------
# Shared: measuring a version the way `medmodels predict` runs it
# ---------------------------------------------------------------------------------------------


def load_one(path: Path) -> Scan:
    """The single scan in ``path`` (a file or a DICOM folder)."""
    result = load_scans(path).raise_if_empty()
    if len(result.scans) != 1:
        raise RuntimeError(f"{path}: expected one scan, got {len(result.scans)}")
    return result.scans[0]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def predict_labels(scan: Scan, version: ModelVersion) -> np.ndarray:
    """The label volume ``[z, y, x]`` that ``medmodels predict`` gives for ``scan``."""
    labels = predict(scan, version).label_volume
    assert labels is not None
    return labels


class ScratchStore:
    """A throw-away store: publish a candidate (without metrics) to measure it with predict()."""

    def __init__(self, root: Path) -> None:
        self.store = ModelStore(root)

    def measure(
        self, onnx_path: Path, manifest: Manifest, parent: tuple[Path, Manifest] | None = None
    ) -> ModelVersion:
        if parent is not None and manifest.derived_from not in self._versions(manifest.name):
            self.store.publish(parent[0], parent[1])
        return self.store.publish(onnx_path, manifest)

    def _versions(self, name: str) -> list[str]:
        return self.store.versions(name) if name in self.store.models() else []


def with_metrics(manifest: Manifest, metrics: list[Metric]) -> Manifest:
    """``manifest`` with ``metrics`` in its card."""
    data = manifest.to_data()
    data["card"]["metrics"] = [m.model_dump(mode="json", exclude_none=True) for m in metrics]
    return Manifest.from_dict(data)


def rounded(value: float) -> float:
    """Metrics are stored with 6 decimals (the tests compare within 1e-6)."""
    return round(float(value), 6)


# ---------------------------------------------------------------------------------------------
# ct-body-lung: a classical graph
# ---------------------------------------------------------------------------------------------

BODY_HU = -500.0  # tissue: above this
AIR_HU = -400.0  # air (lung): below this
BODY_CLOSING = 5  # closes small gaps in the skin before hole filling
LUNG_CLOSING = 7  # fills vessels (up to ~9 mm across) inside the lung mask
CT_SPACING_MM = 1.5  # kernel sizes are in pixels of this size
GROW_STEPS = 4  # 3×3 growth steps per Loop iteration (then a convergence check)
THIN_WALL_MM = 8.0  # the thin-wall variant of the phantom: outer 8 mm of the body set to air


class _Graph:
    """A tiny builder over onnx.helper: unique names, constants, nodes."""

    def __init__(self, prefix: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.prefix = prefix
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # morphology on {0, 1} float masks [N, 1, H, W]; MaxPool ignores its padding, so the
    # image border behaves like "nearest" extension (no erosion from outside the image)
    def dilate(self, x: str, k: int, hint: str = "dilate") -> str:
        p = k // 2
        return self.op("MaxPool", [x], hint, kernel_shape=[k, k], pads=[p, p, p, p])

    def erode(self, x: str, k: int, hint: str = "erode") -> str:
        neg = self.op("Neg", [x], hint + "_neg")
        return self.op("Neg", [self.dilate(neg, k, hint + "_max")], hint)

    def opening(self, x: str, k: int, hint: str) -> str:
        return self.dilate(self.erode(x, k, hint + "_erode"), k, hint)

    def closing(self, x: str, k: int, hint: str) -> str:
        return self.erode(self.dilate(x, k, hint + "_dilate"), k, hint)


def _reconstruct_outside(g: _Graph, background: str, image: str) -> str:
    """Background (1 = not tissue) 8-connected to the image border: geodesic reconstruction.

    A Loop grows the border pixels of ``background`` by 3×3 dilations (MaxPool) masked by
    ``background``, GROW_STEPS per iteration, until an iteration changes nothing (at most H·W
    iterations). 8-connectivity is safe here because the body mask has just been closed with a
    5×5 square, which leaves no diagonal one-pixel gaps in the skin to leak through.
    Everything else is body, so holes of any size are filled.
    """
    axes_hw = g.const("axes_hw", [2, 3], np.int64)
    inner = g.op(
        "Slice",
        [
            background,
            g.const("start", [1, 1], np.int64),
            g.const("end", [-1, -1], np.int64),
            axes_hw,
        ],
        "inner",
    )
    pads = g.const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)
    inner_only = g.op("Pad", [inner, pads], "inner_only", mode="constant")
    marker = g.op("Sub", [background, inner_only], "border_marker")

    shape = g.op("Shape", [image], "shape")
    h = g.op("Gather", [shape, g.const("i2", 2, np.int64)], "h", axis=0)
    w = g.op("Gather", [shape, g.const("i3", 3, np.int64)], "w", axis=0)
    trips = g.op("Mul", [h, w], "max_trips")
    cond0 = g.const("true", True, np.bool_)

    # loop body: (iteration, cond, m) -> (cond, m')
    b = _Graph("body_")
    m_out = "m_in"
    for step in range(GROW_STEPS):
        grown = b.op("MaxPool", [m_out], "grow", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        last = step == GROW_STEPS - 1
        m_out = "m_out" if last else b.name("masked")
        b.nodes.append(helper.make_node("Mul", [grown, background], [m_out], name=m_out))
    changed = b.op("ReduceMax", [b.op("Sub", [m_out, "m_in"], "delta")], "changed", keepdims=0)
    b.nodes.append(
        helper.make_node("Greater", [changed, b.const("zero", 0.0)], ["cond"], name="cond")
    )
    mask_type = helper.make_tensor_value_info("m_in", TensorProto.FLOAT, ["N", 1, "H", "W"])
    body = helper.make_graph(
        b.nodes,
        "grow_outside",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            mask_type,
        ],
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("m_out", TensorProto.FLOAT, ["N", 1, "H", "W"]),
        ],
        initializer=b.initializers,
    )
    outside = g.name("outside")
    g.nodes.append(
        helper.make_node("Loop", [trips, cond0, marker], [outside], name=outside, body=body)
    )
    return outside


def ct_graph(opening: int) -> onnx.ModelProto:
    """The ct-body-lung graph with a ``opening``×``opening`` opening (see the module docstring).

    image [N, 1, H, W] HU → scores [N, 3, H, W], one-hot: 0 outside, 1 body, 2 lung.
    """
    g = _Graph()
    image = "image"
    tissue = g.op(
        "Cast",
        [g.op("Greater", [image, g.const("body_hu", BODY_HU)])],
        "tissue",
        to=TensorProto.FLOAT,
    )
    # the opening removes the table and anything thinner than the kernel outside the body
    body = g.opening(tissue, opening, "body_open")
    body = g.closing(body, BODY_CLOSING, "body_close")
    one = g.const("one_f", 1.0)
    background = g.op("Sub", [one, body], "background")
    outside = _reconstruct_outside(g, background, image)
    inside = g.op("Sub", [one, outside], "inside")
    air = g.op(
        "Cast", [g.op("Less", [image, g.const("air_hu", AIR_HU)])], "air", to=TensorProto.FLOAT
    )
    lung = g.op("Mul", [air, inside], "air_inside")
    # the same opening cleans the lung mask (slivers, noise), then a closing takes in vessels
    lung = g.opening(lung, opening, "lung_open")
    lung = g.closing(lung, LUNG_CLOSING, "lung_close")
    lung = g.op("Mul", [lung, inside], "lung")
    body_only = g.op("Sub", [inside, lung], "body")
    g.nodes.append(
        helper.make_node("Concat", [outside, body_only, lung], ["scores"], axis=1, name="scores")
    )
    graph = helper.make_graph(
        g.nodes,
        f"ct_body_lung_opening_{opening}x{opening}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="medmodels tools/build_sample_models.py",
        ir_version=9,
    )
    model.doc_string = (
        f"Body and lung masks of CT slices in HU: tissue > {BODY_HU:g} HU, {opening}x{opening} "
        f"opening, {BODY_CLOSING}x{BODY_CLOSING} closing, hole filling, lung = air "
        f"< {AIR_HU:g} HU inside the body, {opening}x{opening} opening, "
        f"{LUNG_CLOSING}x{LUNG_CLOSING} closing. One-hot scores: 0 outside, 1 body, 2 lung."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------------
# brain-tissue: a small U-Net trained on the MNI152 template
# ---------------------------------------------------------------------------------------------

BRAIN_SPACING_MM = 2.0
BRAIN_SIZE = 128  # resize_pad target (pad mode): 256 mm at 2 mm
BRAIN_LABELS = ("background", "CSF", "grey matter", "white matter")
HELD_OUT_EVERY = 5  # every 5th axial slice (z mod 5 == 2) is held out from training
HELD_OUT_PHASE = 2
WIDTHS = (8, 16, 32, 64, 128)  # U-Net channels per level (4 poolings: H, W multiples of 16)
TRAIN_ITERATIONS = 800
BATCH = 16
LEARNING_RATE = 3e-3
CALIBRATION_SLICES = 48


def nilearn_data_dir() -> Path:
    """nilearn's bundled data folder (found without importing nilearn)."""
    spec = find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise SystemExit("nilearn is not installed: pip install -e .[build]")
    return Path(spec.origin).parent / "datasets" / "data"


def brain_reference(workdir: Path) -> tuple[Scan, np.ndarray]:
    """The 2 mm MNI T1 as a Scan and its tissue labels ``[z, y, x]`` on the same grid.

    Label rule: 0 where the (skull-stripped) template T1 is 0; elsewhere 1 + argmax of
    (p_CSF, p_GM, p_WM) with p_CSF = max(0, 1 − p_GM − p_WM), the template's tissue maps
    resampled to the T1's 2 mm grid with linear interpolation. The labels go through
    load_scans too, so they share the Scan's axis order exactly.
    """
    t1_img = nib.load(MNI_T1)
    data = nilearn_data_dir()
    maps = {}
    for tissue in ("gm", "wm"):
        img = nib.load(data / f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz")
        maps[tissue] = resample_from_to(img, t1_img, order=1).get_fdata() / 255.0
    t1 = np.asarray(t1_img.dataobj)
    csf = np.clip(1.0 - maps["gm"] - maps["wm"], 0.0, 1.0)
    labels = (1 + np.argmax(np.stack([csf, maps["gm"], maps["wm"]]), axis=0)).astype(np.uint8)
    labels[t1 == 0] = 0
    path = workdir / "brain-labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, t1_img.affine), path)
    scan = load_one(MNI_T1)
    label_scan = load_one(path)
    if label_scan.shape != scan.shape:
        raise RuntimeError("labels and T1 came back with different shapes")
    return scan, label_scan.array.astype(np.uint8)


def held_out(n_slices: int) -> np.ndarray:
    """Indices of the held-out axial slices."""
    return np.arange(HELD_OUT_PHASE, n_slices, HELD_OUT_EVERY)


def _torch() -> Any:
    import torch

    return torch


def make_unet() -> Any:
    """A 2D U-Net (4 poolings) with per-image intensity normalisation inside forward()."""
    torch = _torch()
    nn = torch.nn

    def block(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            w = WIDTHS
            self.down = nn.ModuleList([block(1, w[0])] + [block(w[i], w[i + 1]) for i in range(4)])
            self.up = nn.ModuleList([block(w[i] + w[i + 1], w[i]) for i in range(4)])
            self.pool = nn.MaxPool2d(2)
            self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
            self.head = nn.Conv2d(w[0], len(BRAIN_LABELS), 1)

        @staticmethod
        def normalise(x: Any) -> Any:
            # z-score over the voxels brighter than the image mean (the head, not the
            # background or padding), per image; MR intensities have no absolute scale
            dims = (1, 2, 3)
            fg = (x > x.mean(dim=dims, keepdim=True)).to(x.dtype)
            count = fg.sum(dim=dims, keepdim=True).clamp(min=1.0)
            mean = (x * fg).sum(dim=dims, keepdim=True) / count
            var = ((x - mean) ** 2 * fg).sum(dim=dims, keepdim=True) / count
            return ((x - mean) / torch.sqrt(var + 1e-6)).clamp(-5.0, 5.0)

        def forward(self, x: Any) -> Any:
            x = self.normalise(x)
            skips = []
            for i, down in enumerate(self.down):
                x = down(x if i == 0 else self.pool(x))
                skips.append(x)
            x = skips.pop()
            for up in reversed(self.up):
                x = up(torch.cat([skips.pop(), self.upsample(x)], dim=1))
            return self.head(x)

    return UNet()


def pad_slices(volume: np.ndarray) -> np.ndarray:
    """Axial slices ``[z, y, x]`` centre-padded to BRAIN_SIZE² (the manifest's resize_pad)."""
    from medmodels.inference import ops

    padded, _ = ops.resize_pad(volume, rows=BRAIN_SIZE, cols=BRAIN_SIZE, mode="pad")
    return padded


def augment(images: Any, labels: Any, fov: Any, gen: Any) -> tuple[Any, Any]:
    """Random flips, rotation ±10°, zoom 0.9–1.1, intensity scale/shift and noise (torch)."""
    torch = _torch()
    f = torch.nn.functional
    n = images.shape[0]

    def uniform(lo: float, hi: float) -> Any:
        return lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen)

    # intensity: only inside the original field of view (padding stays 0, as at inference)
    scale, shift, sigma = uniform(0.6, 1.6), uniform(-25.0, 25.0), uniform(0.0, 8.0)
    noise = torch.randn(images.shape, generator=gen) * sigma
    images = (images * scale + (shift + noise) * fov).clamp(min=0.0)
    # geometry: one affine per image (flip, rotation, zoom), nearest for the labels
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10.0)
    zoom = 0.9 + 0.2 * torch.rand(n, generator=gen)
    flip_x = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=gen) < 0.25, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin * flip_y
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_x, cos * flip_y
    grid = f.affine_grid(theta, list(images.shape), align_corners=False)
    images = f.grid_sample(images, grid, mode="bilinear", align_corners=False)
    labels = f.grid_sample(labels[:, None].float(), grid, mode="nearest", align_corners=False)
    return images, labels[:, 0].long()


def train_unet(
    images: np.ndarray, labels: np.ndarray, fov: np.ndarray, log: Callable[[str], None]
) -> Any:
    """Train the U-Net on padded slices ``[n, 128, 128]`` (fixed seed and iteration count);
    ``fov`` is 1 inside the original field of view, 0 in the padding."""
    torch = _torch()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)  # denormal weights late in training slow the CPU ~5x
    gen = torch.Generator().manual_seed(SEED)
    model = make_unet()
    x_all = torch.from_numpy(images[:, None].astype(np.float32))
    y_all = torch.from_numpy(labels.astype(np.int64))
    fov_all = torch.from_numpy(fov[:, None].astype(np.float32))
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=TRAIN_ITERATIONS, pct_start=0.1
    )
    ce = torch.nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for step in range(TRAIN_ITERATIONS):
        idx = torch.randint(0, x_all.shape[0], (BATCH,), generator=gen)
        x, y = augment(x_all[idx], y_all[idx], fov_all[idx], gen)
        logits = model(x)
        probs = logits.softmax(dim=1)
        onehot = torch.nn.functional.one_hot(y, len(BRAIN_LABELS)).permute(0, 3, 1, 2).float()
        inter = (probs * onehot).sum(dim=(0, 2, 3))
        soft_dice = (2 * inter + 1.0) / (probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3)) + 1.0)
        loss = ce(logits, y) + (1.0 - soft_dice[1:].mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == TRAIN_ITERATIONS - 1:
            log(f"  step {step:5d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.0f} s)")
    model.eval()
    return model


def export_unet(model: Any, path: Path) -> None:
    """ONNX export (TorchScript exporter), one file, dynamic N/H/W, opset 17."""
    torch = _torch()
    dummy = torch.zeros(1, 1, BRAIN_SIZE, BRAIN_SIZE)
    dynamic = {0: "N", 2: "H", 3: "W"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter (dynamo=False) is deliberate; it warns since torch 2.9
        warnings.filterwarnings(
            "ignore", message="You are using the legacy TorchScript", category=DeprecationWarning
        )
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": dynamic, "logits": dynamic},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx_model = onnx.load(str(path))
    onnx_model.producer_name = "medmodels tools/build_sample_models.py (torch.onnx)"
    onnx_model.doc_string = (
        "2D U-Net, axial T1 MR slices (2 mm, 128x128 padded) -> logits for background, CSF, "
        "grey matter, white matter. Per-image z-score normalisation is inside the graph."
    )
    onnx.save(onnx_model, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray, workdir: Path) -> None:
    """Static QDQ int8 (per-channel weights, MinMax calibration on ``calibration`` slices).

    Only the convolutions and the ops between them are quantised; the intensity normalisation
    at the start of the graph stays in float, so any MR intensity scale still works.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, np.ndarray]] = iter(
                {"image": calibration[i : i + 1, None].astype(np.float32)}
                for i in range(calibration.shape[0])
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    prepared = workdir / "brain-prepared.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=["Conv", "Relu", "MaxPool", "Resize", "Concat"],
    )
    # quant_pre_process declares every domain onnxruntime knows (com.microsoft, ...); keep
    # only the ones the nodes use, so the file claims nothing beyond standard ONNX
    model = onnx.load(str(out))
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.save(model, str(out))
    onnx.checker.check_model(str(out), full_check=True)


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------

RESEARCH_ONLY = "Research use only: not a medical device, not for diagnosis or treatment."

CT_PHANTOM = "ct-chest-phantom (sample_data: 64 axial slices, 1.5 mm pixels, 5 mm slices)"
CT_THIN_WALL = (
    f"ct-chest-phantom, thin-wall variant (outer {THIN_WALL_MM:g} mm of the body set to air)"
)


def ct_manifest(version: str, opening: int) -> Manifest:
    """The ct-body-lung manifest for one version (metrics empty until measured)."""
    mm = opening * CT_SPACING_MM
    diag = mm * math.sqrt(2)
    pipeline = (
        f"tissue = HU > {BODY_HU:g}; {opening}×{opening} opening (removes the table and "
        f"anything thinner than {mm:g} mm); {BODY_CLOSING}×{BODY_CLOSING} closing; hole "
        "filling by geodesic reconstruction of the outside air from the image border (an ONNX "
        f"Loop run until it converges); lung = air (HU < {AIR_HU:g}) inside the body, cleaned "
        f"by the same {opening}×{opening} opening and a {LUNG_CLOSING}×{LUNG_CLOSING} closing "
        "that takes in the vessels; body = inside minus lung. Kernels are in pixels of "
        f"{CT_SPACING_MM:g} mm (the scan is resampled in-plane to {CT_SPACING_MM:g} mm first)."
    )
    limitations = [
        f"Lung means air below {AIR_HU:g} HU inside the body outline: air in the trachea, main "
        "bronchi, oesophagus or bowel is labelled lung, and lung filled by disease "
        "(consolidation, effusion, collapse, large masses) is labelled body.",
        f"The {opening}×{opening} opening removes lung narrower than about {mm:g} mm (thin "
        "basal recesses behind the diaphragm domes, the apices), and breaks a chest wall "
        f"thinner than about {mm:g} mm ({diag:.0f} mm where the wall runs diagonally to the "
        "pixel grid): the lung on that slice then joins the outside air and is labelled "
        "outside.",
        "Works slice by slice. A slice whose body outline is open (body cut by the field of "
        "view or touching the image border) cannot be filled and loses its lungs.",
        "The patient must lie clear of the table (air in between). Objects not connected to "
        "the largest body component, such as a thick table or arms lying apart from the "
        "trunk, are labelled outside.",
        "Designed and measured on a synthetic phantom only; never validated on patient scans.",
    ]
    warnings = [RESEARCH_ONLY]
    if version == "1.0.0":
        defect = (
            "KNOWN DEFECT, fixed in 1.1.0: the 7×7 opening erases a chest wall thinner than "
            f"about {mm:g} mm ({diag:.0f} mm where it runs diagonally to the pixel grid) and "
            "then cuts stripes through the lungs: every slice where the wall is broken loses "
            "its lung to the outside air (labelled outside), which shows as missing bands in "
            "coronal and sagittal views. On the sample phantom, whose lower chest wall is 13 mm "
            "thick, it loses the lungs of most lower-chest slices (see the lung Dice and volume "
            f"error). It also erases lung narrower than {mm:g} mm (the thin basal recesses "
            "behind the diaphragm domes)."
        )
        limitations = [defect, limitations[0], *limitations[2:]]
        warnings.append(
            "Superseded by 1.1.0 (production). Use 1.0.0 only to reproduce earlier results."
        )
        changelog = (
            f"First release. {pipeline} Known problem, found after release and fixed in "
            "1.1.0: the 7×7 opening is too large; it erases thin chest walls and cuts stripes "
            "through the lungs, and trims thin lung recesses."
        )
    else:
        changelog = (
            "Fix: the opening is 5×5 (7.5 mm) instead of 7×7 (10.5 mm). 1.0.0's 7×7 opening "
            "erased chest walls thinner than about 10.5 mm, so the lungs of those slices "
            "leaked into the outside air and were lost (stripes through the lungs in coronal "
            "view), and it trimmed thin lung recesses. 5×5 is still large enough to remove "
            "the table (its plates are under 7.5 mm thick). Nothing else changed. "
            f"Pipeline: {pipeline}"
        )
    return Manifest.from_dict(
        {
            "name": "ct-body-lung",
            "version": version,
            "title": "CT body and lung masks (classical, no training)",
            "summary": (
                "Outlines the body and the air-filled lungs on each axial CT slice with fixed "
                "Hounsfield thresholds and morphology: a transparent, training-free baseline."
            ),
            "task": "segmentation",
            "authors": AUTHORS,
            "licence": "Apache-2.0",
            "created": CREATED.isoformat(),
            "changelog": changelog,
            "card": {
                "intended_use": (
                    "Research and teaching: a quick body outline and lung mask on chest CT in "
                    "Hounsfield units, to try the MedModels pipeline and to compare trained "
                    "models against a transparent baseline. Not for diagnosis, treatment "
                    "planning or any clinical decision."
                ),
                "limitations": limitations,
                "training_data": (
                    "None: no training. The thresholds and kernel sizes were chosen by hand "
                    "and checked on the synthetic chest CT phantom in sample_data/ "
                    "(ct-chest-phantom, generated by tools/make_sample_data.py, with its "
                    "known labels in ct-chest-phantom-truth.npz)."
                ),
                "metrics": [],
                "warnings": warnings,
            },
            "input": {
                "modalities": ["CT"],
                "dimensionality": "slice2d",
                "name": "image",
                "shape": ["N", 1, "H", "W"],
                "dtype": "float32",
                "units": "HU",
                "preprocessing": [
                    {
                        "op": "resample_spacing",
                        "spacing_mm": [CT_SPACING_MM, CT_SPACING_MM],
                        "order": 1,
                    }
                ],
                "spacing_range_mm": [0.4, 2.5],
            },
            "output": {
                "names": ["scores"],
                "activation": "none",
                "labels": [
                    {"index": 0, "name": "outside", "colour": "#000000"},
                    {"index": 1, "name": "body", "colour": "#e9c46a"},
                    {"index": 2, "name": "lung", "colour": "#2a9d8f"},
                ],
                "postprocessing": [
                    {"op": "argmax"},
                    {"op": "keep_largest", "n": 1, "labels": [1]},
                ],
            },
        }
    )


def thin_wall(scan: Scan, truth: np.ndarray) -> tuple[Scan, np.ndarray]:
    """The phantom with the outer THIN_WALL_MM of the body (per slice) set to air (-1000 HU)."""
    sx, sy, _ = scan.spacing_mm or (1.0, 1.0, 1.0)
    body = truth > 0
    depth = np.stack([ndimage.distance_transform_edt(s, sampling=(sy, sx)) for s in body])
    strip = body & (depth <= THIN_WALL_MM)
    hu = scan.array.copy()
    hu[strip] = -1000
    labels = truth.copy()
    labels[strip] = 0
    return dataclasses.replace(scan, array=hu), labels


def ct_metrics(version: ModelVersion, cases: list[tuple[str, Scan, np.ndarray]]) -> list[Metric]:
    """Lung Dice, lung volume and its error, body outline Dice, measured with predict()."""
    metrics: list[Metric] = []
    for dataset, scan, truth in cases:
        labels = predict_labels(scan, version)
        voxel_ml = scan.voxel_volume_ml or 0.0
        true_ml = float((truth == 2).sum()) * voxel_ml
        found_ml = float((labels == 2).sum()) * voxel_ml
        metrics.append(
            Metric(
                name="lung Dice",
                value=rounded(dice(labels == 2, truth == 2)),
                dataset=dataset,
                note="against the known lung mask (label 2, vessels included)",
            )
        )
        metrics.append(
            Metric(
                name="lung volume (mL)",
                value=rounded(found_ml),
                dataset=dataset,
                note=f"true lung volume {true_ml:.1f} mL",
            )
        )
        metrics.append(
            Metric(
                name="lung volume error (%)",
                value=rounded(100.0 * (found_ml - true_ml) / true_ml),
                dataset=dataset,
                note="(found − true) / true",
            )
        )
        metrics.append(
            Metric(
                name="body outline Dice",
                value=rounded(dice(labels > 0, truth > 0)),
                dataset=dataset,
                note="labels 1 and 2 against the known body outline (table excluded)",
            )
        )
    return metrics


BRAIN_COLOURS = ("#000000", "#4cc9f0", "#e76f51", "#f1faee")


def brain_dataset(n_held_out: int) -> str:
    return (
        f"MNI152 2009 template (sample_data/mni152-t1-2mm.nii.gz): {n_held_out} held-out "
        f"axial slices (z mod {HELD_OUT_EVERY} = {HELD_OUT_PHASE}), 2 mm, labels from the "
        "template's tissue maps"
    )


def brain_manifest(n_train: int, n_held_out: int, *, int8: bool = False) -> Manifest:
    """The brain-tissue manifest for 1.0.0 or 1.0.0+int8 (metrics empty until measured)."""
    training = (
        "Axial slices of the MNI ICBM152 2009a nonlinear symmetric T1 template (an average of "
        "152 adult brains; sample_data/mni152-t1-2mm.nii.gz, skull-stripped, 2 mm). Labels "
        "from the template's grey- and white-matter probability maps shipped with nilearn "
        "(mni_icbm152_gm/wm_tal_nlin_sym_09a_converted.nii.gz, resampled to the same 2 mm "
        "grid with linear interpolation). Label rule: background where the template T1 is 0; "
        "elsewhere the largest of p(CSF) = max(0, 1 − p(GM) − p(WM)), p(GM) and p(WM). "
        f"Every {HELD_OUT_EVERY}th axial slice ({n_held_out} slices) is held out; the other "
        f"{n_train} slices that contain brain are used for training, centre-padded to "
        f"{BRAIN_SIZE}×{BRAIN_SIZE}, with augmentation (left-right flips, anterior-posterior "
        "flips at 25 %, rotation ±10°, zoom 0.9–1.1, intensity scale 0.6–1.6 and shift, "
        f"Gaussian noise). U-Net with channels {list(WIDTHS)} (BatchNorm, ReLU, nearest "
        f"upsampling), {TRAIN_ITERATIONS} iterations of batch {BATCH}, AdamW with a one-cycle "
        f"learning rate (max {LEARNING_RATE:g}), loss cross-entropy + soft Dice, seed {SEED}, "
        "2 CPU threads. The template is distributed under the ICBM permission notice "
        "reproduced in sample_data/README.md."
    )
    limitations = [
        "Trained on one brain: the MNI152 template, an average of 152 adults. It has never "
        "seen an individual brain, pathology, children, atrophy or another scanner's "
        "contrast. The held-out slices lie 2 mm from training slices of the same template, "
        "so their Dice measures fit to the template, not generalisation.",
        "The template is skull-stripped, so the model has never seen skull, scalp or neck: "
        "expect wrong labels there on images that are not skull-stripped (strip them first).",
        "Axial T1-weighted slices only (trained with rotations up to ±10°); other planes are "
        "out of distribution. Checked by eye only (no ground truth, no metric) on the dipy "
        "sample coronal slice (another subject, skull-stripped, 1 mm pixels): the ventricles "
        "come out as CSF, the central white matter as white matter and the cortex as grey "
        "matter with a thin CSF rim, but thin white-matter branches, notably in the temporal "
        "lobes, are labelled grey.",
        "Labels follow the template's probabilistic tissue maps, not a manual segmentation; "
        "deep grey nuclei and the brainstem are labelled as those maps say.",
        f"Each slice is resampled to {BRAIN_SPACING_MM:g} mm and centre-padded or cropped to "
        f"{BRAIN_SIZE}×{BRAIN_SIZE} ({BRAIN_SIZE * BRAIN_SPACING_MM:g} mm): anything outside "
        "that central field of view is labelled background.",
    ]
    warnings = [
        RESEARCH_ONLY,
        "A demonstration model trained on a single template brain: its labels are not fit for "
        "volumetry or any other measurement.",
    ]
    if int8:
        limitations.append(
            "int8 variant: static QDQ quantisation of 1.0.0 (per-channel int8 weights, int8 "
            f"activations calibrated by MinMax on the {n_train} training slices); the "
            "intensity normalisation stays in float. Its labels differ from 1.0.0 on a small "
            "fraction of voxels (see the agreement metrics)."
        )
    version = "1.0.0+int8" if int8 else "1.0.0"
    changelog = (
        "int8 variant of 1.0.0 for edge devices: onnxruntime quantize_static, QDQ format, "
        "after quant_pre_process."
        if int8
        else "First release."
    )
    return Manifest.from_dict(
        {
            "name": "brain-tissue",
            "version": version,
            "title": "Brain tissue classes on axial T1 MR (small 2D U-Net)"
            + (", int8" if int8 else ""),
            "summary": (
                "Labels each voxel of an axial T1-weighted brain MR slice as background, CSF, "
                "grey matter or white matter. A small U-Net (0.5 M parameters) trained on one "
                "template brain: a demonstration model."
            ),
            "task": "segmentation",
            "authors": AUTHORS,
            "licence": (
                "Apache-2.0 for the code and weights; trained on the MNI ICBM152 2009 template, "
                "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal "
                "Neurological Institute, McGill University (permission notice in "
                "sample_data/README.md)"
            ),
            "derived_from": "1.0.0" if int8 else None,
            "created": CREATED.isoformat(),
            "changelog": changelog,
            "card": {
                "intended_use": (
                    "Demonstration and teaching of a trained segmentation model in MedModels: "
                    "rough CSF / grey / white matter labels on skull-stripped, axial "
                    "T1-weighted brain MR slices. Not for diagnosis, volumetry or any clinical "
                    "decision."
                ),
                "limitations": limitations,
                "training_data": training,
                "metrics": [],
                "warnings": warnings,
            },
            "input": {
                "modalities": ["MR"],
                "dimensionality": "slice2d",
                "name": "image",
                "shape": ["N", 1, "H", "W"],
                "dtype": "float32",
                "units": "MR-arbitrary",
                "preprocessing": [
                    {
                        "op": "resample_spacing",
                        "spacing_mm": [BRAIN_SPACING_MM, BRAIN_SPACING_MM],
                        "order": 1,
                    },
                    {"op": "resize_pad", "rows": BRAIN_SIZE, "cols": BRAIN_SIZE, "mode": "pad"},
                ],
                "spacing_range_mm": [0.5, 3.0],
            },
            "output": {
                "names": ["logits"],
                "activation": "softmax",
                "labels": [
                    {"index": i, "name": name, "colour": colour}
                    for i, (name, colour) in enumerate(
                        zip(BRAIN_LABELS, BRAIN_COLOURS, strict=True)
                    )
                ],
                "postprocessing": [{"op": "argmax"}],
            },
        }
    )


def brain_metrics(
    labels: np.ndarray, truth: np.ndarray, dataset: str, *, reference: np.ndarray | None = None
) -> list[Metric]:
    """Per-class Dice against the template labels; with ``reference`` (the fp32 labels), also
    the label agreement and per-class Dice against it. All on the held-out slices."""
    metrics = [
        Metric(
            name=f"Dice {name}",
            value=rounded(dice(labels == i, truth == i)),
            dataset=dataset,
            note="against the template-derived labels",
        )
        for i, name in enumerate(BRAIN_LABELS)
        if i > 0
    ]
    if reference is None:
        return metrics
    brain = (labels > 0) | (reference > 0)
    metrics.append(
        Metric(
            name="label agreement with 1.0.0 (all voxels)",
            value=rounded(float(np.mean(labels == reference))),
            dataset=dataset,
            note="fraction of voxels with the same label as the fp32 model",
        )
    )
    metrics.append(
        Metric(
            name="label agreement with 1.0.0 (brain voxels)",
            value=rounded(float(np.mean(labels[brain] == reference[brain]))),
            dataset=dataset,
            note="voxels that either model labels as CSF, grey or white matter",
        )
    )
    metrics += [
        Metric(
            name=f"Dice {name} vs 1.0.0",
            value=rounded(dice(labels == i, reference == i)),
            dataset=dataset,
            note="against the fp32 model's labels",
        )
        for i, name in enumerate(BRAIN_LABELS)
        if i > 0
    ]
    return metrics


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, flush=True)


def build_ct(store: ModelStore, scratch: ScratchStore, work: Path) -> dict[str, float]:
    """Publish ct-body-lung 1.0.0 (7×7) and 1.1.0 (5×5); alias production → 1.1.0."""
    phantom = load_one(PHANTOM_DIR)
    truth = np.load(PHANTOM_TRUTH)["labels"]
    if truth.shape != phantom.shape:
        raise RuntimeError(f"phantom truth {truth.shape} does not match the scan {phantom.shape}")
    # The phantom's lower chest has a thin (13 mm) wall: that is where 1.0.0 fails.
    cases = [(CT_PHANTOM, phantom, truth)]
    facts: dict[str, float] = {}
    for version, opening in (("1.0.0", 7), ("1.1.0", 5)):
        path = work / f"ct-body-lung-{version}.onnx"
        onnx.save(ct_graph(opening), str(path))
        draft = ct_manifest(version, opening)
        start = time.perf_counter()
        metrics = ct_metrics(scratch.measure(path, draft), cases)
        seconds = time.perf_counter() - start
        published = store.publish(path, with_metrics(draft, metrics))
        for m in metrics:
            facts[f"{version} {m.name} [{'thin' if m.dataset == CT_THIN_WALL else 'phantom'}]"] = (
                m.value
            )
        log(
            f"ct-body-lung {version}: {path.stat().st_size / 1e3:.1f} kB, measured in "
            f"{seconds:.1f} s; {published.admission.summary() if published.admission else ''}"
        )
    dice_new = facts["1.1.0 lung Dice [phantom]"]
    dice_old = facts["1.0.0 lung Dice [phantom]"]
    error_new = facts["1.1.0 lung volume error (%) [phantom]"]
    if not (dice_new > 0.95 and abs(error_new) < 5.0 and dice_old < dice_new - 0.1):
        raise RuntimeError(f"ct-body-lung does not meet its targets: {facts}")
    store.set_alias(
        "ct-body-lung",
        "production",
        "1.1.0",
        reason="5×5 opening; 1.0.0's 7×7 opening erases thin chest walls",
        actor=ACTOR,
    )
    return facts


def build_brain(store: ModelStore, scratch: ScratchStore, work: Path) -> dict[str, float]:
    """Train, export, measure and publish brain-tissue 1.0.0 and 1.0.0+int8."""
    scan, truth = brain_reference(work)
    n = scan.shape[0]
    test_z = held_out(n)
    train_z = np.array([z for z in range(n) if z not in set(test_z) and truth[z].any()])
    dataset = brain_dataset(len(test_z))
    images = pad_slices(scan.array[train_z].astype(np.float32))
    labels = pad_slices(truth[train_z]).astype(np.int64)
    fov = pad_slices(np.ones(scan.array[train_z].shape, dtype=np.float32))
    log(f"brain-tissue: training on {len(train_z)} slices, {len(test_z)} held out")
    start = time.perf_counter()
    model = train_unet(images, labels, fov, log)
    facts: dict[str, float] = {"training seconds": time.perf_counter() - start}
    facts["parameters"] = float(sum(p.numel() for p in model.parameters()))

    fp32_path = work / "brain-tissue-1.0.0.onnx"
    export_unet(model, fp32_path)
    draft = brain_manifest(len(train_z), len(test_z))
    fp32_labels = predict_labels(scan, scratch.measure(fp32_path, draft))
    metrics = brain_metrics(fp32_labels[test_z], truth[test_z], dataset)
    fp32 = store.publish(fp32_path, with_metrics(draft, metrics))
    store.set_alias("brain-tissue", "production", "1.0.0", reason="first release", actor=ACTOR)
    facts.update({f"1.0.0 {m.name}": m.value for m in metrics})
    log(f"brain-tissue 1.0.0: {fp32_path.stat().st_size / 1e6:.2f} MB; {metrics}")

    int8_path = work / "brain-tissue-1.0.0+int8.onnx"
    quantize_int8(fp32_path, int8_path, images, work)
    draft8 = brain_manifest(len(train_z), len(test_z), int8=True)
    int8_labels = predict_labels(scan, scratch.measure(int8_path, draft8))
    metrics8 = brain_metrics(
        int8_labels[test_z], truth[test_z], dataset, reference=fp32_labels[test_z]
    )
    store.publish(int8_path, with_metrics(draft8, metrics8))
    facts.update({f"1.0.0+int8 {m.name}": m.value for m in metrics8})
    log(f"brain-tissue 1.0.0+int8: {int8_path.stat().st_size / 1e6:.2f} MB; {metrics8}")
    del fp32
    return facts


def swap_in(built: Path, target: Path) -> None:
    """Replace ``target`` by ``built`` (both in the same folder) with two renames."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(built, target)
    if old.exists():
        for path in old.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "model_store", help="store folder to (re)build"
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="medmodels-build-") as tmp:
            work = Path(tmp)
            store = ModelStore(built)
            scratch = ScratchStore(work / "scratch-store")
            facts = build_ct(store, scratch, work)
            facts.update(build_brain(store, scratch, work))
            clear_sessions()
        for lock in built.rglob(".aliases.lock"):
            lock.unlink()
        for name in store.models():
            for version in store.versions(name):
                store.get(f"{name}@{version}")  # verifies every SHA-256
        swap_in(built, out)
    finally:
        if built.exists():
            for path in built.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(built, ignore_errors=True)
    sizes = {
        str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
    }
    log(json.dumps({"facts": facts, "bytes": sizes}, indent=2, ensure_ascii=False))
    log(f"total {sum(sizes.values()) / 1e6:.2f} MB in {out}, {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
