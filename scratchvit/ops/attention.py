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


def attention_scores(q, k, bias, mask, scale: float):
    """S = q k^T * scale + bias + mask: (..., Nq, Nk)."""
    # BEGIN SOLUTION 4.1 attention_scores
    scores = q @ k.swapaxes(-1, -2) * scale
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + mask
    return scores
    # END SOLUTION 4.1


class AttentionFunction(Function):
    """The attention core shared by both attention ops, on raw arrays.

        S = q k^T * scale + bias + mask,   A = softmax(S) along the keys,   O = (A * D) v

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv) -> O: (..., Nq, dv); bias, mask and the
    dropout mask D (0 or 1 / keep_prob; all ones without dropout) broadcast to S: (..., Nq, Nk).

    Backward, from g = dL/dO, one product rule at a time:
        dv = (A * D)^T g,   dA = (g v^T) * D,
        dS = A * (dA - sum_j dA * A)           (softmax's backward, row by row),
        dq = dS k * scale,  dk = dS^T q * scale,  d bias = dS  (then summed to bias's shape).
    The weights A (Nq x Nk per head) are kept from the forward for the backward; a kernel may
    recompute them instead (scratchvit.kernels).
    """

    def attend(self, q, k, v, bias, mask, scale: float, dropout_mask):
        """O for q, k, v; keeps what attend_backward needs."""
        # BEGIN SOLUTION 4.1 AttentionFunction.attend
        scores = attention_scores(q, k, bias, mask, scale)
        exps = xp_of(scores).exp(scores - scores.max(axis=-1, keepdims=True))
        weights = exps / exps.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v, self.weights = q, k, v, weights
        self.scale, self.dropout_mask = scale, dropout_mask
        return (weights if dropout_mask is None else weights * dropout_mask) @ v
        # END SOLUTION 4.1

    def attend_backward(self, grad):
        """(dq, dk, dv, dS) of the broadcast shapes, from g = dL/dO."""
        # BEGIN SOLUTION 4.1 AttentionFunction.attend_backward
        weights, dropout_mask = self.weights, self.dropout_mask
        kept = weights if dropout_mask is None else weights * dropout_mask
        grad_v = kept.swapaxes(-1, -2) @ grad  # dv = (A D)^T g
        grad_weights = grad @ self.v.swapaxes(-1, -2)  # dA = (g v^T) D
        if dropout_mask is not None:
            grad_weights = grad_weights * dropout_mask
        grad_scores = weights * (grad_weights - (grad_weights * weights).sum(axis=-1, keepdims=True))
        grad_q = grad_scores @ self.k * self.scale  # dq = dS k * scale
        grad_k = grad_scores.swapaxes(-1, -2) @ self.q * self.scale  # dk = dS^T q * scale
        return grad_q, grad_k, grad_v, grad_scores
        # END SOLUTION 4.1


class ScaledDotProductAttention(AttentionFunction):
    """softmax(q k^T * scale + bias + mask) v: see AttentionFunction; bias and mask, and q, k, v too,
    may broadcast.

    Backward: see AttentionFunction; each gradient is summed back to its input's shape.
    """

    def forward(self, q, k, v, bias, mask, scale, dropout_mask):
        """q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv) -> (..., Nq, dv)"""
        self.shapes = (q.shape, k.shape, v.shape, None if bias is None else bias.shape)
        return self.attend(q, k, v, bias, mask, scale, dropout_mask)

    def backward(self, grad):
        # BEGIN SOLUTION 4.1 ScaledDotProductAttention.backward
        # dq, dk, dv, d bias from attend_backward, each summed to its input's shape
        grad_q, grad_k, grad_v, grad_scores = self.attend_backward(grad)
        grads = (grad_q, grad_k, grad_v, None if self.shapes[3] is None else grad_scores)
        return tuple(None if g is None else unbroadcast(g, shape) for g, shape in zip(grads, self.shapes, strict=True))
        # END SOLUTION 4.1


