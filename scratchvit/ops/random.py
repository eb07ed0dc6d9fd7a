"""Random regularisers: dropout (Srivastava et al. 2014) and drop path, i.e. stochastic depth
per sample (Huang et al. 2016), which ViT/DeiT/Swin use on each residual branch.

Masks are drawn on the tensor's own device generator (`backend.device_rng`)."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import device_of, device_rng, on_device


class MaskAndScale(Function):
    """y = x * m, x: (...) -> (...), m a constant mask that broadcasts against x: 0 where dropped,
    1 / keep_prob where kept. Dropout (Srivastava et al. 2014) draws m per element; stochastic depth (Huang et al.
    2016) per sample, m: (B, 1, ..., 1). Dividing the kept entries by keep_prob makes E[y] = x,
    so nothing needs rescaling at inference.

    Backward: m does not depend on x: dy/dx = m => dx = g * m.
    """

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, grad):
        # BEGIN SOLUTION 3.6 MaskAndScale.backward
        # dx = g * mask / keep_prob (the scale is folded into the mask)
        return grad * self.mask
        # END SOLUTION 3.6


def keep_mask(x, shape: tuple, drop_prob: float):
    """0 or 1/keep_prob, of `shape`, in x's dtype, drawn on x's device."""
    # BEGIN SOLUTION 3.6 keep_mask
    data = x.data if isinstance(x, Tensor) else x
    keep_prob = 1.0 - drop_prob
    device = device_of(data)
    with on_device(device):
        uniform = device_rng(device).random(shape, dtype=data.dtype)  # in [0, 1)
        return (uniform < keep_prob).astype(data.dtype) * (1.0 / keep_prob)  # kept with probability keep_prob
    # END SOLUTION 3.6


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def dropout(x, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p); identity in eval."""
    _check_probability("dropout p", p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return MaskAndScale.apply(x, mask=keep_mask(x, x.shape, p))


def drop_path(x, drop_prob: float = 0.0, training: bool = True) -> Tensor:
    """Stochastic depth: drop the whole residual branch for a sample with probability drop_prob,
    scaling kept samples by 1 / (1 - drop_prob) (timm's scale_by_keep). x: (B, ...) -> (B, ...)"""
    _check_probability("drop_prob", drop_prob)
    if not training or drop_prob == 0.0:
        return x
    if drop_prob == 1.0:
        return x * 0.0
    per_sample = (x.shape[0],) + (1,) * (x.ndim - 1)
    return MaskAndScale.apply(x, mask=keep_mask(x, per_sample, drop_prob))
