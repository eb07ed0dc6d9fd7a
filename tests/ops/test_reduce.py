"""Reductions: values and shapes against NumPy for every axis / keepdims, tie rule of max,
variance correction, bad axes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import host, leaf, seeds, shapes

from scratchvit import ops as F


@st.composite
def shape_and_axis(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    ndim = len(shape)
    axis = draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    )
    return shape, axis, draw(st.booleans())


@given(case=shape_and_axis(), seed=seeds)
def test_reductions_match_numpy(device, case, seed):
    shape, axis, keepdims = case
    values = np.random.default_rng(seed).standard_normal(shape)
    x = leaf(values, device)
    for op, reference in ((F.sum, np.sum), (F.mean, np.mean), (F.max, np.max), (F.var, np.var)):
        result = op(x, axis=axis, keepdims=keepdims)
        expected = reference(values, axis=axis, keepdims=keepdims)
        assert result.shape == np.shape(expected), op.__name__
        np.testing.assert_allclose(host(result), expected, rtol=1e-12, atol=1e-12, err_msg=op.__name__)


@given(case=shape_and_axis(), seed=seeds)
def test_reduction_gradients_have_the_input_shape(device, case, seed):
    shape, axis, keepdims = case
    x = leaf(np.random.default_rng(seed).standard_normal(shape), device)
    for op in (F.sum, F.mean, F.max, F.var):
        x.zero_grad()
        result = op(x, axis=axis, keepdims=keepdims)
        result.backward(device.xp.ones(result.shape))
        assert x.grad.shape == x.shape, op.__name__


def test_sum_and_mean_gradients(device):
    x = leaf(np.arange(6.0).reshape(2, 3), device)
    F.sum(x, axis=1).backward(device.xp.asarray([1.0, 2.0]))
    np.testing.assert_array_equal(host(x.grad), [[1, 1, 1], [2, 2, 2]])
    x.zero_grad()
    F.mean(x, axis=0, keepdims=True).backward(device.xp.asarray([[3.0, 6.0, 9.0]]))
    np.testing.assert_array_equal(host(x.grad), [[1.5, 3, 4.5], [1.5, 3, 4.5]])


def test_max_gradient_goes_to_the_maximum_and_ties_share_it(device):
    x = leaf([[1.0, 5.0, 5.0], [7.0, 2.0, 3.0]], device)
    F.max(x, axis=1).backward(device.xp.asarray([1.0, 1.0]))
    np.testing.assert_array_equal(host(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])


def test_var_correction(device):
    values = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    x = leaf(values, device)
    np.testing.assert_allclose(host(F.var(x, axis=1)), np.var(values, axis=1))
    np.testing.assert_allclose(host(F.var(x, axis=1, correction=1)), np.var(values, axis=1, ddof=1))
    F.var(x, axis=1, correction=1).backward(device.xp.ones(2))
    expected = 2 * (values - values.mean(axis=1, keepdims=True)) / 2
    np.testing.assert_allclose(host(x.grad), expected)
    assert x.var(axis=-1).shape == (2,)


@pytest.mark.parametrize("op", [F.sum, F.mean, F.max, F.var])
def test_an_axis_out_of_range_raises_naming_it(device, op):
    x = leaf(np.ones((2, 3)), device)
    with pytest.raises(ValueError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        op(x, axis=2)
    with pytest.raises(ValueError, match="axis -3 is out of range"):
        op(x, axis=(0, -3))
