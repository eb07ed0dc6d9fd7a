"""Layer normalisation (Ba et al. 2016), applied before every attention and MLP block in ViT
(Sec. 3.1, Eq. 2-3: "LN is applied before every block")."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import xp_of


class LayerNormFn(Function):
    """Each row of C channels normalised, then scaled and shifted (Ba et al. 2016, Sec. 3.1):

        mu = mean(x),  var = mean((x - mu)^2),  r = 1 / sqrt(var + eps),
        x_hat = (x - mu) r,   y = x_hat * w + b.        x: (..., C), w, b: (C,) -> (..., C)

    The variance is that of the centred row (two passes), not E[x^2] - mu^2, which cancels.

    Backward, per row, with h = g * w (the gradient reaching x_hat): since
    d x_hat_i / d x_k = r (delta_ik - 1/C - x_hat_i x_hat_k / C),
        dx = r (h - mean(h) - x_hat mean(h * x_hat)),
        dw = sum over rows of g * x_hat,   db = sum over rows of g.
    """

    def forward(self, x, weight, bias, eps):
        # BEGIN SOLUTION 3.2 LayerNormFn.forward
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        self.inv_std = 1 / xp_of(x).sqrt(variance + eps)
        self.x_hat = centred * self.inv_std
        self.weight, self.has_bias = weight, bias is not None
        out = self.x_hat if weight is None else self.x_hat * weight
        return out if bias is None else out + bias
        # END SOLUTION 3.2

    def backward(self, grad):
        # BEGIN SOLUTION 3.2 LayerNormFn.backward
        # dx = r * (h - mean(h) - x_hat * mean(h * x_hat)), h = g * w; dw = sum(g * x_hat); db = sum(g)
        x_hat = self.x_hat
        h = grad if self.weight is None else grad * self.weight
        grad_x = self.inv_std * (h - h.mean(axis=-1, keepdims=True) - x_hat * (h * x_hat).mean(axis=-1, keepdims=True))
        rows = grad.reshape(-1, grad.shape[-1])
        grad_weight = None if self.weight is None else (rows * x_hat.reshape(rows.shape)).sum(axis=0)
        grad_bias = rows.sum(axis=0) if self.has_bias else None
        return grad_x, grad_weight, grad_bias
        # END SOLUTION 3.2


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise the last axis to zero mean and unit variance, then scale by weight, shift by bias.

    x: (..., C), weight: (C,), bias: (C,) -> (..., C). eps: 1e-6 in timm's ViT, 1e-5 in Swin/MAE.
    """
    channels = x.shape[-1]
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and value.shape != (channels,):
            raise ValueError(
                f"layer_norm: {name} must have shape ({channels},) to match x's last dim, got {value.shape}"
            )
    return LayerNormFn.apply(x, weight, bias, eps=eps)
