"""Private toy Functions for the tests of the checking tools (gradcheck, the op table's runner, the
`scratchvit gradcheck` command). They never use an op of scratchvit.ops, so a course copy with any
op's backward blanked still checks the tools; only the engine's backward pass is needed.

Each backward is written out here on raw arrays; the wrong ones say what is wrong.
"""

from __future__ import annotations

import numpy as np

import scratchvit as sv
from scratchvit.backend import xp_of
from scratchvit.check.op_table import OpEntry


class ToySquare(sv.Function):
    """y = x * x elementwise: dx = 2 x g."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return 2 * self.x * grad


class SquareWithSignError(ToySquare):
    def backward(self, grad):
        return -2 * self.x * grad  # wrong: the true gradient is +2 x g


class ToySoftmax(sv.Function):
    """y = softmax(x) along the last axis: dx = y (g - sum(g y))."""

    def forward(self, x):
        shifted = xp_of(x).exp(x - x.max(axis=-1, keepdims=True))
        self.out = shifted / shifted.sum(axis=-1, keepdims=True)
        return self.out

    def backward(self, grad):
        return self.out * (grad - (grad * self.out).sum(axis=-1, keepdims=True))


class SoftmaxMissingTerm(ToySoftmax):
    def backward(self, grad):
        return self.out * grad  # wrong: missing "- y * sum(g * y)"


class SoftmaxZeroBackward(ToySoftmax):
    def backward(self, grad):
        return grad * 0  # right for an all-ones upstream gradient, wrong for any other


class ToyScaleShift(sv.Function):
    """y = x * w + b + offset, x: (R, C), w, b: (C,), offset a constant: dx = g w, dw = sum_rows g x,
    db = sum_rows g."""

    def forward(self, x, weight, bias, offset):
        self.x, self.weight = x, weight
        return x * weight + bias + offset

    def backward(self, grad):
        return grad * self.weight, (grad * self.x).sum(axis=0), grad.sum(axis=0)


class MulForgetsB(sv.Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        return grad * self.b, grad * self.b  # wrong for b: should be grad * a


def toy_square(x):
    return ToySquare.apply(x)


def toy_softmax(x):
    return ToySoftmax.apply(x)


def toy_scale_shift(x, weight, bias, offset: float = 0.0):
    """A non-tensor argument (offset) passes through gradcheck to the op unchanged."""
    return ToyScaleShift.apply(x, weight, bias, offset=offset)


def _leaf(values, dtype, device):
    return sv.Tensor(np.asarray(values).astype(dtype), requires_grad=True, device=device)


def _square_inputs(rng, sizes, dtype, device):
    return (_leaf(rng.standard_normal(tuple(sizes)), dtype, device),)


def _scale_shift_inputs(rng, sizes, dtype, device):
    rows, channels = sizes
    shapes = ((rows, channels), (channels,), (channels,))
    return tuple(_leaf(rng.standard_normal(shape), dtype, device) for shape in shapes)


TOY_TABLE = [
    OpEntry("toy_square", toy_square, _square_inputs, (2, 3), ((1, 3), (1, 4))),
    OpEntry("toy_softmax", toy_softmax, _square_inputs, (3, 4), ((1, 3), (2, 5))),
    OpEntry("toy_scale_shift", toy_scale_shift, _scale_shift_inputs, (4, 3), ((1, 4), (1, 3))),
]
