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
from .erf import erf_float64, erf_rational
from .shape import check_axis

_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SCRATCH = (np.float64,) * 4  # erf_rational's work arrays


def _gelu(x, out, *work):
    """out = x * Phi(x); returns Phi(x) = (1 + erf(x / sqrt 2)) / 2 in float64 (one of work)."""
    xp = xp_of(x)
    if x.dtype == np.float32:
        cdf = erf_rational(x, work, scale=_INV_SQRT2)
    else:  # float64: gradient checks need every digit
        cdf = work[0]
        cdf[...] = erf_float64(x * _INV_SQRT2)
    cdf += 1
    cdf *= 0.5
    xp.multiply(x, cdf, out=out, casting="same_kind")
    return cdf


def _gelu_and_slope(x, out, slope, *work):
    """_gelu, and slope = d out / dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    xp = xp_of(x)
    cdf = _gelu(x, out, *work)
    xp.multiply(x, x, out=slope)
    slope *= -0.5
    xp.exp(slope, out=slope)
    slope *= x
    slope *= _INV_SQRT_2PI
    xp.add(slope, cdf, out=slope, casting="same_kind")


class GELU(Function):
    """The forward runs a cache-sized chunk at a time (chunks.py). When a gradient
    will be asked for, it also computes the slope GELU'(x) while x and Phi(x) are in cache: the
    backward is then one multiply, and x need not be kept."""

    def forward(self, x, need_slope):
        xp = xp_of(x)
        out = xp.empty(x.shape, x.dtype)
        if need_slope:
            self.slope = xp.empty(x.shape, x.dtype)
            map_chunks(_gelu_and_slope, (x,), (out, self.slope), scratch=_SCRATCH)
        else:
            map_chunks(_gelu, (x,), (out,), scratch=_SCRATCH)
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
