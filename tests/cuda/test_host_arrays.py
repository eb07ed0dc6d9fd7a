"""The one rule for host arrays: a NumPy array handed to an op (a mask, a condition, a constant)
moves to the device of the op's tensors, for every op. Run on the CPU and, under the CuPy
stand-in or on a GPU, on cuda, where NumPy arrays meeting CuPy arrays would raise."""

from __future__ import annotations

import numpy as np

import scratchvit as sv
from scratchvit import backend
from scratchvit import ops as F

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
Y = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def on(device, array, requires_grad=False):
    return sv.Tensor(array, device=device, requires_grad=requires_grad)


def host(value):
    return backend.to_numpy(value.data if isinstance(value, sv.Tensor) else value)


def test_a_host_condition_of_where(device):
    condition = X > 0
    a, b = on(device, X, True), on(device, Y, True)
    out = F.where(condition, a, b)
    assert out.device == device
    np.testing.assert_array_equal(host(out), np.where(condition, X, Y))
    out.sum().backward()
    np.testing.assert_array_equal(host(a.grad), condition.astype(np.float32))


def test_a_host_boolean_mask_of_attention(device):
    q = on(device, X, True)
    allowed = np.tril(np.ones((3, 3), bool))  # causal: each query sees itself and the keys before it
    out = F.scaled_dot_product_attention(q, q, q, mask=allowed)
    assert out.device == device
    np.testing.assert_allclose(host(out)[:, 0], X[:, 0], rtol=1e-6)  # the first query sees only itself
    out.sum().backward()
    assert q.grad.shape == X.shape and np.isfinite(host(q.grad)).all()


def test_a_host_additive_mask_of_attention(device):
    q = on(device, X)
    additive = np.where(np.tril(np.ones((3, 3), bool)), 0.0, -np.inf).astype(np.float32)
    out = F.scaled_dot_product_attention(q, q, q, mask=additive)
    np.testing.assert_allclose(host(out)[:, 0], X[:, 0], rtol=1e-6)


def test_comparisons_and_arithmetic_with_host_arrays(device):
    x = on(device, X)
    for result, expected in ((x < Y, X < Y), (x > Y, X > Y), (x + Y, X + Y), (Y * x, Y * X), (x @ Y[0].T, X @ Y[0].T)):
        assert result.device == device
        np.testing.assert_allclose(host(result), expected, rtol=1e-6)
