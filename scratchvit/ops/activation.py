"""Activations and normalised exponentials: gelu (exact, erf form), relu, softmax, log_softmax.

GELU is the MLP non-linearity of ViT (Sec. 3.1, after Hendrycks & Gimpel 2016) in its exact
form x * Phi(x), as timm's default nn.GELU. Softmax turns attention scores into weights
(Vaswani et al. 2017, Eq. 1; ViT Eq. 5-7 in the appendix).
"""

from __future__ import annotations

import math

from ..autograd import Function, Tensor
from ..backend import xp_of
from .chunks import map_chunks
from .erf import erf
from .shape import check_axis

_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_forward(x, cdf, out):
    """cdf = Phi(x) = (1 + erf(x / sqrt 2)) / 2,  out = x * Phi(x)"""
    phi = erf(x * _INV_SQRT2)
    phi += 1
    phi *= 0.5
    cdf[...] = phi
    xp_of(x).multiply(x, phi, out=out)


def _gelu_backward(x, cdf, grad, out):
    """out = grad * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)"""
    xp = xp_of(x)
    slope = x * x
    slope *= -0.5
    xp.exp(slope, out=slope)
    slope *= x
    slope *= _INV_SQRT_2PI
    slope += cdf
    xp.multiply(grad, slope, out=out)


class GELU(Function):
    """The forward runs a cache-sized chunk at a time on every core (chunks.py): SciPy's float32
    erf, at about 15 ns an element on one core, costs more than the GEMM before it. The
    backward, cheap ufuncs only, is faster in one pass."""

    def forward(self, x):
        xp = xp_of(x)
        self.x, self.cdf = x, xp.empty(x.shape, x.dtype)
        out = xp.empty(x.shape, x.dtype)
        map_chunks(_gelu_forward, (x,), (self.cdf, out))
        return out

    def backward(self, grad):
        # dx = g * (Phi(x) + x * phi(x))
        grad_x = xp_of(grad).empty(grad.shape, grad.dtype)
        _gelu_backward(self.x, self.cdf, grad, grad_x)
        return grad_x


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
        # dx = y * (g - sum(g * y))
        y = self.out
        grad_x = grad * y
        grad_x -= y * grad_x.sum(axis=self.axis, keepdims=True)
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
        # dx = g - softmax(x) * sum(g)
        return grad - xp_of(grad).exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


def gelu(x) -> Tensor:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (exact erf form, as timm's nn.GELU)."""
    return GELU.apply(x)


def relu(x) -> Tensor:
    """max(x, 0)."""
    return ReLU.apply(x)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along axis; every slice along it sums to 1."""
    return Softmax.apply(x, axis=check_axis("axis", axis, x.ndim))


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as x - max - log(sum(exp(x - max))): finite for huge logits."""
    return LogSoftmax.apply(x, axis=check_axis("axis", axis, x.ndim))
