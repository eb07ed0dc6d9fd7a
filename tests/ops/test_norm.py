"""layer_norm against its composition from primitives (mean, var, sqrt, div), forward and
backward; zero mean and unit variance per row without affine; the weight / bias shape error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value_and_grads, host, leaf, seeds, small

from scratchvit import ops as F


def layer_norm_reference(x, weight=None, bias=None, eps=1e-5):
    mean = F.mean(x, axis=-1, keepdims=True)
    centered = F.sub(x, mean)
    variance = F.mean(F.mul(centered, centered), axis=-1, keepdims=True)
    out = F.div(centered, F.sqrt(F.add(variance, eps)))
    if weight is not None:
        out = F.mul(out, weight)
    if bias is not None:
        out = F.add(out, bias)
    return out


@given(
    sizes=st.tuples(small, small, st.integers(1, 6)),
    affine=st.sampled_from(["none", "weight", "bias", "both"]),
    eps=st.sampled_from([1e-5, 1e-6, 0.1]),
    seed=seeds,
)
def test_layer_norm_equals_its_composition(device, sizes, affine, eps, seed):
    rng = np.random.default_rng(seed)
    channels = sizes[-1]
    arrays = [2 * rng.standard_normal(sizes) + 1]
    names = []
    if affine in ("weight", "both"):
        arrays.append(1 + 0.5 * rng.standard_normal(channels))
        names.append("weight")
    if affine in ("bias", "both"):
        arrays.append(rng.standard_normal(channels))
        names.append("bias")

    def call(op):
        return lambda x, *params: op(x, **dict(zip(names, params, strict=True)), eps=eps)

    assert_same_value_and_grads(call(F.layer_norm), call(layer_norm_reference), arrays, device, seed=seed % 1000)


def test_layer_norm_matches_the_composition_through_var(device):
    """The same with the var primitive (population variance, correction 0)."""
    values = np.random.default_rng(0).standard_normal((3, 5))

    def reference(x):
        centered = x - x.mean(axis=-1, keepdims=True)
        return centered / (x.var(axis=-1, keepdims=True) + 1e-5).sqrt()

    assert_same_value_and_grads(F.layer_norm, reference, [values], device)


@given(sizes=st.tuples(small, st.integers(2, 8)), seed=seeds)
def test_layer_norm_rows_have_zero_mean_and_unit_variance(device, sizes, seed):
    values = 3 * np.random.default_rng(seed).standard_normal(sizes) + 5
    out = host(F.layer_norm(leaf(values, device), eps=0.0))
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-10)


def test_layer_norm_weight_and_bias_shapes_are_checked(device):
    x = leaf(np.ones((2, 4)), device)
    with pytest.raises(
        ValueError, match=r"layer_norm: weight must have shape \(4,\) to match x's last dim, got \(3,\)"
    ):
        F.layer_norm(x, leaf(np.ones(3), device))
    with pytest.raises(ValueError, match=r"layer_norm: bias must have shape \(4,\)"):
        F.layer_norm(x, leaf(np.ones(4), device), leaf(np.ones((1, 4)), device))


def test_layer_norm_float32(device):
    x = leaf(np.random.default_rng(0).standard_normal((2, 8)), device, dtype=np.float32)
    weight, bias = leaf(np.ones(8), device, dtype=np.float32), leaf(np.zeros(8), device, dtype=np.float32)
    out = F.layer_norm(x, weight, bias, eps=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(host(out).mean(axis=-1), 0.0, atol=1e-6)


def test_layer_norm_float32_at_vit_width_matches_float64(device):
    """ViT-S rows (C = 384) with a mean far from 0, float32 against the float64 result."""
    rng = np.random.default_rng(0)
    values = 3 * rng.standard_normal((50, 384)) + 20
    arrays = [values, 1 + 0.1 * rng.standard_normal(384), rng.standard_normal(384)]
    upstream = rng.standard_normal(values.shape)
    results = {}
    for dtype in (np.float32, np.float64):
        leaves = [leaf(a, device, dtype=dtype) for a in arrays]
        out = F.layer_norm(*leaves, eps=1e-6)
        out.backward(device.xp.asarray(upstream, dtype=dtype))
        assert out.dtype == dtype and leaves[0].grad.dtype == dtype
        results[dtype] = [host(out)] + [host(t.grad) for t in leaves]
    for got, expected in zip(results[np.float32], results[np.float64], strict=True):
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())
