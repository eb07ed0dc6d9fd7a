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
from . import threads
from .random import keep_mask


def attention_scores(q, k, bias, mask, scale: float):
    """S = q k^T * scale + bias + mask: (..., Nq, Nk), a new array."""
    scores = q @ k.swapaxes(-1, -2)
    scores *= scale
    for term in (bias, mask):
        if term is None:
            continue
        if np.broadcast_shapes(scores.shape, term.shape) == scores.shape:
            scores += term
        else:  # the term broadcasts the scores to a larger shape
            scores = scores + term
    return scores


def keeps_weights(q, k, v) -> bool:
    """Whether the backward gets the attention weights A kept from the forward (True), or
    recomputes them from q, k and L = log sum_j exp(S_ij), as PyTorch's flash attention does.

    A has Nq x Nk numbers per head, q, k and v (kept anyway) Nq d + Nk d + Nk dv: A is kept while
    it is no larger than they are, which caps what attention saves at twice its inputs. Beyond
    that it is recomputed at the price of one more q k^T: MAE's decoder (197 tokens, heads of 32)
    would otherwise save more for its weights than for all its other activations together.
    """
    queries, keys, head_dim, value_dim = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    return queries * keys <= queries * head_dim + keys * (head_dim + value_dim)


def attention_forward(q, k, v, bias, mask, scale: float, dropout_mask):
    """softmax(S) [dropped out] @ v, S = attention_scores(q, k, bias, mask, scale).

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv); bias, mask, dropout_mask broadcast to the
    scores (..., Nq, Nk); dropout_mask holds 0 or 1 / keep_prob. Returns (output, A, None) when
    keeps_weights(q, k, v), else (output, None, L), L = log sum_j exp(S_ij) of shape (..., Nq, 1).
    """
    xp = xp_of(q)
    weights = attention_scores(q, k, bias, mask, scale)
    # softmax in place, shifted by the row max; row sums by einsum (one pass, no temporary)
    row_max = weights.max(axis=-1, keepdims=True)
    weights -= row_max
    xp.exp(weights, out=weights)
    row_sum = xp.einsum("...j->...", weights)[..., None]
    weights /= row_sum
    output = (weights if dropout_mask is None else weights * dropout_mask) @ v
    if keeps_weights(q, k, v):
        return output, weights, None
    xp.log(row_sum, out=row_sum)
    row_sum += row_max
    return output, None, row_sum


def attention_backward(grad, q, k, v, weights, log_normaliser, bias, mask, scale: float, dropout_mask):
    """Gradients of attention_forward: (dq, dk, dv) of the broadcast shapes, and dS for the bias.

    The weights A are the forward's, or recomputed as exp(S - L). With D the dropout mask
    (1 without dropout):
    dV = (A D)^T g;  dA = (g V^T) D;  dS = A * (dA - sum(dA * A));  dQ = dS K * scale;  dK = dS^T Q * scale
    dS is also the bias gradient. The scale multiplies dQ and dK, smaller than dS when Nk > d.
    """
    xp = xp_of(grad)
    if weights is None:
        weights = attention_scores(q, k, bias, mask, scale)
        weights -= log_normaliser
        xp.exp(weights, out=weights)
    kept = weights if dropout_mask is None else weights * dropout_mask
    grad_v = kept.swapaxes(-1, -2) @ grad
    grad_scores = grad @ v.swapaxes(-1, -2)
    if dropout_mask is not None:
        grad_scores *= dropout_mask
    grad_scores -= xp.einsum("...j,...j->...", grad_scores, weights)[..., None]
    grad_scores *= weights
    grad_q = grad_scores @ k
    grad_q *= scale
    grad_k = grad_scores.swapaxes(-1, -2) @ q
    grad_k *= scale
    return grad_q, grad_k, grad_v, grad_scores


def _part(array, axis: int, start: int, stop: int, ndim: int):
    """array[start:stop] along `axis` of the ndim-dim broadcast shape; all of it where it broadcasts."""
    if array is None:
        return None
    local = axis - (ndim - array.ndim)  # shapes align on the right
    if local < 0 or array.shape[local] == 1:
        return array
    return array[(slice(None),) * local + (slice(start, stop),)]


