"""Scaled dot-product attention (Vaswani et al. 2017, Eq. 1), the core of every ViT block
(ViT Appendix A, Eq. 5-7) and, with a relative position bias and a shifted-window mask, of
every Swin block (Swin Sec. 3.2, Eq. 4).

    Attention(Q, K, V) = softmax(Q K^T * scale + bias + mask) V,   scale = 1 / sqrt(d)
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor, unbroadcast
from ..backend import xp_of
from .random import keep_mask


class ScaledDotProductAttention(Function):
    def forward(self, q, k, v, bias, mask, scale, dropout_mask):
        """q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv); bias, mask broadcast to (..., Nq, Nk);
        dropout_mask: None, or 0 / (1 / keep_prob) of the attention's shape (attention dropout)"""
        xp = xp_of(q)
        scores = q @ k.swapaxes(-1, -2)
        scores *= scale
        if bias is not None:
            scores = scores + bias  # not in place: bias may broadcast scores to a larger shape
        if mask is not None:
            scores = scores + mask
        scores -= scores.max(axis=-1, keepdims=True)  # softmax in place, shifted by the row max
        xp.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v, self.attention, self.scale = q, k, v, scores, scale
        self.bias_shape, self.dropout_mask = (None if bias is None else bias.shape), dropout_mask
        return (scores if dropout_mask is None else scores * dropout_mask) @ v

    def backward(self, grad):
        # with D the dropout mask (1 without dropout) and A the attention:
        # dV = (A D)^T g;  dA = (g V^T) D;  dS = A * (dA - sum(dA * A));  dQ = dS K * scale;  dK = dS^T Q * scale
        attention, dropout_mask = self.attention, self.dropout_mask
        kept = attention if dropout_mask is None else attention * dropout_mask
        grad_v = kept.swapaxes(-1, -2) @ grad
        grad_scores = grad @ self.v.swapaxes(-1, -2)
        if dropout_mask is not None:
            grad_scores *= dropout_mask
        grad_scores -= (grad_scores * attention).sum(axis=-1, keepdims=True)
        grad_scores *= attention
        grad_bias = None if self.bias_shape is None else unbroadcast(grad_scores, self.bias_shape)
        # not in place: when bias has the scores' full shape, unbroadcast returned grad_scores itself
        grad_scores = grad_scores * self.scale
        grad_q = grad_scores @ self.k
        grad_k = grad_scores.swapaxes(-1, -2) @ self.q
        return (
            unbroadcast(grad_q, self.q.shape),
            unbroadcast(grad_k, self.k.shape),
            unbroadcast(grad_v, self.v.shape),
            grad_bias,
        )


def scaled_dot_product_attention(
    q, k, v, bias=None, mask=None, scale: float | None = None, dropout_p: float = 0.0, training: bool = True
) -> Tensor:
    """softmax(q k^T * scale + bias + mask) v, with dropout on the attention weights if dropout_p > 0.

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv) -> (..., Nq, dv).
    bias: an additive tensor that gets a gradient (Swin's relative position bias), broadcastable
    to (..., Nq, Nk). mask: additive and constant (Swin's shifted-window mask of 0 / -100), or
    boolean with True where attention is allowed. scale defaults to 1 / sqrt(d). dropout_p: the
    probability of dropping each attention weight while training (timm's attn_drop).
    """
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"attention needs q, k, v of at least 2 dims, got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q has head dim {q.shape[-1]} but k has {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k has {k.shape[-2]} tokens but v has {v.shape[-2]}")
    if isinstance(mask, Tensor):
        mask = mask.data
    if mask is not None and mask.dtype == bool:
        mask = xp_of(mask).where(mask, 0.0, -math.inf).astype(q.dtype)
    elif mask is not None and mask.dtype != q.dtype:
        raise TypeError(f"attention: mask has dtype {mask.dtype} but q has {q.dtype}; cast it (no silent upcast)")
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention dropout_p must be in [0, 1), got {dropout_p}")
    dropout_mask = None
    if training and dropout_p > 0.0:
        scores_shape = _broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
        if bias is not None:
            scores_shape = _broadcast_shapes(scores_shape, bias.shape)
        if mask is not None:
            scores_shape = _broadcast_shapes(scores_shape, mask.shape)
        dropout_mask = keep_mask(q, scores_shape, dropout_p)
    return ScaledDotProductAttention.apply(q, k, v, bias, mask=mask, scale=scale, dropout_mask=dropout_mask)


def _broadcast_shapes(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))
