"""Softmax along the last axis in fused CuPy kernels (textbook op: ops.activation.Softmax).

Rows x viewed as (N, K):
    forward:   m = max(x)                        one reduction
               s = sum(exp(x - m))               one reduction, the exp fused before it
               y = exp(x - m) / s                one elementwise kernel
    backward:  r = sum(g y)                      one reduction, the product fused before it
               dx = y (g - r)                    one elementwise kernel
Another axis runs the textbook op.
"""

from __future__ import annotations

import functools

from ... import backend
from ...ops.activation import Softmax
from ..registry import register_kernel


@functools.cache
def fused_kernels():
    """The kernels of the forward and backward, compiled by cupy.fuse on first use."""
    cupy = backend.cupy_module("cupy")

    @cupy.fuse(kernel_name="scratchvit_row_max")
    def row_max(x):
        return cupy.max(x, axis=1)

    @cupy.fuse(kernel_name="scratchvit_row_sum_exp")
    def row_sum_exp(x, shift):
        return cupy.sum(cupy.exp(x - shift), axis=1)

    @cupy.fuse(kernel_name="scratchvit_softmax_normalize")
    def normalize(x, shift, total):
        return cupy.exp(x - shift) / total

    @cupy.fuse(kernel_name="scratchvit_row_dot")
    def row_dot(a, b):
        return cupy.sum(a * b, axis=1)

    @cupy.fuse(kernel_name="scratchvit_softmax_grad")
    def grad_x(grad, y, dot):
        return y * (grad - dot)

    return dict(row_max=row_max, row_sum_exp=row_sum_exp, normalize=normalize, row_dot=row_dot, grad_x=grad_x)


@register_kernel(Softmax, "cupy", backend.FLOAT_DTYPES)
class SoftmaxFused(Softmax):
    """Softmax along the last axis in fused CuPy kernels: three launches forward, two backward."""

    def forward(self, x, axis):
        if axis != x.ndim - 1:
            return super().forward(x, axis)
        k = fused_kernels()
        rows = x.reshape(-1, x.shape[-1])
        shift = k["row_max"](rows)[:, None]
        total = k["row_sum_exp"](rows, shift)[:, None]
        self.axis, self.y = axis, k["normalize"](rows, shift, total).reshape(x.shape)
        return self.y

    def backward(self, grad):
        # dx = y * (g - sum(g * y))
        if self.axis != grad.ndim - 1:
            return super().backward(grad)
        k = fused_kernels()
        rows, y = grad.reshape(-1, grad.shape[-1]), self.y.reshape(-1, grad.shape[-1])
        return k["grad_x"](rows, y, k["row_dot"](rows, y)[:, None]).reshape(grad.shape)
