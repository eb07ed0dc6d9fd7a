"""GELU in float32 from the normal tail, a cache-sized chunk at a time (textbook op: ops.activation.GELUFn).

With u = |x| and the tail Phi(-u) from normal_tail.py (accurate relative to itself, however small):

    GELU(x) = x Phi(x) = max(x, 0) - u Phi(-u)     (x > 0: x (1 - Phi(-x)); x < 0: x Phi(x))
    GELU'(x) = Phi(x) + x phi(x),   Phi(x) = 1/2 + sign(x) (1/2 - Phi(-u))

Every ufunc runs in float32 on one chunk of chunks.map_chunks while it is in cache, instead of
an erf evaluated over whole arrays. The error stays within a few float32 units, also far into
the negative tail, where 1 + erf(x / sqrt 2) rounds to 0. When a gradient will be asked for,
the forward computes the slope GELU'(x) while x, phi(x) and Phi(-u) are in cache: the backward
is then one multiply, and x need not be kept.
"""

from __future__ import annotations

import numpy as np

from ...ops.activation import GELUFn
from ..registry import register_kernel
from .chunks import map_chunks
from .normal_tail import normal_density_and_tail


def gelu_chunk(x, out, magnitude, density, tail, work) -> None:
    """out = GELU(x) for one chunk; leaves |x|, phi(x) and Phi(-|x|) in the work arrays."""
    normal_density_and_tail(x, magnitude, density, tail, work)
    np.multiply(magnitude, tail, out=work)
    np.maximum(x, 0, out=out)
    out -= work


def gelu_and_slope_chunk(x, out, slope, magnitude, density, tail, work) -> None:
    """gelu_chunk, and slope = GELU'(x) = Phi(x) + x phi(x)."""
    gelu_chunk(x, out, magnitude, density, tail, work)
    np.subtract(0.5, tail, out=tail)
    np.copysign(tail, x, out=tail)  # at x = -0.0 too: 1/2 - Phi(-0) = 0, so Phi(+-0) = 1/2
    np.multiply(x, density, out=slope)
    slope += tail
    slope += 0.5


@register_kernel(GELUFn, "numpy", (np.float32,))
class GELUFromNormalTail(GELUFn):
    """float32 GELU from the Mills-ratio normal tail, in cache-sized chunks, slope computed in the forward."""

    def forward(self, x):
        out = np.empty(x.shape, x.dtype)
        work = (x.dtype,) * 4  # |x|, phi(x), Phi(-|x|), scratch
        if self.recording:
            self.slope = np.empty(x.shape, x.dtype)
            map_chunks(gelu_and_slope_chunk, (x,), (out, self.slope), scratch=work)
        else:
            map_chunks(gelu_chunk, (x,), (out,), scratch=work)
        return out

    def backward(self, grad):
        # dx = g * GELU'(x), the slope from the forward
        return grad * self.slope
