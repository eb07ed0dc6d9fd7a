"""Reductions over axes: sum, mean, max, var (each with `axis` and `keepdims`)."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import xp_of


def _normalize_axes(axis, ndim: int) -> tuple:
    """axis None / int / tuple -> a sorted tuple of non-negative axes, checked against ndim."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes))


def _expand_to_input(grad, input_shape: tuple, axes: tuple, keepdims: bool):
    """Put back the reduced axes of `grad` (as size 1) and broadcast it to the input shape."""
    xp = xp_of(grad)
    if not keepdims:
        grad = xp.expand_dims(grad, axes) if axes else grad
    return xp.broadcast_to(grad, input_shape)


class Sum(Function):
    def forward(self, x, axes, keepdims):
        self.input_shape, self.axes, self.keepdims = x.shape, axes, keepdims
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # dx = g, copied along every summed axis
        return _expand_to_input(grad, self.input_shape, self.axes, self.keepdims)


class Mean(Function):
    def forward(self, x, axes, keepdims):
        self.input_shape, self.axes, self.keepdims = x.shape, axes, keepdims
        self.count = 1
        for a in axes:
            self.count *= x.shape[a]
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # dx = g / n, n = number of elements averaged
        return _expand_to_input(grad / self.count, self.input_shape, self.axes, self.keepdims)


class Max(Function):
    def forward(self, x, axes, keepdims):
        self.x, self.axes, self.keepdims = x, axes, keepdims
        self.out = x.max(axis=axes, keepdims=True)
        return self.out if keepdims else self.out.reshape([s for i, s in enumerate(x.shape) if i not in axes])

    def backward(self, grad):
        # dx = g at the maximum; tied maxima share it equally
        is_max = (self.x == self.out).astype(grad.dtype)
        is_max /= is_max.sum(axis=self.axes, keepdims=True)
        return _expand_to_input(grad, self.x.shape, self.axes, self.keepdims) * is_max


class Var(Function):
    def forward(self, x, axes, keepdims, correction):
        count = 1
        for a in axes:
            count *= x.shape[a]
        self.centered = x - x.mean(axis=axes, keepdims=True)
        self.axes, self.keepdims, self.divisor = axes, keepdims, count - correction
        return (self.centered * self.centered).sum(axis=axes, keepdims=keepdims) / self.divisor

    def backward(self, grad):
        # dx = g * 2 (x - mean) / (n - correction)
        expanded = _expand_to_input(grad, self.centered.shape, self.axes, self.keepdims)
        return expanded * self.centered * (2 / self.divisor)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - torch.sum's name
    """Sum over `axis` (None: all axes). (..., n, ...) -> (..., ...) or (..., 1, ...) with keepdims."""
    return Sum.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (None: all axes)."""
    return Mean.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - torch.max's name
    """Largest value over `axis` (None: all axes); the gradient goes to the maxima."""
    return Max.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims)


def var(x, axis=None, keepdims: bool = False, correction: int = 0) -> Tensor:
    """Variance over `axis`: sum((x - mean)^2) / (n - correction).

    correction=0 is the population variance used by layer norm (NumPy's default); pass
    correction=1 for the unbiased estimate (PyTorch's default).
    """
    return Var.apply(x, axes=_normalize_axes(axis, x.ndim), keepdims=keepdims, correction=correction)
