"""AdamW's update in one fused CuPy kernel per parameter (textbook: train.optim.AdamW._update).

The textbook update is about a dozen array operations per parameter per step, each a launch that
reads and writes whole arrays. Here the same equations, in the same order of float operations,
run as one kernel that updates the parameter and both moments in place:

    p = p (1 - lr wd)
    m = m + (1 - beta1)(g - m)              (PyTorch's lerp; when 1 - beta1 >= 1/2 its other branch,
                                             m = g - (g - m) beta1)
    v = v beta2 + (1 - beta2) g g
    p = p + (-lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
"""

from __future__ import annotations

import functools

from ... import backend
from ..registry import register_update_kernel


@functools.cache
def fused_kernels():
    """(update with lerp's first branch, update with its second), compiled by cupy.fuse on first use."""
    cupy = backend.cupy_module("cupy")

    @cupy.fuse(kernel_name="scratchvit_adamw_lerp_small_weight")
    def small_weight(param, grad, exp_avg, exp_avg_sq, decay, weight, beta2, one_minus_beta2, step, bias2_sqrt, eps):
        param *= decay
        exp_avg += (grad - exp_avg) * weight
        exp_avg_sq *= beta2
        exp_avg_sq += one_minus_beta2 * grad * grad
        param += step * exp_avg / (cupy.sqrt(exp_avg_sq) / bias2_sqrt + eps)

    @cupy.fuse(kernel_name="scratchvit_adamw_lerp_large_weight")
    def large_weight(param, grad, exp_avg, exp_avg_sq, decay, beta1, beta2, one_minus_beta2, step, bias2_sqrt, eps):
        param *= decay
        cupy.subtract(grad, (grad - exp_avg) * beta1, out=exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += one_minus_beta2 * grad * grad
        param += step * exp_avg / (cupy.sqrt(exp_avg_sq) / bias2_sqrt + eps)

    return small_weight, large_weight


@register_update_kernel("adamw", "cupy", backend.FLOAT_DTYPES)
def adamw_update_fused(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, weight_decay, step):
    """AdamW's update of one parameter and its moments in one fused CuPy kernel, in place."""
    small_weight, large_weight = fused_kernels()
    dtype = param.dtype.type
    decay = dtype(1.0 - lr * weight_decay)
    step_size = dtype(-(lr / (1.0 - beta1**step)))
    bias2_sqrt = dtype((1.0 - beta2**step) ** 0.5)
    constants = (dtype(beta2), dtype(1.0 - beta2), step_size, bias2_sqrt, dtype(eps))
    if 1.0 - beta1 < 0.5:
        small_weight(param, grad, exp_avg, exp_avg_sq, decay, dtype(1.0 - beta1), *constants)
    else:
        large_weight(param, grad, exp_avg, exp_avg_sq, decay, dtype(beta1), *constants)
