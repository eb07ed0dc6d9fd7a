"""GELU and its slope in one fused CuPy kernel (textbook op: ops.activation.GELUFn).

    GELU(x) = x Phi(x),   GELU'(x) = Phi(x) + x phi(x),   Phi(x) = (1 + erf(x / sqrt 2)) / 2

The textbook op evaluates Phi twice (forward and backward) in about 25 launches with full-size
temporaries. Here the forward is one kernel that writes GELU(x) and, when a gradient will be
asked for, the slope GELU'(x) beside it; the backward is one multiply.
"""

from __future__ import annotations

import functools
import math

from ... import backend
from ...ops.activation import GELUFn
from ..registry import register_kernel

INV_SQRT2 = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@functools.cache
def fused_kernels():
    """(gelu(x), gelu_and_slope(x) -> (GELU(x), GELU'(x))), compiled by cupy.fuse on first use."""
    cupy = backend.cupy_module("cupy")
    erf = backend.cupy_module("cupyx.scipy.special").erf

    @cupy.fuse(kernel_name="scratchvit_gelu")
    def gelu(x):
        return x * (0.5 + 0.5 * erf(x * INV_SQRT2))

    @cupy.fuse(kernel_name="scratchvit_gelu_and_slope")
    def gelu_and_slope(x):
        cdf = 0.5 + 0.5 * erf(x * INV_SQRT2)
        return x * cdf, cdf + x * cupy.exp(x * x * -0.5) * INV_SQRT_2PI

    return gelu, gelu_and_slope


@register_kernel(GELUFn, "cupy", backend.FLOAT_DTYPES)
class GELUFused(GELUFn):
    """GELU in one fused CuPy kernel, its slope written beside it when a gradient will be asked for."""

    def forward(self, x):
        gelu, gelu_and_slope = fused_kernels()
        if not self.recording:
            return gelu(x)
        out, self.slope = gelu_and_slope(x)
        return out

    def backward(self, grad):
        # dx = g * GELU'(x), the slope from the forward
        return grad * self.slope
