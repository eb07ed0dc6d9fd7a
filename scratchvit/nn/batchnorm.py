"""Batch normalisation over the batch axis (Ioffe & Szegedy 2015, Algorithm 1 and Sec. 3.1),
with torch.nn.BatchNorm1d's semantics, names and state_dict keys.

In training, each channel is normalised with the mean and (biased) variance of the batch, and
running estimates are updated for evaluation:

    y = (x - mean_B) / sqrt(var_B + eps) * weight + bias
    running_mean = (1 - m) * running_mean + m * mean_B
    running_var  = (1 - m) * running_var  + m * var_B * n / (n - 1)     (the unbiased variance)

with m = momentum (0.1), or 1 / num_batches_tracked (a cumulative average) when momentum is None,
and n the number of values per channel in the batch. In evaluation the running estimates stand
in for the batch's. MAE's linear probe puts one, BatchNorm1d(affine=False, eps=1e-6), before its
classifier (He et al. 2022, Appendix A.2; main_linprobe.py).

The normalisation is composed from the reduce and elementwise ops, so its gradient is theirs.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from .module import Module, Parameter


class BatchNorm1d(Module):
    """Normalise each of `num_features` channels over the batch (and length) axes.

    x: (B, C) or (B, C, L) -> the same shape. affine: a learned per-channel weight (ones) and
    bias (zeros). Buffers, all in the state_dict: running_mean (C,) zeros, running_var (C,)
    ones, num_batches_tracked () int64.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None (a cumulative average), got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.num_features, self.eps, self.momentum, self.affine = num_features, float(eps), momentum, affine
        self.weight = Parameter(np.ones(num_features, DEFAULT_DTYPE)) if affine else None
        self.bias = Parameter(np.zeros(num_features, DEFAULT_DTYPE)) if affine else None
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, DEFAULT_DTYPE)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, DEFAULT_DTYPE)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))

    def forward(self, x):
        """x: (B, C) or (B, C, L) -> the same shape"""
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d({self.num_features}) expects (B, {self.num_features}) or (B, {self.num_features}, L), "
                f"got shape {tuple(x.shape)}"
            )
        axes = (0,) if x.ndim == 2 else (0, 2)  # every axis but the channel's
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)  # per-channel values, broadcast over x
        if self.training:
            count = x.size // self.num_features
            if count < 2:
                raise ValueError(
                    f"BatchNorm1d in training needs more than 1 value per channel, got input of shape {tuple(x.shape)}"
                )
            mean = x.mean(axis=axes, keepdims=True)
            variance = x.var(axis=axes, keepdims=True)  # biased (divided by n), as Algorithm 1 normalises
            normalized = (x - mean) / (variance + self.eps).sqrt()
            self._update_running_stats(mean.data.reshape(-1), variance.data.reshape(-1), count)
        else:
            xp = x.xp
            mean = xp.asarray(self.running_mean.data, dtype=x.dtype).reshape(shape)
            inv_std = 1 / xp.sqrt(xp.asarray(self.running_var.data, dtype=x.dtype) + self.eps)
            normalized = (x - Tensor(mean)) * Tensor(inv_std.reshape(shape))
        if self.affine:
            normalized = normalized * self.weight.reshape(shape) + self.bias.reshape(shape)
        return normalized

    def _update_running_stats(self, mean, variance, count: int) -> None:
        """mean, variance: (C,) of this batch, the variance biased; updated in place."""
        self.num_batches_tracked.data += 1
        factor = 1.0 / int(self.num_batches_tracked.data) if self.momentum is None else float(self.momentum)
        self.running_mean.data *= 1.0 - factor
        self.running_mean.data += factor * mean
        self.running_var.data *= 1.0 - factor
        self.running_var.data += (factor * count / (count - 1)) * variance

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