class AttentionParts:
    """attention_forward / attention_backward over parts of the batch, side by side on
    threads.py's threads once the work is large enough: the whole op, products and softmax, runs
    per part, so one thread's wake-up is paid per op, not per product."""

    def forward(self, q, k, v, bias, mask, scale: float, dropout_mask):
        """attention_forward's output; each part's weights or L are kept for the backward."""
        self.q, self.k, self.v, self.bias, self.mask = q, k, v, bias, mask
        self.scale, self.dropout_mask = scale, dropout_mask
        arrays = [a for a in (q, k, v, bias, mask, dropout_mask) if a is not None]
        self.ndim = max(a.ndim for a in arrays)
        leading = np.broadcast_shapes(*(a.shape[:-2] for a in arrays))
        queries, keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
        parts = 1
        if isinstance(q, np.ndarray) and leading:
            parts = threads.parts_for(4 * math.prod(leading) * queries * keys * head_dim)  # q k^T and A v
        self.axis = int(np.argmax(leading)) if leading else 0
        if parts < 2 or leading[self.axis] < parts:
            self.cuts = [None]
            output, weights, log_normaliser = attention_forward(q, k, v, bias, mask, scale, dropout_mask)
            self.saved = [(weights, log_normaliser)]
            return output
        self.cuts = threads.bounds(leading[self.axis], parts)
        results = threads.run_parts(
            lambda start, stop: attention_forward(*(self._cut(a, start, stop) for a in (q, k, v, bias, mask)),
                                                  scale, self._cut(dropout_mask, start, stop)),
            self.cuts,
        )  # fmt: skip
        self.saved = [(weights, log_normaliser) for _, weights, log_normaliser in results]
        return np.concatenate([output for output, _, _ in results], axis=self.axis)

    def _cut(self, array, start: int, stop: int):
        return _part(array, self.axis, start, stop, self.ndim)

    def backward(self, grad):
        """attention_backward per part, joined: (dq, dk, dv) of the broadcast shapes, and dS (None without bias)."""
        if self.cuts == [None]:
            grads = attention_backward(grad, self.q, self.k, self.v, *self.saved[0], self.bias, self.mask, self.scale,
                                       self.dropout_mask)  # fmt: skip
            return grads[:3] + (None if self.bias is None else grads[3],)

        def part_backward(cut, saved):
            q, k, v, bias, mask, dropout_mask, part_grad = (
                self._cut(a, *cut) for a in (self.q, self.k, self.v, self.bias, self.mask, self.dropout_mask, grad)
            )
            return attention_backward(part_grad, q, k, v, *saved, bias, mask, self.scale, dropout_mask)

        results = threads.run_parts(part_backward, list(zip(self.cuts, self.saved, strict=True)))
        joined = [np.concatenate(grads, axis=self.axis) for grads in list(zip(*results, strict=True))[:3]]
        grad_scores = None if self.bias is None else np.concatenate([part[3] for part in results], axis=self.axis)
        return (*joined, grad_scores)


class ScaledDotProductAttention(Function):
    def forward(self, q, k, v, bias, mask, scale, dropout_mask):
        """q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv) -> (..., Nq, dv)"""
        self.parts = AttentionParts()
        self.shapes = (q.shape, k.shape, v.shape, None if bias is None else bias.shape)
        return self.parts.forward(q, k, v, bias, mask, scale, dropout_mask)

    def backward(self, grad):
        # the attention gradients of attention_backward, summed to each input's shape
        grads = self.parts.backward(grad)
        return tuple(None if g is None else unbroadcast(g, shape) for g, shape in zip(grads, self.shapes, strict=True))


