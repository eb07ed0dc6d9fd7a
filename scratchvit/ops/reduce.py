"""Reductions over axes: sum, mean, max, var (each with `axis` and `keepdims`).

A reduction maps x: (..., n, ...) to one value per slice along the reduced axes. Its backward
puts the reduced axes back (as size 1, unless keepdims kept them) and broadcasts g along them,
scaled by the derivative of the output with respect to each entry of its slice.
"""

from __future__ import annotations

import math

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
    # BEGIN SOLUTION 1.6 _expand_to_input
    xp = xp_of(grad)
    if not keepdims:
        grad = xp.expand_dims(grad, axes) if axes else grad
    return xp.broadcast_to(grad, input_shape)
    # END SOLUTION 1.6


class Sum(Function):
    """y = sum of x over `axes`: (..., n, ...) -> (..., ...), or (..., 1, ...) with keepdims.

    Backward: each x_i enters exactly one output, with coefficient 1: dy/dx_i = 1 for the y that x_i
    is summed into => dx = g, copied along every summed axis.
    """

    def forward(self, x, axes, keepdims):
        self.input_shape, self.axes, self.keepdims = x.shape, axes, keepdims
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # BEGIN SOLUTION 1.6 Sum.backward
        # dx = g, copied along every summed axis
        return _expand_to_input(grad, self.input_shape, self.axes, self.keepdims)
        # END SOLUTION 1.6


class Mean(Function):
    """y = sum of x over `axes` / n, n = the number of entries averaged into each y; shapes as Sum.

    Backward: dy/dx_i = 1 / n => dx = g / n, copied along every averaged axis.
    """

    def forward(self, x, axes, keepdims):
        self.input_shape, self.axes, self.keepdims = x.shape, axes, keepdims
        self.count = math.prod(x.shape[a] for a in axes)
        return x.mean(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # BEGIN SOLUTION 1.6 Mean.backward
        # dx = g / n, n = number of elements averaged
        return _expand_to_input(grad / self.count, self.input_shape, self.axes, self.keepdims)
        # END SOLUTION 1.6


class Max(Function):
    """y = the largest entry of x over `axes`; shapes as Sum.

    Backward: y equals the maximal entry, so dy/dx_i = 1 at the argmax and 0 elsewhere => dx = g at
    the maximum, 0 elsewhere. When k entries tie for the maximum, the derivative is undefined; each
    takes g / k (as torch.amax), so the gradients of one slice still add up to g.
    """

    def forward(self, x, axes, keepdims):
        self.x, self.axes, self.keepdims = x, axes, keepdims
        self.out = x.max(axis=axes, keepdims=True)  # kept with the reduced axes, to compare with x
        return self.out if keepdims else self.out.squeeze(axis=axes)

    def backward(self, grad):
        # BEGIN SOLUTION 1.7 Max.backward
        # dx = g at the maximum; tied maxima share it equally
        is_max = (self.x == self.out).astype(grad.dtype)
        share = is_max / is_max.sum(axis=self.axes, keepdims=True)  # 1 / k at each of k maxima
        return _expand_to_input(grad, self.x.shape, self.axes, self.keepdims) * share
        # END SOLUTION 1.7


class Var(Function):
    """y = sum((x - mu)^2) / d over `axes`, mu the mean over them, d = n - correction; shapes as Sum.

    Backward: with the centred c_i = x_i - mu and dmu/dx_k = 1 / n:
        dy/dx_k = (2 / d) sum_i c_i (delta_ik - 1 / n) = (2 / d) (c_k - sum_i c_i / n) = 2 c_k / d,
    since the centred entries sum to 0 => dx = g * 2 (x - mu) / d.
    """

    def forward(self, x, axes, keepdims, correction):
        # BEGIN SOLUTION 1.7 Var.forward
        count = math.prod(x.shape[a] for a in axes)
        self.centered = x - x.mean(axis=axes, keepdims=True)
        self.axes, self.keepdims, self.divisor = axes, keepdims, count - correction
        return (self.centered * self.centered).sum(axis=axes, keepdims=keepdims) / self.divisor
        # END SOLUTION 1.7

    def backward(self, grad):
        # BEGIN SOLUTION 1.7 Var.backward
        # dx = g * 2 (x - mean) / (n - correction)
        expanded = _expand_to_input(grad, self.centered.shape, self.axes, self.keepdims)
        return expanded * self.centered * (2 / self.divisor)
        # END SOLUTION 1.7


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
