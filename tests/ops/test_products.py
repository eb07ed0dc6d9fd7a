"""matmul (batched broadcasting, 1-D cases) against NumPy, and the fused linear against its
composition from primitives (matmul + transpose + add), forward and backward."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value_and_grads, host, leaf, matmul_shapes, seeds, small

from scratchvit import ops as F


@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_matches_numpy_and_gradients_keep_each_input_shape(device, shapes, seed):
    shape_a, shape_b = shapes
    rng = np.random.default_rng(seed)
    a_values, b_values = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    a, b = leaf(a_values, device), leaf(b_values, device)
    out = a @ b
    expected = a_values @ b_values
    np.testing.assert_allclose(host(out), expected, rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(np.shape(expected))
    out.backward(device.xp.asarray(upstream))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    # reference gradients of sum(out * r): via einsum on explicitly broadcast operands
    a2 = a_values[None, :] if a_values.ndim == 1 else a_values
    b2 = b_values[:, None] if b_values.ndim == 1 else b_values
    r2 = np.reshape(upstream, np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
    grad_a2 = r2 @ np.swapaxes(b2, -1, -2)
    grad_b2 = np.swapaxes(a2, -1, -2) @ r2
    grad_a = _sum_to(grad_a2, a2.shape).reshape(shape_a)
    grad_b = _sum_to(grad_b2, b2.shape).reshape(shape_b)
    np.testing.assert_allclose(host(a.grad), grad_a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(b.grad), grad_b, rtol=1e-12, atol=1e-12)


def _sum_to(values: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast result back to `shape` (an independent reference for unbroadcast)."""
    while values.ndim > len(shape):
        values = values.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and values.shape[axis] != 1:
            values = values.sum(axis=axis, keepdims=True)
    return values


def test_vector_dot_vector(device):
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([4.0, 5.0, 6.0], device)
    out = F.matmul(a, b)
    assert out.shape == ()
    assert out.item() == 32.0
    out.backward()
    np.testing.assert_array_equal(host(a.grad), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(host(b.grad), [1.0, 2.0, 3.0])


def test_ndarray_at_tensor(device):
    b = leaf(np.eye(2) * 3, device)
    out = device.xp.asarray([[1.0, 2.0]]) @ b
    np.testing.assert_array_equal(host(out), [[3.0, 6.0]])


@given(sizes=st.tuples(small, small, small, small), seed=seeds, bias=st.booleans())
def test_linear_equals_matmul_transpose_add(device, sizes, seed, bias):
    batch, tokens, features_in, features_out = sizes
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((batch, tokens, features_in)), rng.standard_normal((features_out, features_in))]
    if bias:
        arrays.append(rng.standard_normal(features_out))

    def reference(x, weight, b=None):
        out = F.matmul(x, F.transpose(weight, 0, 1))
        return out if b is None else F.add(out, b)

    assert_same_value_and_grads(F.linear, reference, arrays, device, seed=seed % 1000)


def test_linear_on_a_vector_and_float32(device):
    x = leaf(np.ones(3), device, dtype=np.float32)
    weight = leaf(np.arange(6.0).reshape(2, 3), device, dtype=np.float32)
    out = F.linear(x, weight)
    assert out.shape == (2,) and out.dtype == np.float32
    np.testing.assert_array_equal(host(out), [3.0, 12.0])


def test_matmul_and_linear_errors_name_the_argument(device):
    x = leaf(np.ones((2, 3)), device)
    with pytest.raises(ValueError, match=r"do not match in the inner dimension"):
        F.matmul(x, leaf(np.ones((2, 3)), device))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        F.matmul(x, leaf(np.array(2.0), device))
    with pytest.raises(ValueError, match=r"weight must be 2-D \(out_features, in_features\), got shape \(3,\)"):
        F.linear(x, leaf(np.ones(3), device))
    with pytest.raises(ValueError, match="x has 3 features in its last dim but weight expects 4"):
        F.linear(x, leaf(np.ones((5, 4)), device))
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\), got \(4,\)"):
        F.linear(x, leaf(np.ones((5, 3)), device), leaf(np.ones(4), device))