class MultiHeadSelfAttention(Function):
    """Attention straight from the qkv projection: heads are split and merged inside, so the
    backward writes dq, dk and dv into one (B, N, 3C) gradient (no slicing ops, no zero-filled
    buffers). Samples are viewed as (B / G, G) so a mask of G windows broadcasts (Swin)."""

    def forward(self, qkv, bias, num_heads, mask, scale, dropout_mask):
        """qkv: (B, N, 3C) laid out (3, heads, head_dim) per token -> (B, N, C), heads concatenated"""
        batch, tokens, width = qkv.shape
        groups = 1 if mask is None else mask.shape[0]
        self.shape = (batch // groups, groups, tokens, 3, num_heads, width // (3 * num_heads))
        heads = qkv.reshape(self.shape)
        # q, k, v: views (B / G, G, heads, N, head_dim)
        q, k, v = (heads[:, :, :, part].transpose(0, 1, 3, 2, 4) for part in range(3))
        if mask is not None:
            mask = mask[:, None]  # (G, 1, N, N): the same for every image and head
        self.parts, self.bias_shape = AttentionParts(), None if bias is None else bias.shape
        output = self.parts.forward(q, k, v, bias, mask, scale, dropout_mask)  # the parts keep q, k, v
        return output.transpose(0, 1, 3, 2, 4).reshape(batch, tokens, width // 3)

    def backward(self, grad):
        # dq, dk, dv from attention_backward, written into their thirds of d(qkv)
        outer, groups, tokens, _, num_heads, head_dim = self.shape
        grad = grad.reshape(outer, groups, tokens, num_heads, head_dim).transpose(0, 1, 3, 2, 4)
        *grads, grad_scores = self.parts.backward(grad)
        grad_qkv = xp_of(grad).empty(self.shape, dtype=grad.dtype)
        for part in range(3):
            grad_qkv[:, :, :, part] = grads[part].transpose(0, 1, 3, 2, 4)
        grad_bias = None if grad_scores is None else unbroadcast(grad_scores, self.bias_shape)
        return grad_qkv.reshape(outer * groups, tokens, -1), grad_bias


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


def multi_head_self_attention(qkv, num_heads: int, bias=None, mask=None, scale: float | None = None,
                              dropout_p: float = 0.0, training: bool = True) -> Tensor:  # fmt: skip
    """Multi-head self-attention from the qkv projection (ViT Appendix A, Eq. 5-8; Swin Eq. 4).

    qkv: (B, N, 3C), the output of timm's qkv Linear: per token q, k, v, each as (heads, head_dim).
    -> (B, N, C), the heads' outputs concatenated per token (ready for the output projection).
    bias: (heads, N, N), differentiable (Swin's relative position bias), added to every sample.
    mask: (G, N, N), additive and constant; sample b uses mask[b % G] (Swin's shifted-window mask,
    G windows per image, windows image-major as window_partition orders them). B % G must be 0.
    """
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * num_heads):
        raise ValueError(f"multi_head_self_attention: qkv must be (B, N, 3 * C) with C divisible by num_heads "
                         f"{num_heads}, got shape {tuple(qkv.shape)}")  # fmt: skip
    batch, tokens, width = qkv.shape
    head_dim = width // (3 * num_heads)
    if bias is not None and not _broadcasts_to(tuple(bias.shape), (num_heads, tokens, tokens)):
        raise ValueError(f"multi_head_self_attention: bias must broadcast to {(num_heads, tokens, tokens)}, "
                         f"got {tuple(bias.shape)}")  # fmt: skip
    if isinstance(mask, Tensor):
        mask = mask.data
    if mask is not None:
        if mask.ndim != 3 or mask.shape[1:] != (tokens, tokens) or batch % mask.shape[0]:
            raise ValueError(f"multi_head_self_attention: mask must be (G, {tokens}, {tokens}) with {batch} samples "
                             f"a multiple of G, got shape {tuple(mask.shape)}")  # fmt: skip
        if mask.dtype != qkv.dtype:
            raise TypeError(f"multi_head_self_attention: mask has dtype {mask.dtype} but qkv has {qkv.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention dropout_p must be in [0, 1), got {dropout_p}")
    groups = 1 if mask is None else mask.shape[0]
    dropout_mask = None
    if training and dropout_p > 0.0:
        dropout_mask = keep_mask(qkv, (batch // groups, groups, num_heads, tokens, tokens), dropout_p)
    scale = 1 / math.sqrt(head_dim) if scale is None else float(scale)
    return MultiHeadSelfAttention.apply(qkv, bias, num_heads=num_heads, mask=mask, scale=scale,
                                        dropout_mask=dropout_mask)  # fmt: skip


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _broadcast_shapes(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))
