"""Softmax and log-softmax in place, cut over every core (textbook ops: ops.activation.Softmax and LogSoftmax).

Each direction allocates one array, the one it returns, and works in it: exp, the division by
the row sums and the backward's products run with `out=`. The formulas are the textbook's.

Every slice along the softmax axis is computed on its own, so once scratchvit may take over
from OpenBLAS and x has at least chunks.min_parallel_row_elements() elements, x is cut along another axis
into one part per core (threads.py): the first other axis with at least one index per part,
else the longest other axis. Each part runs the forward, and later the backward, of its slices
on its own thread, writing its piece of the output. A 1-D x is never cut, and smaller arrays
stay on the calling thread: waking a thread costs more than their work.
"""

from __future__ import annotations

import math

import numpy as np

from ...backend import FLOAT_DTYPES
from ...ops.activation import LogSoftmax, Softmax
from ..registry import register_kernel
from . import chunks, threads


def slice_parts(shape: tuple, axis: int) -> list:
    """Index tuples of the parts that an array of `shape` is cut into, each whole along `axis`:
    [(slice(None),)] (the whole array) when it is not cut."""
    others = [a for a in range(len(shape)) if a != axis]
    parts = threads.parts_for(math.prod(shape), minimum=chunks.min_parallel_row_elements())
    if parts < 2 or not others:
        return [(slice(None),)]
    cut = next((a for a in others if shape[a] >= parts), max(others, key=lambda a: shape[a]))
    if shape[cut] < 2:
        return [(slice(None),)]
    lead = (slice(None),) * cut
    return [lead + (slice(start, stop),) for start, stop in threads.bounds(shape[cut], min(parts, shape[cut]))]


def run_sliced(function, arrays: tuple, axis: int) -> None:
    """function(*pieces) on each part of same-shaped `arrays`, the parts on the pool's threads."""
    pieces = slice_parts(arrays[0].shape, axis)
    threads.run_parts(function, [tuple(a[index] for a in arrays) for index in pieces])


@register_kernel(Softmax, "numpy", FLOAT_DTYPES)
class SoftmaxInPlace(Softmax):
    """softmax in one new array per direction, cut over the cores along another axis."""

    def forward(self, x, axis):
        # x: any shape, out: x's shape, each slice along `axis` sums to 1
        self.axis = axis
        out = np.empty(x.shape, x.dtype)

        def part(x, out) -> None:
            np.subtract(x, x.max(axis=axis, keepdims=True), out=out)  # shift by the max: exp never overflows
            np.exp(out, out=out)
            out /= out.sum(axis=axis, keepdims=True)

        run_sliced(part, (x, out), axis)
        self.y = out
        return out

    def backward(self, grad):
        # dx = y * (g - sum(g * y)): g * y, then (g - its sum) * y over it; grad, dx: y's shape
        axis = self.axis
        grad_x = np.empty(self.y.shape, self.y.dtype)

        def part(grad, y, grad_x) -> None:
            np.multiply(grad, y, out=grad_x)
            np.subtract(grad, grad_x.sum(axis=axis, keepdims=True), out=grad_x)
            grad_x *= y

        run_sliced(part, (grad, self.y, grad_x), axis)
        return grad_x


@register_kernel(LogSoftmax, "numpy", FLOAT_DTYPES)
class LogSoftmaxInPlace(LogSoftmax):
    """log_softmax in one new array per direction, cut over the cores along another axis."""

    def forward(self, x, axis):
        # x: any shape, out: x's shape
        self.axis = axis
        out = np.empty(x.shape, x.dtype)

        def part(x, out) -> None:
            np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
            out -= np.log(np.exp(out).sum(axis=axis, keepdims=True))

        run_sliced(part, (x, out), axis)
        self.y = out
        return out

    def backward(self, grad):
        # dx = g - softmax(x) * sum(g), softmax(x) = exp(y); grad, dx: y's shape
        axis = self.axis
        grad_x = np.empty(self.y.shape, self.y.dtype)

        def part(grad, y, grad_x) -> None:
            np.exp(y, out=grad_x)
            grad_x *= grad.sum(axis=axis, keepdims=True)
            np.subtract(grad, grad_x, out=grad_x)

        run_sliced(part, (grad, self.y, grad_x), axis)
        return grad_x
