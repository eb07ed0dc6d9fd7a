"""Weight initialisation, drawn on the host NumPy generator (seeded by sv.manual_seed) and then
moved to the parameter's device, so a seed gives the same model on CPU and GPU."""

from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..autograd import Tensor


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor.data = backend.to_device(values.astype(tensor.dtype), tensor.device)
    return tensor


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Normal(mean, std) truncated to [a, b] (absolute bounds, as timm's trunc_normal_), by resampling."""
    rng = backend.host_rng()
    values = rng.normal(mean, std, tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _fill(tensor, backend.host_rng().normal(mean, std, tensor.shape))


def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    return _fill(tensor, backend.host_rng().uniform(low, high, tensor.shape))


def xavier_uniform_(tensor: Tensor, fan_in: int | None = None, fan_out: int | None = None) -> Tensor:
    """Uniform(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), as MAE initialises
    its linear layers. For a (out, in) weight the fans are in and out; MAE's patch projection
    (D, C, P, P) is initialised as a (D, C*P*P) matrix, so pass its fans explicitly or let them
    default to (product of trailing dims, first dim)."""
    if fan_in is None:
        fan_in = int(np.prod(tensor.shape[1:]))
    if fan_out is None:
        fan_out = tensor.shape[0]
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def constant_(tensor: Tensor, value: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)
