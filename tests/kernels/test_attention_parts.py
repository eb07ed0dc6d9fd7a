"""The attention kernel (kernels/cpu/attention.py): the weights kept or one number per query row
recomputed, and the batch cut into parts on threads, each equal to one part."""

from __future__ import annotations

import math

import numpy as np
import pytest
from strategies import cut_in_parts, host, leaf

import scratchvit as sv
from scratchvit import ops as F


@pytest.mark.parametrize("tokens, head_dim, kept", [(5, 4, True), (9, 1, False)])
def test_attention_keeps_the_weights_or_one_number_per_query_row(tokens, head_dim, kept):
    """5 x 5 weights are no larger than q, k, v (5 x 4 each): kept. 9 x 9 are larger than 9 x 1
    each: the backward recomputes them from q, k and L = log sum exp(scores) per query row."""
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((2, 3, tokens, head_dim)), "cpu") for _ in range(3))
    qkv = leaf(rng.standard_normal((2, tokens, 3 * 3 * head_dim)), "cpu")
    single = F.scaled_dot_product_attention(q, k, v)
    fused = F.multi_head_self_attention(qkv, 3)  # heads viewed as (B, 1 group, heads, N, d)
    for out, leading in ((single, (2, 3)), (fused, (2, 1, 3))):
        [(weights, log_normaliser)] = out.creator.saved
        if kept:
            assert log_normaliser is None and weights.shape == leading + (tokens, tokens)
            np.testing.assert_allclose(host(weights).sum(axis=-1), 1.0, rtol=1e-12)
        else:
            assert weights is None and log_normaliser.shape == leading + (tokens, 1)
    if not kept:
        scores = host(q.data @ k.data.swapaxes(-1, -2)) / math.sqrt(head_dim)
        expected = np.log(np.exp(scores).sum(axis=-1, keepdims=True))
        np.testing.assert_allclose(host(single.creator.saved[0][1]), expected, rtol=1e-12)


@pytest.mark.parametrize("tokens", [4, 9])  # weights kept / recomputed
def test_attention_in_parts_equals_one_part(tokens):
    """Cut into parts of the batch on threads (kernels/cpu/threads.py), attention gives what one part gives:
    values and every gradient, with a bias, a mask and dropout cut or broadcast as they come."""
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((5, 2, tokens, 2)) for _ in range(3)] + [rng.standard_normal((2, tokens, tokens))]
    mask = np.where(rng.random((5, 1, tokens, tokens)) < 0.7, 0.0, -100.0)
    qkv_value = rng.standard_normal((6, tokens, 3 * 2 * 2))  # 3 images of 2 windows, 2 heads of 2
    window_mask = np.where(rng.random((2, tokens, tokens)) < 0.7, 0.0, -100.0)

    def run():
        sv.manual_seed(3)
        q, k, v, bias, qkv, window_bias = (sv.Tensor(a, requires_grad=True) for a in values + [qkv_value, values[3]])
        out = F.scaled_dot_product_attention(q, k, v, bias=bias, mask=mask, dropout_p=0.2)
        fused = F.multi_head_self_attention(qkv, 2, bias=window_bias, mask=window_mask)
        cuts = (len(out.creator.cuts), len(fused.creator.cuts))
        (F.sum(out * out) + F.sum(fused * fused)).backward()
        return cuts, [host(out), host(fused)] + [host(t.grad) for t in (q, k, v, bias, qkv, window_bias)]

    one_cut, one_part = run()
    with cut_in_parts(3):
        three_cuts, three_parts = run()
    assert one_cut == (1, 1) and three_cuts == (3, 3)
    for got, expected in zip(three_parts, one_part, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
