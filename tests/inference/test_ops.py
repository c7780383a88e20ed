"""Every pre- and postprocessing step against hand-computed results on tiny arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from medmodels.inference import ops
from medmodels.inference.ops import ResizePadBox

# ------------------------------------------------------------------------------ window


def test_window_clips_and_scales_linearly() -> None:
    a = np.array([[[-1000, -160, 40, 140, 240, 1000]]], dtype=np.int16)
    out = ops.window(a, center=40, width=400)
    assert out.dtype == np.float32
    assert_array_equal(out, [[[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]]])


def test_window_on_2d_slice() -> None:
    out = ops.window(np.array([[0.0, 5.0], [10.0, 20.0]]), center=5, width=10)
    assert_array_equal(out, [[0.0, 0.5], [1.0, 1.0]])


@pytest.mark.parametrize("width", [0, -1, float("nan")])
def test_window_rejects_non_positive_width(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        ops.window(np.zeros(3), center=0, width=width)


# -------------------------------------------------------------------------------- clip


def test_clip() -> None:
    out = ops.clip(np.array([[-5, 0, 1, 5]]), min=-1, max=2)
    assert out.dtype == np.float32
    assert_array_equal(out, [[-1.0, 0.0, 1.0, 2.0]])


def test_clip_rejects_min_above_max() -> None:
    with pytest.raises(ValueError, match="min <= max"):
        ops.clip(np.zeros(3), min=2, max=1)


# ------------------------------------------------------------------------------ zscore


def test_zscore_computed_statistics() -> None:
    out = ops.zscore(np.array([[[1, 2], [3, 4]]], dtype=np.int16))
    # mean 2.5, population std sqrt(1.25)
    s = np.sqrt(1.25)
    assert out.dtype == np.float32
    assert_allclose(out, [[[-1.5 / s, -0.5 / s], [0.5 / s, 1.5 / s]]], rtol=1e-6)
    assert_allclose(out.mean(), 0.0, atol=1e-6)
    assert_allclose(out.std(), 1.0, rtol=1e-6)


def test_zscore_given_statistics() -> None:
    assert_array_equal(ops.zscore(np.array([1.0, 3.0, 5.0]), mean=1, std=2), [0.0, 1.0, 2.0])


def test_zscore_given_mean_computes_std_only() -> None:
    # std of [0, 2] is 1; the given mean 0 is used as is
    assert_array_equal(ops.zscore(np.array([0.0, 2.0]), mean=0.0), [0.0, 2.0])


def test_zscore_constant_image_divides_by_one() -> None:
    assert_array_equal(ops.zscore(np.full((1, 2, 2), 7.0)), np.zeros((1, 2, 2)))


def test_zscore_given_zero_std_divides_by_one() -> None:
    assert_array_equal(ops.zscore(np.array([3.0, 5.0]), mean=4, std=0), [-1.0, 1.0])


def test_zscore_mask_above_uses_only_foreground_statistics() -> None:
    a = np.array([-1000.0, -1000.0, 10.0, 20.0, 30.0])
    out = ops.zscore(a, mask_above=0)
    # foreground 10, 20, 30: mean 20, std sqrt(200/3); applied to every voxel
    expected = np.array([-1020.0, -1020.0, -10.0, 0.0, 10.0]) / np.sqrt(200 / 3)
    assert_allclose(out, expected, rtol=1e-6)


def test_zscore_mask_above_with_nothing_above_falls_back_to_all_voxels() -> None:
    assert_array_equal(ops.zscore(np.array([1.0, 3.0]), mask_above=100), [-1.0, 1.0])


# ------------------------------------------------------------------------------ minmax


def test_minmax() -> None:
    out = ops.minmax(np.array([[[2, 4], [6, 10]]], dtype=np.int16))
    assert out.dtype == np.float32
    assert_array_equal(out, [[[0.0, 0.25], [0.5, 1.0]]])


def test_minmax_constant_image_is_zeros() -> None:
    assert_array_equal(ops.minmax(np.full((2, 2), -5.0)), np.zeros((2, 2)))


def test_minmax_negative_values() -> None:
    assert_array_equal(ops.minmax(np.array([-4.0, 0.0, 4.0])), [0.0, 0.5, 1.0])


# ------------------------------------------------------------------------ scale_offset


def test_scale_offset() -> None:
    out = ops.scale_offset(np.array([[0, 1, 2]], dtype=np.uint8), scale=2, offset=-1)
    assert out.dtype == np.float32
    assert_array_equal(out, [[-1.0, 1.0, 3.0]])


# -------------------------------------------------------------------- resample_spacing


def test_resample_halving_x_resolution() -> None:
    a = np.array([[[0.0, 2.0, 4.0, 6.0]]])  # [z=1, y=1, x=4]
    out, spacing = ops.resample_spacing(a, (1.0, 1.0, 1.0), target_xyz=(2.0, None, None))
    assert out.dtype == np.float32
    assert_array_equal(out, [[[1.0, 5.0]]])  # averages of neighbouring pairs
    assert spacing == (2.0, 1.0, 1.0)


def test_resample_doubling_x_resolution() -> None:
    a = np.array([[[0.0, 4.0]]])
    out, spacing = ops.resample_spacing(a, (2.0, 1.0, 3.0), target_xyz=(1.0, None, None))
    # output voxel j samples input coordinate (j + 0.5) / 2 - 0.5, edges repeat
    assert_array_equal(out, [[[0.0, 1.0, 3.0, 4.0]]])
    assert spacing == (1.0, 1.0, 3.0)


def test_resample_z_uses_third_spacing_and_first_array_axis() -> None:
    a = np.array([0.0, 4.0]).reshape(2, 1, 1)
    out, spacing = ops.resample_spacing(a, (1.0, 1.0, 2.0), target_xyz=(None, None, 1.0))
    assert out.shape == (4, 1, 1)
    assert_array_equal(out.ravel(), [0.0, 1.0, 3.0, 4.0])
    assert spacing == (1.0, 1.0, 1.0)


def test_resample_y_uses_second_spacing_and_second_array_axis() -> None:
    a = np.array([0.0, 2.0, 4.0, 6.0]).reshape(1, 4, 1)
    out, spacing = ops.resample_spacing(a, (1.0, 1.0, 1.0), target_xyz=(None, 2.0, None))
    assert out.shape == (1, 2, 1)
    assert_array_equal(out.ravel(), [1.0, 5.0])
    assert spacing == (1.0, 2.0, 1.0)


def test_resample_reports_exact_spacing_after_rounding() -> None:
    out, spacing = ops.resample_spacing(
        np.zeros((1, 1, 5)), (1.0, 1.0, 1.0), target_xyz=(2.0, None, None)
    )
    assert out.shape == (1, 1, 3)  # 2.5 voxels rounds half up
    assert spacing[0] == pytest.approx(5 / 3)


def test_resample_2d_slice_ignores_z() -> None:
    a = np.array([[0.0, 4.0], [0.0, 4.0]])
    out, spacing = ops.resample_spacing(a, (1.0, 1.0, 5.0), target_xyz=(0.5, None, 99.0))
    assert_array_equal(out, [[0.0, 1.0, 3.0, 4.0], [0.0, 1.0, 3.0, 4.0]])
    assert spacing == (0.5, 1.0, 5.0)


def test_resample_2d_slice_with_two_spacings() -> None:
    out, spacing = ops.resample_spacing(np.zeros((4, 2)), (1.0, 1.0), target_xyz=(None, 2.0))
    assert out.shape == (2, 2)
    assert spacing == (1.0, 2.0)


@pytest.mark.parametrize(
    ("target", "shape"),
    [
        ((0.5, 0.5, None), (3, 16, 16)),
        ((2.0, 2.0, None), (3, 4, 4)),
        ((None, None, 0.5), (6, 8, 8)),
    ],
)
def test_resample_random_volume_changes_shape_and_keeps_mean(
    target: tuple[float | None, ...], shape: tuple[int, int, int]
) -> None:
    a = np.random.default_rng(0).normal(100.0, 20.0, size=(3, 8, 8)).astype(np.float32)
    out, _ = ops.resample_spacing(a, (1.0, 1.0, 1.0), target_xyz=target)
    assert out.shape == shape
    assert out.mean() == pytest.approx(a.mean(), rel=0.01)


def test_resample_nearest_keeps_label_dtype() -> None:
    labels = np.array([[[1, 2]]], dtype=np.uint8)
    out, _ = ops.resample_spacing(labels, (2.0, 1.0, 1.0), target_xyz=(1.0, None, None), order=0)
    assert out.dtype == np.uint8
    assert_array_equal(out, [[[1, 1, 2, 2]]])


def test_resample_without_targets_returns_a_copy() -> None:
    a = np.ones((1, 2, 2), dtype=np.float32)
    out, spacing = ops.resample_spacing(a, (1.0, 2.0, 3.0), target_xyz=(None, None, None))
    assert out is not a
    assert_array_equal(out, a)
    assert spacing == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("spacing", "target"),
    [((0.0, 1.0, 1.0), (1.0, None, None)), ((1.0, 1.0, 1.0), (-1.0, None, None))],
)
def test_resample_rejects_bad_spacing(
    spacing: tuple[float, ...], target: tuple[float | None, ...]
) -> None:
    with pytest.raises(ValueError, match="spacing"):
        ops.resample_spacing(np.zeros((1, 2, 2)), spacing, target_xyz=target)


def test_resample_rejects_wrong_spacing_length() -> None:
    with pytest.raises(ValueError, match="3 or 3 values"):
        ops.resample_spacing(np.zeros((1, 2, 2)), (1.0, 1.0), target_xyz=(None, None))


# ------------------------------------------------------------------- resample_to_shape


def test_resample_to_shape_nearest_for_labels() -> None:
    labels = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    out = ops.resample_to_shape(labels, (4, 4), order=0)
    assert out.dtype == np.uint8
    assert_array_equal(out, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_resample_to_shape_linear_leaves_equal_axes_alone() -> None:
    probs = np.array([[[0.0, 4.0]], [[1.0, 1.0]]])  # [C=2, y=1, x=2]
    out = ops.resample_to_shape(probs, (2, 1, 4), order=1)
    assert out.dtype == np.float32
    assert_array_equal(out, [[[0.0, 1.0, 3.0, 4.0]], [[1.0, 1.0, 1.0, 1.0]]])


def test_resample_to_shape_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="axes"):
        ops.resample_to_shape(np.zeros((2, 2)), (2, 2, 2), order=0)


# -------------------------------------------------------------------------- resize_pad


IMAGE_2X2 = np.array([[[1, 2], [3, 4]]], dtype=np.int16)  # [z=1, y=2, x=2]


def test_pad_centres_with_odd_extra_at_end() -> None:
    out, box = ops.resize_pad(IMAGE_2X2, rows=4, cols=3, mode="pad")
    assert out.dtype == np.float32
    assert_array_equal(out, [[[0, 0, 0], [1, 2, 0], [3, 4, 0], [0, 0, 0]]])
    assert box == ResizePadBox(mode="pad", original=(2, 2), size=(4, 3), offset=(1, 0))


def test_pad_crops_centrally_when_smaller() -> None:
    a = np.arange(25).reshape(5, 5)
    out, box = ops.resize_pad(a, rows=3, cols=2, mode="pad")
    assert_array_equal(out, [[6, 7], [11, 12], [16, 17]])
    assert box.offset == (-1, -1)


def test_pad_and_crop_on_different_axes_with_inverse() -> None:
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])  # 2×4 → 4×2
    out, box = ops.resize_pad(a, rows=4, cols=2, mode="pad")
    assert_array_equal(out, [[0, 0], [2, 3], [6, 7], [0, 0]])
    back = ops.undo_resize_pad(out, box)
    # cropped-away columns come back as background
    assert_array_equal(back, [[0, 2, 3, 0], [0, 6, 7, 0]])


def test_pad_round_trip_is_exact() -> None:
    a = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    out, box = ops.resize_pad(a, rows=8, cols=8, mode="pad")
    assert out.shape == (2, 8, 8)
    assert_array_equal(ops.undo_resize_pad(out, box), a)


def test_undo_crop_keeps_output_dtype_and_extra_axes() -> None:
    a = np.zeros((1, 4, 4))
    _, box = ops.resize_pad(a, rows=2, cols=2, mode="pad")
    labels = np.array([[[[1, 2], [3, 4]]]], dtype=np.uint8)  # [z=1, C=1, 2, 2]
    back = ops.undo_resize_pad(labels, box)
    assert back.dtype == np.uint8
    assert_array_equal(back, [[[[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]]]])


def test_resize_is_linear_per_slice() -> None:
    a = np.array([[[0, 4]], [[8, 8]]], dtype=np.int16)  # two 1×2 slices
    out, box = ops.resize_pad(a, rows=1, cols=4, mode="resize")
    assert out.dtype == np.float32
    assert_array_equal(out, [[[0, 1, 3, 4]], [[8, 8, 8, 8]]])
    assert box == ResizePadBox(mode="resize", original=(1, 2), size=(1, 4), offset=(0, 0))


def test_undo_resize_nearest_for_labels_and_linear_for_probabilities() -> None:
    _, box = ops.resize_pad(np.zeros((1, 2)), rows=1, cols=4, mode="resize")
    labels = np.array([[1, 1, 2, 2]], dtype=np.uint8)
    back = ops.undo_resize_pad(labels, box)
    assert back.dtype == np.uint8
    assert_array_equal(back, [[1, 2]])
    probs = np.array([[0.0, 0.2, 0.6, 1.0]], dtype=np.float32)
    assert_allclose(ops.undo_resize_pad(probs, box, order=1), [[0.1, 0.8]], rtol=1e-6)


def test_undo_resize_pad_rejects_wrong_size() -> None:
    _, box = ops.resize_pad(np.zeros((2, 2)), rows=4, cols=4, mode="pad")
    with pytest.raises(ValueError, match="4×4"):
        ops.undo_resize_pad(np.zeros((3, 4)), box)


def test_resize_pad_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        ops.resize_pad(np.zeros((2, 2)), rows=2, cols=2, mode="stretch")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- channel_repeat


def test_channel_repeat_batch_of_slices() -> None:
    a = np.array([[[1, 2]], [[3, 4]]], dtype=np.int16)  # [z=2, y=1, x=2]
    out = ops.channel_repeat(a, n=3)
    assert out.dtype == np.float32
    assert out.shape == (2, 3, 1, 2)
    assert_array_equal(out[0], [[[1, 2]], [[1, 2]], [[1, 2]]])
    assert_array_equal(out[1], [[[3, 4]], [[3, 4]], [[3, 4]]])


def test_channel_repeat_single_slice() -> None:
    assert_array_equal(ops.channel_repeat(np.array([[5, 6]]), n=2), [[[5, 6]], [[5, 6]]])


def test_channel_repeat_rejects_zero() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        ops.channel_repeat(np.zeros((2, 2)), n=0)


# ------------------------------------------------------------------- softmax / sigmoid


def test_softmax_values_and_rows_sum_to_one() -> None:
    out = ops.softmax(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), axis=1)
    e = np.exp([1.0, 2.0, 3.0])
    assert out.dtype == np.float32
    assert_allclose(out, [e / e.sum(), [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert_allclose(out.sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_softmax_large_logits_do_not_overflow() -> None:
    # pytest turns numpy's overflow RuntimeWarning into an error
    out = ops.softmax(np.array([[1000.0, 0.0], [1000.0, 1000.0], [-1000.0, 1000.0]]), axis=1)
    assert_array_equal(out, [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


def test_softmax_over_channel_axis_of_a_volume() -> None:
    logits = np.random.default_rng(1).normal(0, 5, size=(3, 2, 4, 4))
    out = ops.softmax(logits, axis=0)
    assert_allclose(out.sum(axis=0), np.ones((2, 4, 4)), rtol=1e-6)


def test_sigmoid() -> None:
    out = ops.sigmoid(np.array([0.0, 2.0, -2.0, 1000.0, -1000.0]))
    assert out.dtype == np.float32
    assert_allclose(out, [0.5, 0.8807971, 0.1192029, 1.0, 0.0], rtol=1e-6)


# ------------------------------------------------------------------- argmax / threshold


def test_argmax_over_channels_with_ties_to_lowest() -> None:
    probs = np.array(
        [
            [[0.7, 0.1], [0.4, 0.2]],
            [[0.2, 0.1], [0.4, 0.3]],
            [[0.1, 0.8], [0.2, 0.5]],
        ]
    )
    out = ops.argmax(probs)
    assert out.dtype == np.uint8
    assert_array_equal(out, [[0, 2], [0, 2]])


def test_argmax_other_axis() -> None:
    assert_array_equal(ops.argmax(np.array([[0.1, 0.9], [0.6, 0.4]]), axis=1), [1, 0])


def test_argmax_rejects_more_than_256_classes() -> None:
    with pytest.raises(ValueError, match="256"):
        ops.argmax(np.zeros((257, 2)))


def test_threshold_is_inclusive() -> None:
    out = ops.threshold(np.array([[0.2, 0.5], [0.7, 0.4999]]), value=0.5)
    assert out.dtype == np.uint8
    assert_array_equal(out, [[0, 1], [1, 0]])


# ------------------------------------------------------------------------ keep_largest


def test_keep_largest_2d_uses_8_connectivity() -> None:
    labels = np.array(
        [
            [1, 1, 0, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 1, 0, 0],
            [0, 1, 0, 0, 2],
            [0, 0, 0, 0, 2],
        ],
        dtype=np.uint8,
    )
    # label 1: a pair (2 voxels) and a diagonal chain (3 voxels, one component with 8-connectivity)
    out = ops.keep_largest(labels)
    assert out.dtype == np.uint8
    assert_array_equal(
        out,
        [
            [0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 1, 0, 0],
            [0, 1, 0, 0, 2],
            [0, 0, 0, 0, 2],
        ],
    )


def test_keep_largest_3d_uses_26_connectivity_and_breaks_ties_by_first_voxel() -> None:
    labels = np.array(
        [
            [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]],
            [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
        ],
        dtype=np.int16,
    )
    # corner-touching (0,0,0)-(1,1,1) is one 2-voxel component; it ties with (0,1,3)-(0,2,3)
    # and wins because its first voxel comes first
    out = ops.keep_largest(labels)
    assert_array_equal(
        out,
        [
            [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
            [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
        ],
    )


def test_keep_largest_n_and_labels_to_apply() -> None:
    labels = np.array([[1, 0, 1, 1, 0, 1, 1, 1, 0, 2, 0, 2, 2]], dtype=np.uint8)
    assert_array_equal(
        ops.keep_largest(labels, n=2, labels_to_apply=[1]),
        [[0, 0, 1, 1, 0, 1, 1, 1, 0, 2, 0, 2, 2]],
    )
    assert_array_equal(
        ops.keep_largest(labels, labels_to_apply=[2]),
        [[1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 2, 2]],
    )


def test_keep_largest_empty_and_absent_labels() -> None:
    empty = np.zeros((2, 3, 3), dtype=np.uint8)
    assert_array_equal(ops.keep_largest(empty), empty)
    assert_array_equal(ops.keep_largest(empty, labels_to_apply=[4]), empty)


def test_keep_largest_rejects_float_labels_background_and_zero_n() -> None:
    with pytest.raises(ValueError, match="integer dtype"):
        ops.keep_largest(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="background"):
        ops.keep_largest(np.zeros((2, 2), dtype=np.uint8), labels_to_apply=[0, 1])
    with pytest.raises(ValueError, match="n >= 1"):
        ops.keep_largest(np.zeros((2, 2), dtype=np.uint8), n=0)


# -------------------------------------------------------------------------- fill_holes


def test_fill_holes_2d_leaves_other_labels_inside() -> None:
    labels = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [1, 0, 2, 0, 1],
            [1, 0, 0, 0, 1],
            [1, 1, 1, 1, 1],
        ],
        dtype=np.uint8,
    )
    out = ops.fill_holes(labels)
    assert out.dtype == np.uint8
    expected = np.ones((5, 5), dtype=np.uint8)
    expected[2, 2] = 2
    assert_array_equal(out, expected)


def test_fill_holes_background_must_be_face_enclosed() -> None:
    # a diamond of 1s touching only at corners still encloses its centre (4-connected background)
    labels = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 1, 0, 1, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    expected = labels.copy()
    expected[2, 2] = 1
    assert_array_equal(ops.fill_holes(labels), expected)


def test_fill_holes_open_tube_needs_per_slice() -> None:
    ring = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 1, 0, 1, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    tube = np.stack([ring, ring, ring])  # hole open at both ends along z
    assert_array_equal(ops.fill_holes(tube), tube)
    filled = ring.copy()
    filled[2, 2] = 1
    assert_array_equal(ops.fill_holes(tube, per_slice=True), np.stack([filled] * 3))


def test_fill_holes_single_slice_volume_is_filled_in_2d() -> None:
    labels = np.array([[[1, 1, 1], [1, 0, 1], [1, 1, 1]]], dtype=np.uint8)  # [z=1, y=3, x=3]
    assert_array_equal(ops.fill_holes(labels), np.ones((1, 3, 3)))


def test_fill_holes_closed_3d_cavity() -> None:
    cube = np.ones((3, 3, 3), dtype=np.uint8)
    cube[1, 1, 1] = 0
    assert_array_equal(ops.fill_holes(cube), np.ones((3, 3, 3)))


def test_fill_holes_labels_to_apply() -> None:
    labels = np.array(
        [[1, 1, 1, 0, 2, 2, 2], [1, 0, 1, 0, 2, 0, 2], [1, 1, 1, 0, 2, 2, 2]], dtype=np.uint8
    )
    assert_array_equal(
        ops.fill_holes(labels, labels_to_apply=[2]),
        [[1, 1, 1, 0, 2, 2, 2], [1, 0, 1, 0, 2, 2, 2], [1, 1, 1, 0, 2, 2, 2]],
    )


# ------------------------------------------------------------------------ remove_small


def test_remove_small_2d() -> None:
    labels = np.array(
        [
            [1, 0, 0, 2, 2],
            [0, 0, 0, 0, 0],
            [1, 0, 0, 0, 2],
            [0, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
        ],
        dtype=np.uint8,
    )
    # 0.25 mL voxels: 1-voxel components (0.25 mL) go, the 2-voxel one (exactly 0.5) stays
    out = ops.remove_small(labels, min_ml=0.5, voxel_volume_ml=0.25)
    assert_array_equal(
        out,
        [
            [0, 0, 0, 2, 2],
            [0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0],
            [0, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
        ],
    )


def test_remove_small_3d_corner_neighbours_count_together() -> None:
    labels = np.zeros((2, 2, 2), dtype=np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = 3
    assert_array_equal(ops.remove_small(labels, min_ml=1.0, voxel_volume_ml=0.5), labels)
    assert_array_equal(
        ops.remove_small(labels, min_ml=1.5, voxel_volume_ml=0.5), np.zeros((2, 2, 2))
    )


def test_remove_small_empty_map() -> None:
    empty = np.zeros((3, 3), dtype=np.uint8)
    assert_array_equal(ops.remove_small(empty, min_ml=1, voxel_volume_ml=1), empty)


# ------------------------------------------------------------- volumes / largest slice


def test_label_volumes_ml() -> None:
    labels = np.array([[[0, 1, 1], [2, 2, 2]]], dtype=np.uint8)
    assert ops.label_volumes_ml(labels, voxel_volume_ml=0.5, label_indices=[1, 2, 3]) == {
        1: 1.0,
        2: 1.5,
        3: 0.0,
    }


def test_largest_slice_ties_to_lowest_and_absent_is_none() -> None:
    labels = np.array(
        [[[1, 0], [0, 0]], [[1, 1], [1, 2]], [[1, 1], [0, 1]]], dtype=np.uint8
    )  # label 1: 1, 3, 3 voxels per slice
    assert ops.largest_slice(labels, label=1) == 1
    assert ops.largest_slice(labels, label=2) == 1
    assert ops.largest_slice(labels, label=5) is None


def test_largest_slice_2d() -> None:
    assert ops.largest_slice(np.array([[0, 1]], dtype=np.uint8), label=1) == 0
    assert ops.largest_slice(np.array([[0, 1]], dtype=np.uint8), label=2) is None


# ---------------------------------------------------------------- inputs stay untouched

CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("window", lambda a: ops.window(a, center=1, width=2)),
    ("clip", lambda a: ops.clip(a, min=0, max=1)),
    ("zscore", lambda a: ops.zscore(a, mask_above=0)),
    ("minmax", ops.minmax),
    ("scale_offset", lambda a: ops.scale_offset(a, scale=2, offset=1)),
    ("resample", lambda a: ops.resample_spacing(a, (1, 1, 1), target_xyz=(None, None, None))),
    ("resize_pad", lambda a: ops.resize_pad(a, rows=3, cols=3, mode="pad")),
    ("channel_repeat", lambda a: ops.channel_repeat(a, n=1)),
    ("softmax", lambda a: ops.softmax(a, axis=0)),
    ("sigmoid", ops.sigmoid),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[name for name, _ in CALLS])
def test_float_inputs_are_not_modified(name: str, call: Callable[[Any], Any]) -> None:
    a = np.array([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]], dtype=np.float32)
    before = a.copy()
    result = call(a)
    result = result[0] if isinstance(result, tuple) else result
    assert_array_equal(a, before)
    assert result is not a
    assert result.dtype == np.float32


LABEL_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("keep_largest", lambda a: ops.keep_largest(a)),
    ("fill_holes", lambda a: ops.fill_holes(a)),
    ("remove_small", lambda a: ops.remove_small(a, min_ml=2, voxel_volume_ml=1)),
]


@pytest.mark.parametrize(("name", "call"), LABEL_CALLS, ids=[name for name, _ in LABEL_CALLS])
def test_label_inputs_are_not_modified(name: str, call: Callable[[Any], Any]) -> None:
    labels = np.array([[[1, 1, 1, 0, 2], [1, 0, 1, 0, 0], [1, 1, 1, 0, 2]]], dtype=np.uint8)
    before = labels.copy()
    out = call(labels)
    assert_array_equal(labels, before)
    assert out is not labels
    assert out.dtype == np.uint8
    assert not np.array_equal(out, labels)  # each call changes something here
