"""Tensor factories: tensor, zeros, ones, randn (float32 on the default device unless told)."""

from __future__ import annotations

from . import backend
from .autograd import Tensor


def tensor(data, requires_grad: bool = False, device=None, dtype=None) -> Tensor:
    """A Tensor from a list, number or array (as sv.Tensor)."""
    return Tensor(data, requires_grad=requires_grad, device=device, dtype=dtype)


def zeros(*shape, requires_grad: bool = False, device=None, dtype=backend.DEFAULT_DTYPE) -> Tensor:
    target = backend.get_device(device)
    with backend.on_device(target):
        return Tensor(target.xp.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, requires_grad: bool = False, device=None, dtype=backend.DEFAULT_DTYPE) -> Tensor:
    target = backend.get_device(device)
    with backend.on_device(target):
        return Tensor(target.xp.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(*shape, requires_grad: bool = False, device=None, dtype=backend.DEFAULT_DTYPE) -> Tensor:
    """Standard normal samples from the device's generator (seeded by sv.manual_seed)."""
    target = backend.get_device(device)
    values = backend.device_rng(target).standard_normal(_shape(shape), dtype=dtype)
    return Tensor(values, requires_grad=requires_grad)


def _shape(args: tuple) -> tuple:
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
