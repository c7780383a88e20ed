"""The closed list of pre- and postprocessing steps a model manifest can declare.

Pure numpy/scipy functions: no I/O, no onnxruntime, no validation models. Options are
keyword-only. Images come back as ``float32``; label maps keep their integer dtype. No function
modifies its input; every result is a new array. A bad option raises :class:`ValueError`
(the manifest is validated before these run, so this only catches programming errors).

Axis conventions (see :mod:`medmodels.scans.types`): a volume is ``[z, y, x]``, a single slice
``[y, x]``; spacings are given in ``(x, y, z)`` order. "In-plane" means the last two axes.

Resampling uses :func:`scipy.ndimage.zoom` with ``grid_mode=True`` and ``mode="nearest"``: the
full extent of the voxels (edge to edge) is preserved, so ``n`` voxels of spacing ``s`` become
``m`` voxels of spacing ``s·n/m``, and values beyond the edge repeat the edge voxel. Voxel
``j`` of the output samples input coordinate ``(j + 0.5)·n/m − 0.5``.

Connected components (``keep_largest``, ``remove_small``) use full connectivity: 26 neighbours
in 3D, 8 in 2D (:func:`scipy.ndimage.generate_binary_structure` with rank = ndim).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage, special

FloatArray = npt.NDArray[np.float32]
Array = npt.NDArray[Any]

__all__ = [
    "ResizePadBox",
    "argmax",
    "channel_repeat",
    "clip",
    "fill_holes",
    "keep_largest",
    "label_volumes_ml",
    "largest_slice",
    "minmax",
    "remove_small",
    "resample_spacing",
    "resample_to_shape",
    "resize_pad",
    "scale_offset",
    "sigmoid",
    "softmax",
    "threshold",
    "undo_resize_pad",
    "window",
    "zscore",
]


# --------------------------------------------------------------------------- preprocessing


def _as_float(a: npt.ArrayLike) -> FloatArray:
    return np.asarray(a, dtype=np.float32)


def window(a: npt.ArrayLike, *, center: float, width: float) -> FloatArray:
    """Intensity window (any shape): ``(clip(a, c − w/2, c + w/2) − (c − w/2)) / w`` ∈ [0, 1]."""
    if not width > 0:
        raise ValueError(f"window width must be > 0, got {width}")
    lo = center - width / 2.0
    out = np.clip(_as_float(a), lo, center + width / 2.0)
    out -= np.float32(lo)
    out /= np.float32(width)
    return out


def clip(a: npt.ArrayLike, *, min: float, max: float) -> FloatArray:
    """Clamp values (any shape): ``minimum(maximum(a, min), max)``."""
    if max < min:
        raise ValueError(f"clip needs min <= max, got min={min}, max={max}")
    return np.clip(_as_float(a), min, max)


def zscore(
    a: npt.ArrayLike,
    *,
    mean: float | None = None,
    std: float | None = None,
    mask_above: float | None = None,
) -> FloatArray:
    """Standardise (any shape): ``(a − mean) / std``.

    A statistic that is None is computed over the whole array, or only over voxels
    ``> mask_above`` when given (falling back to all voxels when none is above). The result
    covers every voxel. A std of 0 (constant image, or given as 0) divides by 1 instead.
    """
    x = _as_float(a)
    if mean is None or std is None:
        sel = x if mask_above is None else x[x > mask_above]
        if sel.size == 0:
            sel = x
        if mean is None:
            mean = float(np.mean(sel, dtype=np.float64)) if sel.size else 0.0
        if std is None:
            std = float(np.std(sel, dtype=np.float64)) if sel.size else 0.0
    if std == 0:
        std = 1.0
    out = x - np.float32(mean)
    out /= np.float32(std)
    return out


def minmax(a: npt.ArrayLike) -> FloatArray:
    """Scale the whole array to [0, 1]: ``(a − min(a)) / (max(a) − min(a))``; constant → zeros."""
    x = _as_float(a)
    if x.size == 0:
        return x.copy()
    lo, hi = float(x.min()), float(x.max())
    out = x - np.float32(lo)
    if hi > lo:
        out /= np.float32(hi - lo)
    else:
        out[...] = 0.0
    return out


def scale_offset(a: npt.ArrayLike, *, scale: float, offset: float) -> FloatArray:
    """Linear rescale (any shape): ``a·scale + offset``."""
    out = _as_float(a) * np.float32(scale)
    out += np.float32(offset)
    return out


def _check_order(order: int) -> None:
    if order not in range(6):
        raise ValueError(f"interpolation order must be 0..5, got {order}")


def _zoom_to_shape(a: Array, shape: Sequence[int], order: int) -> Array:
    """``a`` resampled to exactly ``shape`` (see module docstring); order 0 keeps the dtype."""
    _check_order(order)
    out_dtype = a.dtype if order == 0 else np.dtype(np.float32)
    shape = tuple(int(n) for n in shape)
    if len(shape) != a.ndim:
        raise ValueError(f"target shape {shape} has {len(shape)} axes, the array has {a.ndim}")
    if any(n < 1 for n in shape):
        raise ValueError(f"target shape must be >= 1 on every axis, got {shape}")
    if shape == a.shape:
        return a.astype(out_dtype, copy=True)
    if a.size == 0:
        raise ValueError("cannot resample an empty array")
    src = a if order == 0 else a.astype(np.float32, copy=False)
    factors = [n_out / n_in for n_out, n_in in zip(shape, a.shape, strict=True)]
    out: Array = ndimage.zoom(
        src, factors, output=out_dtype, order=order, mode="nearest", grid_mode=True
    )
    return out


def resample_spacing(
    a: npt.ArrayLike,
    spacing_xyz: Sequence[float],
    *,
    target_xyz: Sequence[float | None],
    order: int = 1,
) -> tuple[Array, tuple[float, ...]]:
    """Resample a volume ``[z, y, x]`` or slice ``[y, x]`` to a target spacing in mm.

    ``spacing_xyz``/``target_xyz`` are in ``(x, y, z)`` order, length 3 (z ignored for a 2D
    slice) or equal to ``a.ndim``; a target of None keeps that axis. Each axis gets
    ``m = max(1, floor(n·s/t + 0.5))`` voxels and the returned spacing is the exact one,
    ``s·n/m`` (same length as ``spacing_xyz``). order 0 (nearest, for label maps) keeps the
    dtype; other orders return float32.
    """
    arr = np.asarray(a)
    if arr.ndim not in (2, 3):
        raise ValueError(f"resample_spacing needs a [z, y, x] or [y, x] array, got {arr.ndim}D")
    if len(spacing_xyz) not in (3, arr.ndim) or len(target_xyz) != len(spacing_xyz):
        raise ValueError(
            f"spacing_xyz ({len(spacing_xyz)} values) and target_xyz ({len(target_xyz)} values) "
            f"must both have 3 or {arr.ndim} values"
        )
    shape = list(arr.shape)
    new_spacing = [float(s) for s in spacing_xyz]
    for axis in range(arr.ndim):
        i = arr.ndim - 1 - axis  # array axes are [.., y, x]; spacings (x, y, ..)
        target = target_xyz[i]
        if target is None:
            continue
        s = float(spacing_xyz[i])
        if not (s > 0 and target > 0 and math.isfinite(s) and math.isfinite(target)):
            raise ValueError(f"spacings must be finite and > 0, got {s} → {target}")
        n = arr.shape[axis]
        m = max(1, math.floor(n * s / target + 0.5))
        shape[axis] = m
        new_spacing[i] = s * n / m
    return _zoom_to_shape(arr, shape, order), tuple(new_spacing)


def resample_to_shape(a: npt.ArrayLike, shape: Sequence[int], *, order: int) -> Array:
    """Resample any array to exactly ``shape`` (same number of axes; equal sizes are untouched).

    Used to map a prediction back onto the scan grid: order 0 (nearest) for label maps keeps
    the dtype, order 1 for probabilities returns float32.
    """
    return _zoom_to_shape(np.asarray(a), shape, order)


@dataclass(frozen=True)
class ResizePadBox:
    """How :func:`resize_pad` changed the last two axes, so :func:`undo_resize_pad` can invert it.

    ``offset`` is, per in-plane axis (rows, cols), where index 0 of the original landed in the
    output: positive when the original was padded, negative when it was cropped, ``(0, 0)``
    for ``mode="resize"``. Output index = original index + offset.
    """

    mode: Literal["resize", "pad"]
    original: tuple[int, int]
    size: tuple[int, int]
    offset: tuple[int, int]


def _overlap(offset: int, n_src: int, n_dst: int) -> tuple[slice, slice]:
    """Source and destination slices where ``dst = src + offset`` lies inside both arrays."""
    start = max(0, -offset)
    stop = min(n_src, n_dst - offset)
    if stop <= start:
        return slice(0, 0), slice(0, 0)
    return slice(start, stop), slice(start + offset, stop + offset)


def _centre_offset(n: int, m: int) -> int:
    # Pad: the odd extra voxel goes after; crop: the odd extra voxel is removed from the end.
    return (m - n) // 2 if m >= n else -((n - m) // 2)


def resize_pad(
    a: npt.ArrayLike, *, rows: int, cols: int, mode: Literal["resize", "pad"]
) -> tuple[FloatArray, ResizePadBox]:
    """Bring the last two axes of ``[y, x]`` or ``[z, y, x]`` (per slice) to ``rows × cols``.

    ``mode="resize"``: linear interpolation (zoom, order 1) of each slice. ``mode="pad"``:
    centred zero-padding and/or centred cropping per axis, without interpolation; for an odd
    difference the extra row/column is padded or cropped at the end. Returns float32 and the
    :class:`ResizePadBox` that :func:`undo_resize_pad` needs.
    """
    arr = np.asarray(a)
    if arr.ndim < 2:
        raise ValueError(f"resize_pad needs at least 2 axes, got {arr.ndim}")
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows}×{cols}")
    r, c = int(arr.shape[-2]), int(arr.shape[-1])
    lead = arr.shape[:-2]
    if mode == "resize":
        out = _zoom_to_shape(arr.astype(np.float32, copy=False), (*lead, rows, cols), 1)
        return out, ResizePadBox("resize", (r, c), (rows, cols), (0, 0))
    if mode == "pad":
        offset = (_centre_offset(r, rows), _centre_offset(c, cols))
        src_r, dst_r = _overlap(offset[0], r, rows)
        src_c, dst_c = _overlap(offset[1], c, cols)
        padded = np.zeros((*lead, rows, cols), dtype=np.float32)
        padded[..., dst_r, dst_c] = arr[..., src_r, src_c]
        return padded, ResizePadBox("pad", (r, c), (rows, cols), offset)
    raise ValueError(f"resize_pad mode must be 'resize' or 'pad', got {mode!r}")


def undo_resize_pad(a: npt.ArrayLike, box: ResizePadBox, *, order: int = 0) -> Array:
    """Map a model output ``[..., rows, cols]`` back to the original in-plane size.

    ``resize``: resampled back with ``order`` (0 = nearest for label maps, keeps the dtype;
    1 for probabilities, float32). ``pad``: the padding is cut off and cropped-away borders
    come back as 0 (background); the dtype is kept and ``order`` is not used.
    """
    arr = np.asarray(a)
    if arr.ndim < 2 or tuple(arr.shape[-2:]) != box.size:
        raise ValueError(
            f"expected an array ending in {box.size[0]}×{box.size[1]}, got shape {arr.shape}"
        )
    lead = arr.shape[:-2]
    if box.mode == "resize":
        return _zoom_to_shape(arr, (*lead, *box.original), order)
    r, c = box.original
    src_r, dst_r = _overlap(-box.offset[0], box.size[0], r)
    src_c, dst_c = _overlap(-box.offset[1], box.size[1], c)
    out = np.zeros((*lead, r, c), dtype=arr.dtype)
    out[..., dst_r, dst_c] = arr[..., src_r, src_c]
    return out


def channel_repeat(a: npt.ArrayLike, *, n: int) -> FloatArray:
    """Insert a channel axis before the last two and repeat: ``[z, y, x] → [z, n, y, x]``.

    A batch of slices becomes ``[batch, channel, rows, cols]`` (NCHW); a single ``[y, x]`` slice
    becomes ``[n, y, x]``. Each channel is a copy of the image (e.g. grey → 3-channel "RGB").
    """
    arr = _as_float(a)
    if arr.ndim < 2:
        raise ValueError(f"channel_repeat needs at least 2 axes, got {arr.ndim}")
    if n < 1:
        raise ValueError(f"channel count n must be >= 1, got {n}")
    return np.repeat(np.expand_dims(arr, axis=-3), n, axis=-3)


# -------------------------------------------------------------------------- postprocessing


def softmax(logits: npt.ArrayLike, *, axis: int) -> FloatArray:
    """Probabilities along ``axis``: ``exp(x − max) / Σ exp(x − max)`` (no overflow)."""
    x = _as_float(logits)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """Elementwise logistic ``1 / (1 + exp(−x))`` via :func:`scipy.special.expit` (no overflow)."""
    out: FloatArray = special.expit(_as_float(x))
    return out


def argmax(probs: npt.ArrayLike, *, axis: int = 0) -> npt.NDArray[np.uint8]:
    """Label map: index of the largest value along ``axis`` (ties → lowest index), as uint8."""
    p = np.asarray(probs)
    if p.shape[axis] > 256:
        raise ValueError(f"argmax gives uint8 labels: at most 256 classes, got {p.shape[axis]}")
    return np.argmax(p, axis=axis).astype(np.uint8)


def threshold(probs: npt.ArrayLike, *, value: float) -> npt.NDArray[np.uint8]:
    """Binary mask for a single-channel sigmoid output: ``probs >= value`` as uint8 (1/0)."""
    return (np.asarray(probs) >= value).astype(np.uint8)


def _check_labels(labels: npt.ArrayLike) -> Array:
    arr = np.asarray(labels)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"a label map must have an integer dtype, got {arr.dtype}")
    return arr


def _labels_to_apply(labels: Array, labels_to_apply: Iterable[int] | None) -> list[int]:
    """The labels to process: the given ones, or every non-zero label present, ascending."""
    if labels_to_apply is None:
        return [int(v) for v in np.unique(labels) if v != 0]
    chosen = sorted({int(v) for v in labels_to_apply})
    if 0 in chosen:
        raise ValueError("label 0 is background and cannot be processed as a label")
    return chosen


def _components(mask: Array) -> tuple[Array, npt.NDArray[np.intp]]:
    """Connected components of ``mask`` with full connectivity, and each one's voxel count.

    Component ``k`` (1-based) has ``sizes[k - 1]`` voxels; components are numbered in the order
    their first voxel appears in a C-order scan.
    """
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    comps, count = ndimage.label(mask, structure=structure)
    return comps, count_values(comps, count + 1)[1:]


def count_values(a: Array, length: int) -> npt.NDArray[np.intp]:
    """``np.bincount(a.ravel(), minlength=length)`` one slice at a time, so the int64 copy
    that bincount makes of its input is one slice, not the whole volume."""
    counts = np.zeros(length, dtype=np.intp)
    planes = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    for plane in planes:
        counts += np.bincount(plane, minlength=length)[:length]
    return counts


def keep_largest(
    labels: npt.ArrayLike, *, n: int = 1, labels_to_apply: Iterable[int] | None = None
) -> Array:
    """Per label, keep its ``n`` largest connected components and set the others to 0.

    Full connectivity (26 in 3D, 8 in 2D). On equal sizes the component whose first voxel comes
    first in C order (lowest z, then y, then x) wins. ``labels_to_apply`` None = every non-zero
    label; other labels are left as they are. Keeps the dtype.
    """
    arr = _check_labels(labels)
    if n < 1:
        raise ValueError(f"keep_largest needs n >= 1, got {n}")
    out = arr.copy()
    for lab in _labels_to_apply(arr, labels_to_apply):
        mask = arr == lab
        comps, sizes = _components(mask)
        if sizes.size <= n:
            continue
        ranked = np.argsort(-sizes, kind="stable")
        keep = np.zeros(sizes.size + 1, dtype=bool)
        keep[ranked[:n] + 1] = True
        out[mask & ~keep[comps]] = 0
    return out


def fill_holes(
    labels: npt.ArrayLike,
    *,
    labels_to_apply: Iterable[int] | None = None,
    per_slice: bool = False,
) -> Array:
    """Fill background enclosed by a label with that label (``ndimage.binary_fill_holes``).

    Holes are background regions not face-connected (6 in 3D, 4 in 2D) to the array border.
    ``per_slice=True`` fills each ``[y, x]`` slice of a ``[z, y, x]`` volume in 2D (e.g. lungs,
    which are open along z through the airways); a single-slice ``[1, y, x]`` volume is always
    filled in 2D, since in 3D all its background touches the border. Only voxels that are 0 are
    filled; other labels inside a hole stay. Labels are processed in ascending order. Keeps the
    dtype.
    """
    arr = _check_labels(labels)
    out = arr.copy()
    for lab in _labels_to_apply(arr, labels_to_apply):
        mask = out == lab
        if mask.ndim == 3 and (per_slice or mask.shape[0] == 1):
            filled = np.stack([ndimage.binary_fill_holes(m) for m in mask])
        else:
            filled = ndimage.binary_fill_holes(mask)
        out[filled & (out == 0)] = lab
    return out


def remove_small(
    labels: npt.ArrayLike,
    *,
    min_ml: float,
    voxel_volume_ml: float,
    labels_to_apply: Iterable[int] | None = None,
) -> Array:
    """Set to 0 every connected component with ``voxels · voxel_volume_ml < min_ml``.

    Per label, full connectivity (26 in 3D, 8 in 2D); a component of exactly ``min_ml`` stays.
    ``labels_to_apply`` None = every non-zero label. Keeps the dtype.
    """
    arr = _check_labels(labels)
    if not voxel_volume_ml > 0:
        raise ValueError(f"voxel_volume_ml must be > 0, got {voxel_volume_ml}")
    out = arr.copy()
    for lab in _labels_to_apply(arr, labels_to_apply):
        mask = arr == lab
        comps, sizes = _components(mask)
        small = np.concatenate(([False], sizes * voxel_volume_ml < min_ml))
        out[mask & small[comps]] = 0
    return out


def label_volumes_ml(
    labels: npt.ArrayLike, *, voxel_volume_ml: float, label_indices: Iterable[int]
) -> dict[int, float]:
    """Volume of each requested label: ``count(labels == i) · voxel_volume_ml`` (0.0 if absent)."""
    arr = _check_labels(labels)
    return {
        int(i): float(np.count_nonzero(arr == i)) * float(voxel_volume_ml) for i in label_indices
    }


def largest_slice(labels: npt.ArrayLike, *, label: int) -> int | None:
    """Index along z of the ``[z, y, x]`` slice with most voxels of ``label`` (ties → lowest).

    None when the label is absent. A 2D ``[y, x]`` map counts as one slice (index 0).
    """
    arr = _check_labels(labels)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"largest_slice needs a [z, y, x] or [y, x] label map, got {arr.ndim}D")
    counts = np.count_nonzero(arr == label, axis=(1, 2))
    if counts.size == 0 or counts.max() == 0:
        return None
    return int(np.argmax(counts))
