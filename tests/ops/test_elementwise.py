"""Elementwise ops: values against NumPy, reflected operators, scalars that must not upcast,
the tie rule of maximum, where, and cast."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from strategies import arrays, broadcastable_shapes, host, leaf, seeds

import scratchvit as sv
from scratchvit import ops as F


@given(shapes=broadcastable_shapes(2), seed=seeds)
def test_binary_values_matchhost(device, shapes, seed):
    (shape_a, shape_b), result_shape = shapes
    rng = np.random.default_rng(seed)
    a_values, b_values = rng.standard_normal(shape_a), rng.uniform(0.5, 2, shape_b)
    a, b = leaf(a_values, device), leaf(b_values, device)
    for op, expected in (
        (F.add, a_values + b_values),
        (F.sub, a_values - b_values),
        (F.mul, a_values * b_values),
        (F.div, a_values / b_values),
        (F.pow, np.abs(a_values) ** b_values),
        (F.maximum, np.maximum(a_values, b_values)),
    ):
        first = F.abs(a) if op is F.pow else a
        result = op(first, b)
        assert result.shape == result_shape
        np.testing.assert_allclose(host(result), expected, rtol=1e-12, atol=1e-12, err_msg=op.__name__)


@given(values=arrays((3, 4), low=0.5, high=2.0))
def test_unary_values_matchhost(device, values):
    x = leaf(values, device)
    for op, expected in (
        (F.neg, -values),
        (F.exp, np.exp(values)),
        (F.log, np.log(values)),
        (F.sqrt, np.sqrt(values)),
        (F.tanh, np.tanh(values)),
        (F.abs, np.abs(values - 1.25)),
    ):
        argument = x - 1.25 if op is F.abs else x
        np.testing.assert_allclose(host(op(argument)), expected, rtol=1e-12, err_msg=op.__name__)


def test_reflected_operators_are_written_out(device):
    t = leaf([2.0, 4.0], device)
    np.testing.assert_array_equal(host(5 - t), [3.0, 1.0])  # other - self, not self - other
    np.testing.assert_array_equal(host(5 / t), [2.5, 1.25])  # other / self
    np.testing.assert_array_equal(host(1 + t), [3.0, 5.0])
    np.testing.assert_array_equal(host(3 * t), [6.0, 12.0])
    np.testing.assert_allclose(host(2**t), [4.0, 16.0])
    np.testing.assert_array_equal(host(-t), [-2.0, -4.0])


def test_reflected_operator_gradients(device):
    t = leaf([2.0, 4.0], device)
    (5 - t).sum().backward()
    np.testing.assert_array_equal(host(t.grad), [-1.0, -1.0])
    t.zero_grad()
    (5 / t).sum().backward()
    np.testing.assert_allclose(host(t.grad), [-5 / 4, -5 / 16])
    t.zero_grad()
    (2**t).sum().backward()
    np.testing.assert_allclose(host(t.grad), [4 * math.log(2), 16 * math.log(2)])


def test_ndarray_on_the_left_calls_the_tensor_operator(device):
    t = leaf([2.0, 4.0], device)
    other = device.xp.asarray([1.0, 8.0])
    result = other - t
    assert isinstance(result, sv.Tensor)
    np.testing.assert_array_equal(host(result), [-1.0, 4.0])
    result.sum().backward()
    np.testing.assert_array_equal(host(t.grad), [-1.0, -1.0])


def test_python_and_numpy_scalars_do_not_upcast_float32(device):
    x = sv.Tensor(device.xp.asarray([1.0, 2.0], dtype=np.float32), requires_grad=True)
    results = [
        x * 2.5,
        2.5 * x,
        x + 1,
        2.5 - x,
        x / 3.0,
        3.0 / x,
        x**2.0,
        x**2,
        F.maximum(x, 0.5),
        F.where(device.xp.asarray([True, False]), x, 0.0),
        x * np.float64(2.0),
        np.float64(2.0) * x,
        x - np.float64(0.5),
    ]
    for position, result in enumerate(results):
        assert result.dtype == np.float32, f"result {position} is {result.dtype}"
        result.sum().backward()
        assert x.grad.dtype == np.float32, f"gradient after result {position} is {x.grad.dtype}"


def test_a_float64_array_constant_with_a_float32_tensor_raises(device):
    x = sv.Tensor(device.xp.ones(2, dtype=np.float32))
    with pytest.raises(TypeError, match="Mul: input 1 has dtype float64"):
        x * device.xp.ones(2)


def test_pow_constant_exponent_gradient(device):
    x = leaf([1.5, -2.0, 0.5], device)
    F.pow(x, 3).sum().backward()
    np.testing.assert_allclose(host(x.grad), 3 * np.array([1.5, -2.0, 0.5]) ** 2)


def test_pow_tensor_exponent_gradients(device):
    base, exponent = leaf([2.0, 3.0], device), leaf([3.0, 0.5], device)
    (base**exponent).sum().backward()
    np.testing.assert_allclose(host(base.grad), [3.0 * 2.0**2, 0.5 * 3.0**-0.5])
    np.testing.assert_allclose(host(exponent.grad), [8 * math.log(2), math.sqrt(3) * math.log(3)])


def test_pow_with_a_zero_exponent_has_a_zero_gradient_also_at_zero(device):
    x = leaf([0.0, 2.0], device)  # x^0 = 1 is constant; p x^(p-1) would be 0 * inf = NaN at 0
    F.pow(x, 0).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0])
    base, exponent = leaf([0.0, 2.0, 0.0], device), leaf([0.0, 0.0, 2.0], device)
    (base**exponent).sum().backward()
    np.testing.assert_array_equal(host(base.grad), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(host(exponent.grad), [0.0, math.log(2), 0.0])


def test_maximum_ties_split_the_gradient(device):
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([1.0, 5.0, -1.0], device)
    F.maximum(a, b).backward(device.xp.asarray([2.0, 1.0, 1.0]))
    np.testing.assert_array_equal(host(a.grad), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(host(b.grad), [1.0, 1.0, 0.0])


def test_where_routes_gradients_and_broadcasts(device):
    condition = device.xp.asarray([[True, False, True], [False, False, True]])
    a, b = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device), leaf([10.0], device)
    result = F.where(condition, a, b)
    np.testing.assert_array_equal(host(result), [[1.0, 10.0, 3.0], [10.0, 10.0, 6.0]])
    result.backward(device.xp.full((2, 3), 2.0))
    np.testing.assert_array_equal(host(a.grad), [[2.0, 0.0, 2.0], [0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(host(b.grad), [6.0])


def test_where_takes_a_tensor_condition(device):
    x = leaf([-1.0, 2.0], device)
    result = F.where(x > 0, x, x * 0.0)
    np.testing.assert_array_equal(host(result), [0.0, 2.0])


def test_cast_changes_dtype_and_casts_the_gradient_back(device):
    x = sv.Tensor(device.xp.asarray([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = F.cast(x, np.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(host(x.grad), [2.0, 4.0])
    assert x.astype(np.float64).dtype == np.float64
