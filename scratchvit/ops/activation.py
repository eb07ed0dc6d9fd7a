"""Activations and normalised exponentials: gelu (exact, erf form), relu, softmax, log_softmax.

GELU is the MLP non-linearity of ViT (Sec. 3.1, after Hendrycks & Gimpel 2016) in its exact
form x * Phi(x), as timm's default nn.GELU. Softmax turns attention scores into weights
(Vaswani et al. 2017, Eq. 1; ViT Eq. 5-7 in the appendix).
"""

from __future__ import annotations

import math

from ..autograd import Function, Tensor
from ..backend import xp_of
from .erf import erf
from .shape import check_axis


def normal_cdf(x):
    """Phi(x) = P(Z <= x) for a standard normal Z: (1 + erf(x / sqrt 2)) / 2, in x's dtype."""
    return (1 + erf(x * (1 / math.sqrt(2)))) / 2


def normal_pdf(x):
    """phi(x) = exp(-x^2 / 2) / sqrt(2 pi), in x's dtype."""
    return xp_of(x).exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))


class GELUFn(Function):
    """GELU(x) = x Phi(x)   (Hendrycks & Gimpel 2016, Eq. 1), elementwise, x: any shape.

    Backward, by the product rule, with Phi' = phi:
        d GELU / dx = Phi(x) + x phi(x),   so   dx = g * (Phi(x) + x phi(x)).
    """

    def forward(self, x):
        # BEGIN SOLUTION 3.3 GELUFn.forward
        self.x = x
        return x * normal_cdf(x)
        # END SOLUTION 3.3

    def backward(self, grad):
        # BEGIN SOLUTION 3.3 GELUFn.backward
        # dx = g * (Phi(x) + x phi(x))
        x = self.x
        return grad * (normal_cdf(x) + x * normal_pdf(x))
        # END SOLUTION 3.3


class ReLU(Function):
    """ReLU(x) = max(x, 0), elementwise.

    Backward: dx = g where x > 0, else 0.
    """

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, grad):
        # BEGIN SOLUTION 3.3 ReLU.backward
        # dx = g where x > 0, else 0
        return grad * self.positive
        # END SOLUTION 3.3


class Softmax(Function):
    """y_i = exp(x_i) / sum_j exp(x_j) along `axis` (Vaswani et al. 2017, Eq. 1), x: any shape.

    Shifting x by its max along the axis changes nothing (it cancels in the ratio) and keeps exp
    from overflowing.

    Backward: the Jacobian is dy_i / dx_k = y_i (delta_ik - y_k), so
        dx_k = sum_i g_i y_i (delta_ik - y_k) = y_k (g_k - sum_i g_i y_i).
    """

    def forward(self, x, axis):
        # BEGIN SOLUTION 3.4 Softmax.forward
        self.axis = axis
        exps = xp_of(x).exp(x - x.max(axis=axis, keepdims=True))
        self.y = exps / exps.sum(axis=axis, keepdims=True)
        return self.y
        # END SOLUTION 3.4

    def backward(self, grad):
        # BEGIN SOLUTION 3.4 Softmax.backward
        # dx = y * (g - sum(g * y))
        y = self.y
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))
        # END SOLUTION 3.4


class LogSoftmax(Function):
    """y = x - log sum_j exp(x_j) along `axis`, computed as x - m - log sum_j exp(x_j - m), m = max(x).

    Backward: dy_i / dx_k = delta_ik - softmax(x)_k, so   dx_k = g_k - softmax(x)_k sum_i g_i,
    with softmax(x) = exp(y).
    """

    def forward(self, x, axis):
        # BEGIN SOLUTION 3.4 LogSoftmax.forward
        self.axis = axis
        xp = xp_of(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y
        # END SOLUTION 3.4

    def backward(self, grad):
        # BEGIN SOLUTION 3.4 LogSoftmax.backward
        # dx = g - softmax(x) * sum(g)
        return grad - xp_of(grad).exp(self.y) * grad.sum(axis=self.axis, keepdims=True)
        # END SOLUTION 3.4


def gelu(x) -> Tensor:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (exact erf form, as timm's nn.GELU)."""
    return GELUFn.apply(x)


def relu(x) -> Tensor:
    """max(x, 0)."""
    return ReLU.apply(x)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along axis; every slice along it sums to 1."""
    return Softmax.apply(x, axis=check_axis("axis", axis, x.ndim))


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as x - max - log(sum(exp(x - max))): finite for huge logits."""
    return LogSoftmax.apply(x, axis=check_axis("axis", axis, x.ndim))
