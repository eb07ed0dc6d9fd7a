"""softmax, log_softmax, gelu, relu: each fused op against its composition from primitives,
forward and backward; rows of softmax sum to 1; huge logits stay finite."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value_and_grads, host, leaf, seeds, shapes

import scratchvit as sv
from scratchvit import ops as F
from scratchvit.ops.erf import erf_series


def softmax_reference(x, axis=-1):
    e = F.exp(x)
    return F.div(e, F.sum(e, axis=axis, keepdims=True))


def log_softmax_reference(x, axis=-1):
    return F.sub(x, F.log(F.sum(F.exp(x), axis=axis, keepdims=True)))


@st.composite
def shape_and_axis(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


@given(case=shape_and_axis(), seed=seeds)
def test_softmax_and_log_softmax_equal_their_composition(device, case, seed):
    shape, axis = case
    values = 3 * np.random.default_rng(seed).standard_normal(shape)
    assert_same_value_and_grads(
        lambda x: F.softmax(x, axis), lambda x: softmax_reference(x, axis), [values], device, seed=seed % 1000
    )
    assert_same_value_and_grads(
        lambda x: F.log_softmax(x, axis), lambda x: log_softmax_reference(x, axis), [values], device, seed=seed % 1000
    )


@given(case=shape_and_axis(), seed=seeds)
def test_softmax_slices_sum_to_one(device, case, seed):
    shape, axis = case
    values = 5 * np.random.default_rng(seed).standard_normal(shape)
    probabilities = host(F.softmax(leaf(values, device), axis))
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(host(F.log_softmax(leaf(values, device), axis))), probabilities, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_values_and_gradients(device, dtype):
    values = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    for op in (F.softmax, F.log_softmax):
        x = leaf(values, device, dtype=dtype)
        out = op(x)
        out.backward(device.xp.asarray([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], dtype=dtype))
        assert out.dtype == dtype and np.all(np.isfinite(host(out))), op.__name__
        assert np.all(np.isfinite(host(x.grad))), op.__name__
    np.testing.assert_array_equal(host(F.softmax(leaf(values, device, dtype=dtype))), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(host(F.log_softmax(leaf(values, device, dtype=dtype)))[0], [0.0, -2e4, -1e4])


@given(values=st.lists(st.floats(-8, 8), min_size=1, max_size=12), seed=seeds)
def test_gelu_equals_x_phi_with_the_series_erf(device, values, seed):
    x_values = np.array(values)
    x = leaf(x_values, device)
    out = F.gelu(x)
    expected = x_values * 0.5 * (1 + erf_series(x_values / math.sqrt(2)))
    np.testing.assert_allclose(host(out), expected, rtol=1e-10, atol=1e-12)

    # the gradient of sum(gelu(x) * r) is r * (Phi(x) + x * phi(x)), with phi built from primitives
    upstream = np.random.default_rng(seed).standard_normal(x_values.shape)
    out.backward(device.xp.asarray(upstream))
    constant = leaf(x_values, device, requires_grad=False)
    pdf = F.exp(constant * constant * -0.5) * (1 / math.sqrt(2 * math.pi))
    cdf = 0.5 * (1 + erf_series(x_values / math.sqrt(2)))
    expected_grad = upstream * (cdf + x_values * host(pdf))
    np.testing.assert_allclose(host(x.grad), expected_grad, rtol=1e-10, atol=1e-12)


def test_gelu_known_values(device):
    x = leaf([0.0, 1.0, -1.0, 3.0], device)
    # x * Phi(x): Phi(1) = 0.8413447460685429, Phi(3) = 0.9986501019683699
    np.testing.assert_allclose(host(F.gelu(x)), [0.0, 0.8413447460685429, -0.15865525393145707, 2.9959503059051097])


def test_gelu_without_scipy_uses_the_series(device, monkeypatch):
    from scratchvit.ops import erf as erf_module

    values = np.linspace(-4, 4, 9)
    with_library = host(F.gelu(leaf(values, device)))
    monkeypatch.setattr(erf_module, "_library_erfs", {device.xp: None})
    np.testing.assert_allclose(host(F.gelu(leaf(values, device))), with_library, rtol=1e-12, atol=1e-13)


@given(values=st.lists(st.floats(-5, 5).filter(lambda v: abs(v) > 1e-3), min_size=1, max_size=10))
def test_relu_values_and_gradient(device, values):
    x_values = np.array(values)
    x = leaf(x_values, device)
    out = F.relu(x)
    np.testing.assert_array_equal(host(out), np.maximum(x_values, 0))
    out.backward(device.xp.full(x_values.shape, 2.0))
    np.testing.assert_array_equal(host(x.grad), np.where(x_values > 0, 2.0, 0.0))


def test_softmax_axis_out_of_range(device):
    with pytest.raises(ValueError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        F.softmax(leaf(np.ones((2, 2)), device), axis=2)
    with pytest.raises(ValueError, match="axis -3 is out of range"):
        F.log_softmax(leaf(np.ones((2, 2)), device), axis=-3)


def test_gelu_without_grad_equals_gelu_with_grad(device):
    values = np.random.default_rng(0).standard_normal((4, 5))
    for dtype in (np.float32, np.float64):
        with_grad = host(F.gelu(leaf(values, device, dtype=dtype)))
        with sv.no_grad():
            without = host(F.gelu(leaf(values, device, dtype=dtype)))
        np.testing.assert_array_equal(without, with_grad)