class MultiHeadSelfAttention(AttentionFunction):
    """Attention straight from the qkv projection (ViT Appendix A, Eq. 5-8; Swin Eq. 4).

    qkv: (B, N, 3C) holds per token q, k, v, each as (heads, head_dim). The heads are split by
    reshaping and transposing (views), attended as in AttentionFunction, and merged back to
    (B, N, C). Samples are viewed as (B / G, G) so that a mask of G windows broadcasts over the
    images (Swin).

    Backward: as in AttentionFunction; dq, dk and dv are written into their thirds of one
    (B, N, 3C) gradient.
    """

    def forward(self, qkv, bias, num_heads, mask, scale, dropout_mask):
        """qkv: (B, N, 3C) laid out (3, heads, head_dim) per token -> (B, N, C), heads concatenated"""
        # BEGIN SOLUTION 4.2 MultiHeadSelfAttention.forward
        batch, tokens, width = qkv.shape
        groups = 1 if mask is None else mask.shape[0]
        self.shape = (batch // groups, groups, tokens, 3, num_heads, width // (3 * num_heads))
        heads = qkv.reshape(self.shape)
        # q, k, v: views (B / G, G, heads, N, head_dim)
        q, k, v = (heads[:, :, :, part].transpose(0, 1, 3, 2, 4) for part in range(3))
        if mask is not None:
            mask = mask[:, None]  # (G, 1, N, N): the same for every image and head
        self.bias_shape = None if bias is None else bias.shape
        output = self.attend(q, k, v, bias, mask, scale, dropout_mask)
        return output.transpose(0, 1, 3, 2, 4).reshape(batch, tokens, width // 3)
        # END SOLUTION 4.2

    def backward(self, grad):
        # BEGIN SOLUTION 4.2 MultiHeadSelfAttention.backward
        # dq, dk, dv from attend_backward, written into their thirds of d(qkv); d bias summed to its shape
        outer, groups, tokens, _, num_heads, head_dim = self.shape
        grad = grad.reshape(outer, groups, tokens, num_heads, head_dim).transpose(0, 1, 3, 2, 4)
        *grads, grad_scores = self.attend_backward(grad)
        grad_qkv = xp_of(grad).empty(self.shape, dtype=grad.dtype)
        for part in range(3):
            grad_qkv[:, :, :, part] = grads[part].transpose(0, 1, 3, 2, 4)
        grad_bias = None if self.bias_shape is None else unbroadcast(grad_scores, self.bias_shape)
        return grad_qkv.reshape(outer * groups, tokens, -1), grad_bias
        # END SOLUTION 4.2


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


def multi_head_self_attention(
    qkv, num_heads: int, bias=None, mask=None, scale: float | None = None, dropout_p: float = 0.0, training: bool = True
) -> Tensor:
    """Multi-head self-attention from the qkv projection (ViT Appendix A, Eq. 5-8; Swin Eq. 4).

    qkv: (B, N, 3C), the output of timm's qkv Linear: per token q, k, v, each as (heads, head_dim).
    -> (B, N, C), the heads' outputs concatenated per token (ready for the output projection).
    bias: (heads, N, N), differentiable (Swin's relative position bias), added to every sample.
    mask: (G, N, N), additive and constant; sample b uses mask[b % G] (Swin's shifted-window mask,
    G windows per image, windows image-major as window_partition orders them). B % G must be 0.
    """
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * num_heads):
        raise ValueError(
            f"multi_head_self_attention: qkv must be (B, N, 3 * C) with C divisible by num_heads "
            f"{num_heads}, got shape {tuple(qkv.shape)}"
        )
    batch, tokens, width = qkv.shape
    head_dim = width // (3 * num_heads)
    if bias is not None and not _broadcasts_to(tuple(bias.shape), (num_heads, tokens, tokens)):
        raise ValueError(
            f"multi_head_self_attention: bias must broadcast to {(num_heads, tokens, tokens)}, got {tuple(bias.shape)}"
        )
    if isinstance(mask, Tensor):
        mask = mask.data
    if mask is not None:
        if mask.ndim != 3 or mask.shape[1:] != (tokens, tokens) or batch % mask.shape[0]:
            raise ValueError(
                f"multi_head_self_attention: mask must be (G, {tokens}, {tokens}) with {batch} samples "
                f"a multiple of G, got shape {tuple(mask.shape)}"
            )
        if mask.dtype != qkv.dtype:
            raise TypeError(f"multi_head_self_attention: mask has dtype {mask.dtype} but qkv has {qkv.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention dropout_p must be in [0, 1), got {dropout_p}")
    groups = 1 if mask is None else mask.shape[0]
    dropout_mask = None
    if training and dropout_p > 0.0:
        dropout_mask = keep_mask(qkv, (batch // groups, groups, num_heads, tokens, tokens), dropout_p)
    scale = 1 / math.sqrt(head_dim) if scale is None else float(scale)
    return MultiHeadSelfAttention.apply(
        qkv, bias, num_heads=num_heads, mask=mask, scale=scale, dropout_mask=dropout_mask
    )


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _broadcast_shapes(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))
