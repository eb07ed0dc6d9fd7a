"""Activations and normalised exponentials: gelu (exact, erf form), relu, softmax, log_softmax.

GELU is the MLP non-linearity of ViT (Sec. 3.1, after Hendrycks & Gimpel 2016) in its exact
form x * Phi(x), as timm's default nn.GELU. Softmax turns attention scores into weights
(Vaswani et al. 2017, Eq. 1; ViT Eq. 5-7 in the appendix).
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor, is_grad_enabled
from ..backend import xp_of
from .chunks import map_chunks
from .erf import erf_float64
from .normal import normal_density_and_tail
from .shape import check_axis

_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_float32(x, out, magnitude, density, tail, work):
    """out = GELU(x) for one chunk, in float32; leaves |x|, phi(x) and Phi(-|x|) in the work arrays.

    With u = |x| and Phi(-u) from normal.py (accurate relative to itself, however small):
        GELU(x) = x Phi(x) = max(x, 0) - u Phi(-u)    (x > 0: x (1 - Phi(-x)); x < 0: x Phi(x))
    Error: up to about 4e-7 relative (a few float32 units); PyTorch's erf form, 3e-7 absolute.
    """
    xp = xp_of(x)
    normal_density_and_tail(x, magnitude, density, tail, work)
    xp.multiply(magnitude, tail, out=work)
    xp.maximum(x, 0, out=out)
    out -= work


def _gelu_and_slope_float32(x, out, slope, magnitude, density, tail, work):
    """_gelu_float32, and slope = GELU'(x) = Phi(x) + x phi(x), Phi(x) = 1/2 + sign(x) (1/2 - Phi(-|x|))."""
    xp = xp_of(x)
    _gelu_float32(x, out, magnitude, density, tail, work)
    xp.subtract(0.5, tail, out=tail)
    xp.copysign(tail, x, out=tail)  # at x = -0.0 too: 1/2 - Phi(-0) = 0, so Phi(+-0) = 1/2
    xp.multiply(x, density, out=slope)
    slope += tail
    slope += 0.5


def _gelu_float64(x, need_slope):
    """(GELU(x), GELU'(x) or None) in float64 from the library erf: gradient checks need every digit."""
    xp = xp_of(x)
    cdf = erf_float64(x * _INV_SQRT2)
    cdf += 1
    cdf *= 0.5
    slope = None
    if need_slope:
        slope = xp.exp(x * x * -0.5)
        slope *= x
        slope *= _INV_SQRT_2PI
        slope += cdf
    return x * cdf, slope


class GELU(Function):
    """float32 runs a cache-sized chunk at a time (chunks.py). When a gradient will be asked for,
    the forward also computes the slope GELU'(x) while x, phi(x) and Phi(-|x|) are in cache: the
    backward is then one multiply, and x need not be kept."""

    def forward(self, x, need_slope):
        xp = xp_of(x)
        if x.dtype == np.float64:
            out, self.slope = _gelu_float64(x, need_slope)
            return out
        out = xp.empty(x.shape, x.dtype)
        work = (x.dtype,) * 4  # |x|, phi(x), Phi(-|x|), scratch
        if need_slope:
            self.slope = xp.empty(x.shape, x.dtype)
            map_chunks(_gelu_and_slope_float32, (x,), (out, self.slope), scratch=work)
        else:
            map_chunks(_gelu_float32, (x,), (out,), scratch=work)
        return out

    def backward(self, grad):
        # dx = g * (Phi(x) + x * phi(x))
        return grad * self.slope


class ReLU(Function):
    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, grad):
        # dx = g where x > 0, else 0
        return grad * self.positive


class Softmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        out = x - x.max(axis=axis, keepdims=True)  # shift by the max: exp never overflows
        xp_of(out).exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        self.out = out
        return out

    def backward(self, grad):
        # dx = y * (g - sum(g * y)), in one new array: g * y, then (g - its sum) * y over it
        y = self.out
        grad_x = grad * y
        xp_of(grad).subtract(grad, grad_x.sum(axis=self.axis, keepdims=True), out=grad_x)
        grad_x *= y
        return grad_x


class LogSoftmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        xp = xp_of(x)
        out = x - x.max(axis=axis, keepdims=True)
        out -= xp.log(xp.exp(out).sum(axis=axis, keepdims=True))
        self.out = out
        return out

    def backward(self, grad):
        # dx = g - softmax(x) * sum(g), in one new array
        xp = xp_of(grad)
        grad_x = xp.exp(self.out)
        grad_x *= grad.sum(axis=self.axis, keepdims=True)
        xp.subtract(grad, grad_x, out=grad_x)
        return grad_x


def gelu(x) -> Tensor:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (exact erf form, as timm's nn.GELU)."""
    need_slope = is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad
    return GELU.apply(x, need_slope=need_slope)


def relu(x) -> Tensor:
    """max(x, 0)."""
    return ReLU.apply(x)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along axis; every slice along it sums to 1."""
    return Softmax.apply(x, axis=check_axis("axis", axis, x.ndim))


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as x - max - log(sum(exp(x - max))): finite for huge logits."""
    return LogSoftmax.apply(x, axis=check_axis("axis", axis, x.ndim))
