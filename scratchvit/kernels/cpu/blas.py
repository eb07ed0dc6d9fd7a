"""Matrix products on scratchvit's threads (textbook ops: ops.products.MatMul and LinearFn).

Each product goes through threads.matmul, which cuts large work into one part per core once
threads.allow_take_over() has run, and is plain a @ b before that. The math is the textbook's.
"""

from __future__ import annotations

from ...autograd import unbroadcast
from ...backend import FLOAT_DTYPES
from ...ops.products import LinearFn, MatMul
from ..registry import register_kernel
from . import threads


@register_kernel(MatMul, "numpy", FLOAT_DTYPES)
class MatMulOnThreads(MatMul):
    """matmul with each product of two matrices (or stacks) cut over scratchvit's threads."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:  # a product with a vector: the textbook's
            return super().forward(a, b)
        self.a, self.b = a, b
        return threads.matmul(a, b)

    def backward(self, grad):
        if self.a.ndim < 2 or self.b.ndim < 2:
            return super().backward(grad)
        # da = g @ b^T, db = a^T @ g
        grad_a = unbroadcast(threads.matmul(grad, self.b.swapaxes(-1, -2)), self.a.shape)
        grad_b = unbroadcast(threads.matmul(self.a.swapaxes(-1, -2), grad), self.b.shape)
        return grad_a, grad_b


@register_kernel(LinearFn, "numpy", FLOAT_DTYPES)
class LinearOnThreads(LinearFn):
    """linear's three GEMMs cut over scratchvit's threads, the bias added in place."""

    def forward(self, x, weight, bias):
        self.x2d = x.reshape(-1, x.shape[-1])
        self.weight, self.input_shape, self.has_bias = weight, x.shape, bias is not None
        out = threads.matmul(self.x2d, weight.T)
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, grad):
        # dx = g @ W, dW = g^T @ x, db = sum of g over all rows
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = threads.matmul(grad2d, self.weight).reshape(self.input_shape)
        grad_weight = threads.matmul(grad2d.T, self.x2d)
        grad_bias = grad2d.sum(axis=0) if self.has_bias else None
        return grad_x, grad_weight, grad_bias
