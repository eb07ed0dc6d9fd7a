"""Layer norm in five fused CuPy kernels, forward and backward (textbook op: ops.norm.LayerNormFn).

Rows of C channels, x viewed as (N, C). With the textbook's names:
    forward:   mu = sum(x) / C                              one reduction
               r = 1 / sqrt(sum((x - mu)^2) / C + eps)      one reduction, the map before and after fused
               x_hat = (x - mu) r,  y = x_hat w + b         one elementwise kernel, both outputs
    backward:  mean(h), mean(h x_hat),  h = g w             two reductions over the rows
               dx = r (h - mean(h) - x_hat mean(h x_hat))   one elementwise kernel
               dw = sum(g x_hat), db = sum(g)               two reductions over the columns
A fused reduction returns one value per row, (N,); `[:, None]` views it as a column.
"""

from __future__ import annotations

import functools

from ... import backend
from ...ops.norm import LayerNormFn
from ..registry import register_kernel


@functools.cache
def fused_kernels():
    """The kernels of the forward and backward, compiled by cupy.fuse on first use."""
    cupy = backend.cupy_module("cupy")
    kernels = {}

    @cupy.fuse(kernel_name="scratchvit_row_mean")
    def row_mean(x, channels):
        return cupy.sum(x, axis=1) / channels

    @cupy.fuse(kernel_name="scratchvit_row_inv_std")
    def row_inv_std(x, mean, channels, eps):
        centred = x - mean
        return 1 / cupy.sqrt(cupy.sum(centred * centred, axis=1) / channels + eps)

    @cupy.fuse(kernel_name="scratchvit_normalize_affine")
    def normalize_affine(x, mean, inv_std, weight, bias):
        x_hat = (x - mean) * inv_std
        return x_hat, x_hat * weight + bias

    @cupy.fuse(kernel_name="scratchvit_row_mean_of_product")
    def row_mean_of_product(a, b, c, channels):
        return cupy.sum(a * b * c, axis=1) / channels

    @cupy.fuse(kernel_name="scratchvit_layer_norm_grad_x")
    def grad_x(grad, weight, x_hat, inv_std, mean_h, mean_h_x_hat):
        return inv_std * (grad * weight - mean_h - x_hat * mean_h_x_hat)

    @cupy.fuse(kernel_name="scratchvit_column_sum_of_product")
    def column_sum_of_product(a, b):
        return cupy.sum(a * b, axis=0)

    kernels.update(
        row_mean=row_mean,
        row_inv_std=row_inv_std,
        normalize_affine=normalize_affine,
        row_mean_of_product=row_mean_of_product,
        grad_x=grad_x,
        column_sum_of_product=column_sum_of_product,
    )
    return kernels


@register_kernel(LayerNormFn, "cupy", backend.FLOAT_DTYPES)
class LayerNormFused(LayerNormFn):
    """Layer norm in fused CuPy kernels: three launches forward, five backward."""

    def forward(self, x, weight, bias, eps):
        k = fused_kernels()
        xp = backend.xp_of(x)
        channels = x.shape[-1]
        rows = x.reshape(-1, channels)
        dtype = x.dtype.type
        mean = k["row_mean"](rows, dtype(channels))[:, None]
        inv_std = k["row_inv_std"](rows, mean, dtype(channels), dtype(eps))[:, None]
        scale = xp.ones(channels, x.dtype) if weight is None else weight
        shift = xp.zeros(channels, x.dtype) if bias is None else bias
        x_hat, out = k["normalize_affine"](rows, mean, inv_std, scale, shift)
        self.x_hat, self.inv_std, self.scale = x_hat, inv_std, scale
        self.weight, self.has_bias = weight, bias is not None
        return out.reshape(x.shape)

    def backward(self, grad):
        # dx = r * (h - mean(h) - x_hat * mean(h * x_hat)), h = g * w; dw = sum(g * x_hat); db = sum(g)
        k = fused_kernels()
        rows = grad.reshape(self.x_hat.shape)
        channels = grad.dtype.type(rows.shape[1])
        ones = backend.xp_of(grad).ones((), grad.dtype)
        mean_h = k["row_mean_of_product"](rows, self.scale, ones, channels)[:, None]
        mean_h_x_hat = k["row_mean_of_product"](rows, self.scale, self.x_hat, channels)[:, None]
        grad_x = k["grad_x"](rows, self.scale, self.x_hat, self.inv_std, mean_h, mean_h_x_hat).reshape(grad.shape)
        grad_weight = None if self.weight is None else k["column_sum_of_product"](rows, self.x_hat)
        grad_bias = rows.sum(axis=0) if self.has_bias else None
        return grad_x, grad_weight, grad_bias
