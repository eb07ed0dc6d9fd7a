"""scaled_dot_product_attention against its composition (matmul, softmax, add), forward and
backward, plain and with bias, additive mask and boolean mask; attention dropout; errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value_and_grads, host, leaf, seeds, small

import scratchvit as sv
from scratchvit import ops as F


def attention_reference(q, k, v, bias=None, mask=None, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = F.mul(F.matmul(q, F.transpose(k, -1, -2)), scale)
    if bias is not None:
        scores = F.add(scores, bias)
    if mask is not None:
        scores = F.add(scores, mask)
    weights = F.exp(scores)  # moderate scores: no shift needed; exp(-inf) = 0 where masked
    weights = F.div(weights, F.sum(weights, axis=-1, keepdims=True))
    return F.matmul(weights, v)


@st.composite
def attention_case(draw):
    batch, heads, head_dim = (draw(small) for _ in range(3))
    queries, keys = draw(st.integers(1, 9)), draw(st.integers(1, 9))  # long rows: weights recomputed
    bias_shape = draw(st.sampled_from([None, (queries, keys), (heads, queries, keys), (batch, heads, queries, keys)]))
    mask_kind = draw(st.sampled_from([None, "additive", "boolean"]))
    return (batch, heads, queries, keys, head_dim), bias_shape, mask_kind, draw(seeds)


@given(case=attention_case(), scale=st.sampled_from([None, 0.3]))
def test_attention_equals_its_composition(device, case, scale):
    (batch, heads, queries, keys, head_dim), bias_shape, mask_kind, seed = case
    rng = np.random.default_rng(seed)
    arrays = [
        rng.standard_normal((batch, heads, queries, head_dim)),
        rng.standard_normal((batch, heads, keys, head_dim)),
        rng.standard_normal((batch, heads, keys, head_dim + 1)),
    ]
    if bias_shape is not None:
        arrays.append(rng.standard_normal(bias_shape))
    allowed = rng.random((queries, keys)) < 0.6
    allowed[:, 0] = True  # at least one key per query
    if mask_kind == "boolean":
        mask, reference_mask = device.xp.asarray(allowed), device.xp.asarray(np.where(allowed, 0.0, -np.inf))
    elif mask_kind == "additive":
        mask = reference_mask = device.xp.asarray(np.where(allowed, 0.0, -100.0))
    else:
        mask = reference_mask = None

    def fused(q, k, v, bias=None):
        return F.scaled_dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale)

    def reference(q, k, v, bias=None):
        return attention_reference(q, k, v, bias=bias, mask=reference_mask, scale=scale)

    assert_same_value_and_grads(fused, reference, arrays, device, seed=seed % 1000)


def test_a_full_shape_bias_gets_the_unscaled_gradient(device):
    """Regression: with a bias of the scores' full shape, the bias gradient was scaled in place."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 2))]
    arrays.append(rng.standard_normal((2, 3, 3)))
    assert_same_value_and_grads(
        lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, bias=b), attention_reference, arrays, device
    )


def test_masked_keys_get_zero_weight_and_value_gradient(device):
    q, k = leaf(np.ones((1, 2, 2)), device), leaf(np.ones((1, 3, 2)), device)
    v = leaf(np.arange(6.0).reshape(1, 3, 2), device)
    allowed = device.xp.asarray([[True, False, True], [True, False, False]])
    out = F.scaled_dot_product_attention(q, k, v, mask=allowed)
    np.testing.assert_allclose(host(out)[0], [[2.0, 3.0], [0.0, 1.0]])  # equal scores: mean of allowed values
    out.sum().backward()
    np.testing.assert_array_equal(host(v.grad)[0, 1], [0.0, 0.0])


def test_attention_dropout_is_off_in_eval_and_reproducible_with_a_seed(device):
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((2, 4, 3)), device) for _ in range(3))
    plain = host(F.scaled_dot_product_attention(q, k, v))
    evaluated = host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False))
    np.testing.assert_array_equal(evaluated, plain)
    sv.manual_seed(7)
    first = host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    sv.manual_seed(7)
    second = host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, plain)


def test_attention_errors_name_the_argument(device):
    q, k, v = leaf(np.ones((2, 4, 3)), device), leaf(np.ones((2, 5, 2)), device), leaf(np.ones((2, 5, 3)), device)
    with pytest.raises(ValueError, match="q has head dim 3 but k has 2"):
        F.scaled_dot_product_attention(q, k, v)
    with pytest.raises(ValueError, match="k has 4 tokens but v has 5"):
        F.scaled_dot_product_attention(q, q, v)
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.scaled_dot_product_attention(leaf(np.ones(3), device), q, q)
    with pytest.raises(TypeError, match="mask has dtype float32 but q has float64"):
        F.scaled_dot_product_attention(q, q, q, mask=device.xp.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got 1.5"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


@given(
    sizes=st.tuples(small, small, small, st.integers(1, 8), small),  # 8 tokens of 1: weights recomputed
    with_bias=st.booleans(),
    with_mask=st.booleans(),
    seed=seeds,
)
def test_multi_head_self_attention_equals_split_heads_and_attention(device, sizes, with_bias, with_mask, seed):
    """The fused op from packed qkv equals slicing q, k, v out of it with primitives, attending per
    head with the window mask of each sample (mask[b % G]), and concatenating the heads."""
    groups, images, heads, tokens, head_dim = sizes
    batch, width = groups * images, heads * head_dim
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((batch, tokens, 3 * width))]
    if with_bias:
        arrays.append(rng.standard_normal((heads, tokens, tokens)))
    allowed = rng.random((groups, tokens, tokens)) < 0.6
    allowed[:, :, 0] = True
    mask = device.xp.asarray(np.where(allowed, 0.0, -100.0)) if with_mask else None

    def fused(qkv, bias=None):
        return F.multi_head_self_attention(qkv, heads, bias=bias, mask=mask)

    def composed(qkv, bias=None):
        split = F.permute(F.reshape(qkv, (batch, tokens, 3, heads, head_dim)), (2, 0, 3, 1, 4))
        per_sample_mask = None
        if mask is not None:  # sample b = (image, window) image-major takes mask[b % G]
            per_sample_mask = device.xp.tile(mask, (images, 1, 1))[:, None]
        out = attention_reference(split[0], split[1], split[2], bias=bias, mask=per_sample_mask)
        return F.reshape(F.transpose(out, 1, 2), (batch, tokens, width))

    assert_same_value_and_grads(fused, composed, arrays, device, seed)


def test_multi_head_self_attention_rejects_bad_shapes():
    qkv = sv.zeros(4, 3, 12)
    with pytest.raises(ValueError, match="divisible by num_heads 5"):
        F.multi_head_self_attention(qkv, 5)
    with pytest.raises(ValueError, match=r"mask must be \(G, 3, 3\) with 4 samples a multiple of G"):
        F.multi_head_self_attention(qkv, 2, mask=np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="bias must broadcast to"):
        F.multi_head_self_attention(qkv, 2, bias=sv.zeros(3, 3, 3))
