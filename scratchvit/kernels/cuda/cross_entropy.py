"""Cross-entropy in fused CuPy kernels (textbook op: ops.loss.CrossEntropy).

Logits z: (B, K), targets q: (B, K), per sample L = -sum_k q_k log p_k, log p = z - lse(z):
    forward:   m = max(z)                              one reduction (softmax's row_max)
               lse = m + log(sum(exp(z - m)))          one reduction, the maps before and after fused
               L = -sum(q (z - lse))                   one reduction, the map before it fused
               p = exp(z - lse)                        one elementwise kernel, kept for the backward
    backward:  dz = (p - q) g                          one elementwise kernel
"""

from __future__ import annotations

import functools

from ... import backend
from ...ops.loss import CrossEntropy
from ..registry import register_kernel
from . import softmax


@functools.cache
def fused_kernels():
    """The kernels of the forward and backward, compiled by cupy.fuse on first use."""
    cupy = backend.cupy_module("cupy")

    @cupy.fuse(kernel_name="scratchvit_row_log_sum_exp")
    def row_log_sum_exp(z, shift, shift_row):
        return shift_row + cupy.log(cupy.sum(cupy.exp(z - shift), axis=1))

    @cupy.fuse(kernel_name="scratchvit_row_cross_entropy")
    def row_cross_entropy(z, q, lse):
        return -cupy.sum(q * (z - lse), axis=1)

    @cupy.fuse(kernel_name="scratchvit_probabilities")
    def probabilities(z, lse):
        return cupy.exp(z - lse)

    @cupy.fuse(kernel_name="scratchvit_cross_entropy_grad")
    def grad_logits(probs, q, grad):
        return (probs - q) * grad

    return dict(
        row_max=softmax.fused_kernels()["row_max"],
        row_log_sum_exp=row_log_sum_exp,
        row_cross_entropy=row_cross_entropy,
        probabilities=probabilities,
        grad_logits=grad_logits,
    )


@register_kernel(CrossEntropy, "cupy", backend.FLOAT_DTYPES)
class CrossEntropyFused(CrossEntropy):
    """Cross-entropy in fused CuPy kernels: four launches forward (and the mean), one backward."""

    def forward(self, logits, target_probs, reduction):
        k = fused_kernels()
        shift = k["row_max"](logits)
        lse = k["row_log_sum_exp"](logits, shift[:, None], shift)[:, None]
        per_sample = k["row_cross_entropy"](logits, target_probs, lse)
        self.probs = k["probabilities"](logits, lse)
        self.target_probs, self.reduction = target_probs, reduction
        if reduction == "none":
            return per_sample
        return per_sample.mean() if reduction == "mean" else per_sample.sum()

    def backward(self, grad):
        # d logits = (softmax(logits) - q) * g   (/ B for the mean)
        if self.reduction == "none":
            grad = grad[:, None]
        elif self.reduction == "mean":
            grad = grad / len(self.probs)
        return fused_kernels()["grad_logits"](self.probs, self.target_probs, grad)
