"""Elementwise arithmetic: add sub mul div pow neg exp log sqrt tanh abs maximum where cast.

Binary ops broadcast like NumPy; their backward sums each gradient back to its input's shape
with `unbroadcast`. Backward functions never write into the incoming `grad` (other inputs may
hold the same array).
"""

from __future__ import annotations

from ..autograd import Function, Tensor, unbroadcast
from ..backend import xp_of


class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):
        # da = g, db = g
        return unbroadcast(grad, self.a_shape), unbroadcast(grad, self.b_shape)


class Sub(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, grad):
        # da = g, db = -g
        return unbroadcast(grad, self.a_shape), unbroadcast(-grad, self.b_shape)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        # da = g * b, db = g * a
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)


class Div(Function):
    def forward(self, a, b):
        self.a_shape, self.b = a.shape, b
        self.out = a / b
        return self.out

    def backward(self, grad):
        # da = g / b, db = -g * a / b^2 = -g * out / b
        grad_a = grad / self.b
        return unbroadcast(grad_a, self.a_shape), unbroadcast(-grad_a * self.out, self.b.shape)


class PowConstant(Function):
    """x ** p for a constant exponent p (a Python number)."""

    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x**exponent

    def backward(self, grad):
        # dx = g * p * x^(p-1)
        return grad * (self.exponent * self.x ** (self.exponent - 1))


class Pow(Function):
    """a ** b with both base and exponent tensors."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        # da = g * b * a^(b-1), db = g * a^b * log(a)   (db defined for a > 0)
        xp = xp_of(self.out)
        grad_a = grad * self.b * self.a ** (self.b - 1)
        grad_b = grad * self.out * xp.log(xp.where(self.a > 0, self.a, 1))
        return unbroadcast(grad_a, self.a.shape), unbroadcast(grad_b, self.b.shape)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        # dx = -g
        return -grad


class Exp(Function):
    def forward(self, x):
        self.out = xp_of(x).exp(x)
        return self.out

    def backward(self, grad):
        # dx = g * exp(x)
        return grad * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return xp_of(x).log(x)

    def backward(self, grad):
        # dx = g / x
        return grad / self.x


class Sqrt(Function):
    def forward(self, x):
        self.out = xp_of(x).sqrt(x)
        return self.out

    def backward(self, grad):
        # dx = g / (2 sqrt(x))
        return grad / (2 * self.out)


class Tanh(Function):
    def forward(self, x):
        self.out = xp_of(x).tanh(x)
        return self.out

    def backward(self, grad):
        # dx = g * (1 - tanh(x)^2)
        return grad * (1 - self.out * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return xp_of(x).abs(x)

    def backward(self, grad):
        # dx = g * sign(x)   (0 at x = 0)
        return grad * xp_of(self.x).sign(self.x)


class Maximum(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return xp_of(a).maximum(a, b)

    def backward(self, grad):
        # the larger input takes the gradient; on a tie each takes half (as PyTorch does)
        a_wins = (self.a > self.b).astype(grad.dtype) + 0.5 * (self.a == self.b).astype(grad.dtype)
        return unbroadcast(grad * a_wins, self.a.shape), unbroadcast(grad * (1 - a_wins), self.b.shape)


class Where(Function):
    def forward(self, a, b, condition):
        self.condition, self.a_shape, self.b_shape = condition, a.shape, b.shape
        return xp_of(a).where(condition, a, b)

    def backward(self, grad):
        # da = g where condition, db = g elsewhere
        zero = grad.dtype.type(0)
        xp = xp_of(grad)
        grad_a = xp.where(self.condition, grad, zero)
        grad_b = xp.where(self.condition, zero, grad)
        return unbroadcast(grad_a, self.a_shape), unbroadcast(grad_b, self.b_shape)


class Cast(Function):
    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        # dx = g, cast back to the input's dtype
        return grad.astype(self.input_dtype)


def add(a, b) -> Tensor:
    """a + b, broadcasting."""
    return Add.apply(a, b)


def sub(a, b) -> Tensor:
    """a - b, broadcasting."""
    return Sub.apply(a, b)


def mul(a, b) -> Tensor:
    """a * b, broadcasting."""
    return Mul.apply(a, b)


def div(a, b) -> Tensor:
    """a / b, broadcasting."""
    return Div.apply(a, b)


def pow(base, exponent) -> Tensor:  # noqa: A001 - the name users know from torch.pow
    """base ** exponent; a Python-number exponent is a constant, a tensor one gets a gradient."""
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        return PowConstant.apply(base, exponent=exponent)
    return Pow.apply(base, exponent)


def neg(x) -> Tensor:
    return Neg.apply(x)


def exp(x) -> Tensor:
    return Exp.apply(x)


def log(x) -> Tensor:
    return Log.apply(x)


def sqrt(x) -> Tensor:
    return Sqrt.apply(x)


def tanh(x) -> Tensor:
    return Tanh.apply(x)


def abs(x) -> Tensor:  # noqa: A001 - the name users know from torch.abs
    return Abs.apply(x)


def maximum(a, b) -> Tensor:
    """Elementwise max of a and b, broadcasting."""
    return Maximum.apply(a, b)


def where(condition, a, b) -> Tensor:
    """a where condition (a boolean array or tensor, not differentiated) is true, else b."""
    if isinstance(condition, Tensor):
        condition = condition.data
    return Where.apply(a, b, condition=condition)


def cast(x, dtype) -> Tensor:
    """x converted to dtype (the one explicit way to change precision)."""
    return Cast.apply(x, dtype=dtype)
