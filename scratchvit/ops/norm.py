"""Layer normalisation (Ba et al. 2016), applied before every attention and MLP block in ViT
(Sec. 3.1, Eq. 2-3: "LN is applied before every block")."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import xp_of


class LayerNorm(Function):
    """Saves x (alive anyway: the residual stream) and two numbers per row, as PyTorch does; the
    backward recomputes x_hat. Each direction allocates only the arrays it must (a fresh large
    array costs a page fault per 4 KiB when first written, about as much as several passes
    over it), and row sums go through einsum: one pass and no temporary, where
    x.sum(axis=-1) is 2x slower on rows this short."""

    def forward(self, x, weight, bias, eps):
        """x: (..., C), weight and bias: (C,) -> (..., C)

        x_hat = (x - mean) / sqrt(var + eps), out = x_hat * weight + bias (Ba et al. 2016, Eq. 4);
        the variance is that of the centred rows (no E[x^2] - mean^2 cancellation).
        """
        xp = xp_of(x)
        rows = x.reshape(-1, x.shape[-1])
        channels = rows.shape[1]
        mean = xp.einsum("ij->i", rows)
        mean *= 1 / channels
        out = xp.subtract(rows, mean[:, None])
        variance = xp.einsum("ij,ij->i", out, out)
        variance *= 1 / channels
        variance += eps
        inv_std = xp.sqrt(variance, out=variance)
        xp.divide(1, inv_std, out=inv_std)
        out *= inv_std[:, None]  # x_hat
        if weight is not None:
            out *= weight
        if bias is not None:
            out += bias
        self.rows, self.mean, self.inv_std = rows, mean, inv_std
        self.weight, self.has_bias = weight, bias is not None
        return out.reshape(x.shape)

    def backward(self, grad):
        # with h = g * w:  dx = inv_std * (h - mean(h) - x_hat * mean(h * x_hat)),
        # dw = sum of g * x_hat over all rows, db = sum of g over all rows
        xp = xp_of(grad)
        rows = grad.reshape(self.rows.shape)
        channels = rows.shape[1]
        x_hat = xp.subtract(self.rows, self.mean[:, None])
        x_hat *= self.inv_std[:, None]
        h = rows * self.weight if self.weight is not None else rows.copy()
        mean_h = xp.einsum("ij->i", h)
        mean_h *= 1 / channels
        mean_h_x_hat = xp.einsum("ij,ij->i", h, x_hat)
        mean_h_x_hat *= 1 / channels
        grad_weight = None if self.weight is None else xp.einsum("ij,ij->j", rows, x_hat)
        grad_bias = xp.einsum("ij->j", rows) if self.has_bias else None
        x_hat *= mean_h_x_hat[:, None]  # x_hat is not needed any more: reuse it
        x_hat += mean_h[:, None]
        h -= x_hat
        h *= self.inv_std[:, None]
        return h.reshape(grad.shape), grad_weight, grad_bias


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
