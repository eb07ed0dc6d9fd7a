"""Attention by parts of the batch, weights kept or recomputed (textbook ops: ops.attention).

Two changes to the textbook's AttentionFunction, the math unchanged:
- Parts. Once threads.allow_take_over() has run and the work is large enough, the batch is cut
  along its longest leading axis into one part per core, and the whole core, products and
  softmax, runs per part on scratchvit's threads: one thread's wake-up is paid per op, not per
  product.
- Memory. The weights A are kept for the backward while they are no larger than q, k and v
  (`keeps_weights`). Beyond that the forward keeps L = log sum_j exp(S_ij) per query row, and the
  backward recomputes A = exp(S - L) at the price of one more q k^T, as flash attention does.
  MAE's decoder (197 tokens, heads of 32) would otherwise save more for its weights than for
  all its other activations together.
The softmax and its backward run in place in one array per direction.
"""

from __future__ import annotations

import math

import numpy as np

from ...backend import FLOAT_DTYPES
from ...ops.attention import AttentionFunction, MultiHeadSelfAttention, ScaledDotProductAttention
from ..registry import register_kernel
from . import threads


def scores_in_place(q, k, bias, mask, scale: float):
    """S = q k^T * scale + bias + mask: (..., Nq, Nk), one new array where the terms allow."""
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
    """Whether the backward gets the weights A kept from the forward (True) or recomputes them
    from L: A has Nq x Nk numbers per head, q, k and v (kept anyway) Nq d + Nk d + Nk dv, and A
    is kept while it is no larger, which caps what attention saves at twice its inputs."""
    queries, keys, head_dim, value_dim = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    return queries * keys <= queries * head_dim + keys * (head_dim + value_dim)


def attend_part(q, k, v, bias, mask, scale: float, dropout_mask):
    """(output, A, None) when keeps_weights(q, k, v), else (output, None, L), L: (..., Nq, 1)."""
    weights = scores_in_place(q, k, bias, mask, scale)
    row_max = weights.max(axis=-1, keepdims=True)
    weights -= row_max
    np.exp(weights, out=weights)
    row_sum = np.einsum("...j->...", weights)[..., None]  # one pass, no temporary
    weights /= row_sum
    output = (weights if dropout_mask is None else weights * dropout_mask) @ v
    if keeps_weights(q, k, v):
        return output, weights, None
    np.log(row_sum, out=row_sum)
    row_sum += row_max
    return output, None, row_sum


def attend_part_backward(grad, q, k, v, weights, log_normaliser, bias, mask, scale: float, dropout_mask):
    """(dq, dk, dv, dS) of one part; A is the forward's, or exp(S - L) recomputed."""
    if weights is None:
        weights = scores_in_place(q, k, bias, mask, scale)
        weights -= log_normaliser
        np.exp(weights, out=weights)
    kept = weights if dropout_mask is None else weights * dropout_mask
    grad_v = kept.swapaxes(-1, -2) @ grad
    grad_scores = grad @ v.swapaxes(-1, -2)
    if dropout_mask is not None:
        grad_scores *= dropout_mask
    grad_scores -= np.einsum("...j,...j->...", grad_scores, weights)[..., None]
    grad_scores *= weights
    grad_q = grad_scores @ k
    grad_q *= scale  # the scale multiplies dq and dk, smaller than dS when Nk > d
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


class AttentionByParts(AttentionFunction):
    """AttentionFunction's attend and attend_backward, per part of the batch on scratchvit's threads."""

    def attend(self, q, k, v, bias, mask, scale: float, dropout_mask):
        self.q, self.k, self.v, self.bias, self.mask = q, k, v, bias, mask
        self.scale, self.dropout_mask = scale, dropout_mask
        arrays = [a for a in (q, k, v, bias, mask, dropout_mask) if a is not None]
        self.ndim = max(a.ndim for a in arrays)
        leading = np.broadcast_shapes(*(a.shape[:-2] for a in arrays))
        queries, keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
        parts = threads.parts_for(4 * math.prod(leading) * queries * keys * head_dim) if leading else 1
        self.axis = int(np.argmax(leading)) if leading else 0
        if parts < 2 or leading[self.axis] < parts:
            self.cuts = [None]
            output, weights, log_normaliser = attend_part(q, k, v, bias, mask, scale, dropout_mask)
            self.saved = [(weights, log_normaliser)]
            return output
        self.cuts = threads.bounds(leading[self.axis], parts)
        results = threads.run_parts(self._attend_cut, self.cuts)
        self.saved = [(weights, log_normaliser) for _, weights, log_normaliser in results]
        return np.concatenate([output for output, _, _ in results], axis=self.axis)

    def _cut(self, array, start: int, stop: int):
        return _part(array, self.axis, start, stop, self.ndim)

    def _attend_cut(self, start: int, stop: int):
        q, k, v, bias, mask, dropout_mask = (
            self._cut(a, start, stop) for a in (self.q, self.k, self.v, self.bias, self.mask, self.dropout_mask)
        )
        return attend_part(q, k, v, bias, mask, self.scale, dropout_mask)

    def _attend_cut_backward(self, cut, saved, grad):
        q, k, v, bias, mask, dropout_mask, part_grad = (
            self._cut(a, *cut) for a in (self.q, self.k, self.v, self.bias, self.mask, self.dropout_mask, grad)
        )
        return attend_part_backward(part_grad, q, k, v, *saved, bias, mask, self.scale, dropout_mask)

    def attend_backward(self, grad):
        if self.cuts == [None]:
            return attend_part_backward(
                grad, self.q, self.k, self.v, *self.saved[0], self.bias, self.mask, self.scale, self.dropout_mask
            )
        results = threads.run_parts(
            self._attend_cut_backward, [(cut, saved, grad) for cut, saved in zip(self.cuts, self.saved, strict=True)]
        )
        grad_q, grad_k, grad_v, grad_scores = zip(*results, strict=True)
        joined = [np.concatenate(grads, axis=self.axis) for grads in (grad_q, grad_k, grad_v)]
        # dS is joined only where a bias needs it
        return (*joined, None if self.bias is None else np.concatenate(grad_scores, axis=self.axis))


@register_kernel(ScaledDotProductAttention, "numpy", FLOAT_DTYPES)
class ScaledDotProductAttentionByParts(ScaledDotProductAttention, AttentionByParts):
    """scaled_dot_product_attention by parts of the batch, its weights kept or recomputed from L."""


@register_kernel(MultiHeadSelfAttention, "numpy", FLOAT_DTYPES)
class MultiHeadSelfAttentionByParts(MultiHeadSelfAttention, AttentionByParts):
    """multi_head_self_attention by parts of the batch, its weights kept or recomputed from L."""
