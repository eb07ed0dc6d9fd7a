"""Layer normalisation (Ba et al. 2016), applied before every attention and MLP block in ViT
(Sec. 3.1, Eq. 2-3: "LN is applied before every block")."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import xp_of


class LayerNorm(Function):
    def forward(self, x, weight, bias, eps):
        """x: (..., C), weight and bias: (C,) -> (..., C)"""
        xp = xp_of(x)
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        variance = (centered * centered).mean(axis=-1, keepdims=True)
        self.inv_std = 1 / xp.sqrt(variance + eps)  # (..., 1)
        centered *= self.inv_std
        self.normalized = centered  # x_hat = (x - mean) / sqrt(var + eps)
        self.weight = weight
        out = centered * weight if weight is not None else centered.copy()
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        # with h = g * w:  dx = inv_std * (h - mean(h) - x_hat * mean(h * x_hat)),
        # dw = sum of g * x_hat over all leading axes, db = sum of g
        x_hat = self.normalized
        grad_hat = grad * self.weight if self.weight is not None else grad.copy()
        mean_grad = grad_hat.mean(axis=-1, keepdims=True)
        mean_grad_x_hat = (grad_hat * x_hat).mean(axis=-1, keepdims=True)
        grad_hat -= mean_grad
        grad_hat -= x_hat * mean_grad_x_hat
        grad_hat *= self.inv_std
        rows = grad.reshape(-1, grad.shape[-1])
        grad_weight = (rows * x_hat.reshape(rows.shape)).sum(axis=0) if self.weight is not None else None
        grad_bias = rows.sum(axis=0)
        return grad_hat, grad_weight, grad_bias


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
    return LayerNorm.apply(x, weight, bias, eps=eps)
