"""Shape ops: values against NumPy, gradients put back where the values came from (repeated
integer indices add up), roll's inverse, and the argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import host, leaf, seeds, shapes

import scratchvit as sv
from scratchvit import ops as F


def test_reshape_permute_transpose_expand_values(device):
    values = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(values, device)
    np.testing.assert_array_equal(host(F.reshape(x, (4, -1))), values.reshape(4, -1))
    np.testing.assert_array_equal(host(x.reshape(6, 4)), values.reshape(6, 4))
    np.testing.assert_array_equal(host(F.permute(x, (2, 0, 1))), values.transpose(2, 0, 1))
    np.testing.assert_array_equal(host(x.permute(1, 2, 0)), values.transpose(1, 2, 0))
    np.testing.assert_array_equal(host(F.transpose(x, 0, 2)), values.swapaxes(0, 2))
    np.testing.assert_array_equal(host(x.T), values.T)
    np.testing.assert_array_equal(host(x.flatten(1)), values.reshape(2, 12))
    np.testing.assert_array_equal(host(F.expand(x[:, :1], (5, 2, 3, 4))), np.broadcast_to(values[:, :1], (5, 2, 3, 4)))


def test_permute_gradient_is_the_inverse_permutation(device):
    x = leaf(np.zeros((2, 3, 4)), device)
    upstream = np.random.default_rng(0).standard_normal((4, 2, 3))
    F.permute(x, (2, 0, 1)).backward(device.xp.asarray(upstream))
    np.testing.assert_array_equal(host(x.grad), upstream.transpose(1, 2, 0))


def test_expand_gradient_sums_over_the_broadcast_axes(device):
    x = leaf(np.ones((3, 1)), device)
    F.expand(x, (2, 3, 4)).backward(device.xp.ones((2, 3, 4)))
    np.testing.assert_array_equal(host(x.grad), np.full((3, 1), 8.0))


def test_getitem_basic_slicing(device):
    values = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(values, device)
    for index in [(1,), (slice(None), 0), (Ellipsis, -1), (slice(None, None, 2), None, slice(1, 3)), (0, 1, 2)]:
        np.testing.assert_array_equal(host(x[index]), values[index], err_msg=str(index))
    x[1:, ::2].backward(device.xp.ones((1, 2, 4)))
    expected = np.zeros((2, 3, 4))
    expected[1:, ::2] = 1
    np.testing.assert_array_equal(host(x.grad), expected)


def test_getitem_repeated_integer_indices_add_their_gradients(device):
    x = leaf([10.0, 20.0, 30.0], device)
    picked = x[device.xp.asarray([0, 2, 0, 0])]
    np.testing.assert_array_equal(host(picked), [10.0, 30.0, 10.0, 10.0])
    picked.backward(device.xp.asarray([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(host(x.grad), [8.0, 0.0, 2.0])


def test_getitem_with_a_list_and_a_tensor_index(device):
    x = leaf(np.arange(6.0).reshape(3, 2), device)
    (x[[1, 1]].sum() + x[sv.Tensor(np.array([2]), device=device)].sum()).backward()
    np.testing.assert_array_equal(host(x.grad), [[0, 0], [2, 2], [1, 1]])


def test_getitem_boolean_mask(device):
    values = np.arange(6.0).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    x = leaf(values, device)
    selected = x[device.xp.asarray(mask)]
    np.testing.assert_array_equal(host(selected), values[mask])
    selected.backward(device.xp.asarray([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(host(x.grad), [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    rows = x[device.xp.asarray([False, True])]  # a mask over the first axis only
    np.testing.assert_array_equal(host(rows), values[[False, True]])


def test_take_along_axis_matches_numpy_and_adds_repeated_picks(device):
    values = np.arange(12.0).reshape(2, 3, 2)
    indices = np.array([[[2, 0], [2, 2]], [[1, 1], [0, 1]]])
    x = leaf(values, device)
    out = F.take_along_axis(x, device.xp.asarray(indices), axis=1)
    np.testing.assert_array_equal(host(out), np.take_along_axis(values, indices, axis=1))
    out.backward(device.xp.ones(out.shape))
    expected = np.zeros((2, 3, 2))
    np.add.at(expected, (np.arange(2)[:, None, None], indices, np.arange(2)[None, None, :]), 1.0)
    np.testing.assert_array_equal(host(x.grad), expected)


def test_take_along_axis_with_indices_broadcast_over_channels(device):
    """MAE gathers tokens with one index per token, broadcast over the channels."""
    values = np.arange(12.0).reshape(1, 4, 3)
    indices = np.array([[[3], [3], [1]]])
    x = leaf(values, device)
    out = F.take_along_axis(x, device.xp.asarray(indices), axis=1)
    np.testing.assert_array_equal(host(out), values[:, [3, 3, 1]])
    out.backward(device.xp.ones((1, 3, 3)))
    np.testing.assert_array_equal(host(x.grad)[0], [[0, 0, 0], [1, 1, 1], [0, 0, 0], [2, 2, 2]])


def test_concatenate_stack_split_values_and_gradients(device):
    a, b = leaf(np.ones((2, 1)), device), leaf(np.zeros((2, 2)), device)
    joined = F.concatenate([a, b], axis=1)
    np.testing.assert_array_equal(host(joined), [[1, 0, 0], [1, 0, 0]])
    joined.backward(device.xp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    np.testing.assert_array_equal(host(a.grad), [[1.0], [4.0]])
    np.testing.assert_array_equal(host(b.grad), [[2.0, 3.0], [5.0, 6.0]])

    c, d = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    stacked = F.stack([c, d], axis=1)
    np.testing.assert_array_equal(host(stacked), [[1, 3], [2, 4]])
    stacked.backward(device.xp.asarray([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(host(c.grad), [1.0, 3.0])
    np.testing.assert_array_equal(host(d.grad), [2.0, 4.0])

    x = leaf(np.arange(10.0).reshape(2, 5), device)
    pieces = F.split(x, 2, axis=1)
    assert [p.shape for p in pieces] == [(2, 2), (2, 2), (2, 1)]
    sections = F.split(x, [1, 4], axis=-1)
    assert [p.shape for p in sections] == [(2, 1), (2, 4)]
    (pieces[2] * 3).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [[0, 0, 0, 0, 3], [0, 0, 0, 0, 3]])


def test_pad_values_and_gradient(device):
    x = leaf([[1.0, 2.0]], device)
    padded = F.pad(x, ((1, 0), (0, 2)), value=-1.0)
    np.testing.assert_array_equal(host(padded), [[-1, -1, -1, -1], [1, 2, -1, -1]])
    padded.backward(device.xp.arange(8.0).reshape(2, 4))
    np.testing.assert_array_equal(host(x.grad), [[4.0, 5.0]])


@given(shape=shapes(min_dims=1, max_dims=3, max_side=5), seed=seeds, data=st.data())
def test_roll_then_roll_back_is_the_identity(device, shape, seed, data):
    values = np.random.default_rng(seed).standard_normal(shape)
    axes = tuple(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)))
    shifts = tuple(data.draw(st.integers(-7, 7)) for _ in axes)
    x = leaf(values, device)
    rolled = F.roll(x, shifts, axes)
    np.testing.assert_array_equal(host(rolled), np.roll(values, shifts, axis=axes))
    np.testing.assert_array_equal(host(F.roll(rolled, tuple(-s for s in shifts), axes)), values)


def test_roll_gradient_rolls_back(device):
    x = leaf([1.0, 2.0, 3.0], device)
    F.roll(x, 1, 0).backward(device.xp.asarray([10.0, 20.0, 30.0]))  # out = [3, 1, 2]
    np.testing.assert_array_equal(host(x.grad), [20.0, 30.0, 10.0])


def test_shape_op_errors_name_the_argument(device):
    x = leaf(np.ones((2, 3)), device)
    with pytest.raises(ValueError, match="concatenate needs at least one tensor"):
        F.concatenate([])
    with pytest.raises(ValueError, match="stack needs at least one tensor"):
        F.stack([])
    with pytest.raises(ValueError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        F.concatenate([x, x], axis=2)
    with pytest.raises(ValueError, match="axis0 5 is out of range"):
        F.transpose(x, 5, 0)
    with pytest.raises(ValueError, match=r"axes \(0, 0\) must be a permutation"):
        F.permute(x, (0, 0))
    with pytest.raises(ValueError, match="split sizes \\[1, 1\\] add up to 2, but axis 1 has size 3"):
        F.split(x, [1, 1], axis=1)
    with pytest.raises(ValueError, match="split_size must be positive, got 0"):
        F.split(x, 0)
    with pytest.raises(ValueError, match="pad_width needs one"):
        F.pad(x, ((1, 1),))
    with pytest.raises(ValueError, match="roll needs one shift per axis"):
        F.roll(x, (1, 2), 0)
    with pytest.raises(ValueError, match="indices must have 2 dimensions"):
        F.take_along_axis(x, device.xp.zeros(3, dtype=int), axis=1)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        F.take_along_axis(x, device.xp.zeros((2, 3), dtype=int), axis=3)
