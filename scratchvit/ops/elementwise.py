"""Elementwise arithmetic: add sub mul div pow neg exp log sqrt tanh abs maximum where cast.

Every op here works entry by entry, so its backward is the chain rule entry by entry: for
y = f(x), dx = g * f'(x), with g = dL/dy of y's shape. A binary op y = f(a, b) gives
da = g * df/da and db = g * df/db. Binary ops broadcast like NumPy: an input stretched along an
axis was used once per position there, so its gradient is the sum over those positions, which
`unbroadcast` takes (e.g. b: (C,) added to x: (B, N, C) gets db = g summed over B and N).
Backward functions never write into the incoming `grad` (other inputs may hold the same array).
"""

from __future__ import annotations

from ..autograd import Function, Tensor, unbroadcast
from ..backend import xp_of


class Add(Function):
    """y = a + b, broadcasting: a, b -> broadcast shape.

    Backward: dy/da = dy/db = 1 => da = db = g, unbroadcast.
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):
        # BEGIN SOLUTION 1.1 Add.backward
        # da = g, db = g
        return unbroadcast(grad, self.a_shape), unbroadcast(grad, self.b_shape)
        # END SOLUTION 1.1


class Sub(Function):
    """y = a - b, broadcasting.

    Backward: dy/da = 1, dy/db = -1 => da = g, db = -g, unbroadcast.
    """

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, grad):
        # BEGIN SOLUTION 1.1 Sub.backward
        # da = g, db = -g
        return unbroadcast(grad, self.a_shape), unbroadcast(-grad, self.b_shape)
        # END SOLUTION 1.1


class Mul(Function):
    """y = a * b, broadcasting.

    Backward: dy/da = b, dy/db = a => da = g b, db = g a, unbroadcast.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        # BEGIN SOLUTION 1.2 Mul.backward
        # da = g * b, db = g * a
        return unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)
        # END SOLUTION 1.2


class Div(Function):
    """y = a / b, broadcasting.

    Backward: dy/da = 1 / b,  dy/db = -a / b^2 = -y / b   =>   da = g / b,  db = -(g / b) y, unbroadcast.
    Writing db with the saved y avoids squaring b, which overflows float32 for |b| > ~1.8e19.
    """

    def forward(self, a, b):
        self.a_shape, self.b = a.shape, b
        self.out = a / b
        return self.out

    def backward(self, grad):
        # BEGIN SOLUTION 1.2 Div.backward
        # da = g / b, db = -g * a / b^2 = -g * out / b
        grad_a = grad / self.b
        return unbroadcast(grad_a, self.a_shape), unbroadcast(-grad_a * self.out, self.b.shape)
        # END SOLUTION 1.2


class PowConstant(Function):
    """y = x ** p for a constant exponent p (a Python number), elementwise.

    Backward, by the power rule: dy/dx = p x^(p-1)   =>   dx = g p x^(p-1). For p = 0, y = 1 is
    constant and dx = 0, also at x = 0 where p x^(p-1) would be 0 * inf = NaN.
    """

    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x**exponent

    def backward(self, grad):
        # BEGIN SOLUTION 1.3 PowConstant.backward
        # dx = g * p * x^(p-1); 0 for p = 0
        if self.exponent == 0:
            return xp_of(grad).zeros_like(grad)
        return grad * (self.exponent * self.x ** (self.exponent - 1))
        # END SOLUTION 1.3


class Pow(Function):
    """y = a ** b with both base and exponent tensors, broadcasting.

    Backward: dy/da = b a^(b-1) (power rule);  y = exp(b log a) => dy/db = a^b log a = y log a,
    defined for a > 0; where a <= 0 db is taken as 0 (log is evaluated at 1 there, so no NaN
    appears). => da = g b a^(b-1),  db = g y log a, unbroadcast. Where b = 0, da = 0 (a^0 = 1 is
    constant): the power a^(b-1) is taken as a^1 there, so a = 0 gives 0, not 0 * inf = NaN.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        # BEGIN SOLUTION 1.3 Pow.backward
        # da = g * b * a^(b-1) (0 where b = 0), db = g * a^b * log(a)   (db defined for a > 0)
        xp = xp_of(self.out)
        grad_a = grad * self.b * self.a ** xp.where(self.b == 0, 1, self.b - 1)
        grad_b = grad * self.out * xp.log(xp.where(self.a > 0, self.a, 1))
        return unbroadcast(grad_a, self.a.shape), unbroadcast(grad_b, self.b.shape)
        # END SOLUTION 1.3


class Neg(Function):
    """y = -x, elementwise.

    Backward: dy/dx = -1 => dx = -g.
    """

    def forward(self, x):
        return -x

    def backward(self, grad):
        # BEGIN SOLUTION 1.1 Neg.backward
        # dx = -g
        return -grad
        # END SOLUTION 1.1


class Exp(Function):
    """y = exp(x), elementwise.

    Backward: dy/dx = exp(x) = y => dx = g y (the saved output).
    """

    def forward(self, x):
        self.out = xp_of(x).exp(x)
        return self.out

    def backward(self, grad):
        # BEGIN SOLUTION 1.4 Exp.backward
        # dx = g * exp(x)
        return grad * self.out
        # END SOLUTION 1.4


class Log(Function):
    """y = log(x), elementwise (natural log, x > 0).

    Backward: dy/dx = 1 / x => dx = g / x.
    """

    def forward(self, x):
        self.x = x
        return xp_of(x).log(x)

    def backward(self, grad):
        # BEGIN SOLUTION 1.4 Log.backward
        # dx = g / x
        return grad / self.x
        # END SOLUTION 1.4


class Sqrt(Function):
    """y = sqrt(x), elementwise.

    Backward: dy/dx = 1 / (2 sqrt(x)) = 1 / (2y) => dx = g / (2y).
    """

    def forward(self, x):
        self.out = xp_of(x).sqrt(x)
        return self.out

    def backward(self, grad):
        # BEGIN SOLUTION 1.4 Sqrt.backward
        # dx = g / (2 sqrt(x))
        return grad / (2 * self.out)
        # END SOLUTION 1.4


class Tanh(Function):
    """y = tanh(x), elementwise.

    Backward: dy/dx = 1 - tanh(x)^2 = 1 - y^2 => dx = g (1 - y^2).
    """

    def forward(self, x):
        self.out = xp_of(x).tanh(x)
        return self.out

    def backward(self, grad):
        # BEGIN SOLUTION 1.4 Tanh.backward
        # dx = g * (1 - tanh(x)^2)
        return grad * (1 - self.out * self.out)
        # END SOLUTION 1.4


class Abs(Function):
    """y = |x|, elementwise.

    Backward: dy/dx = sign(x), taken as 0 at the kink x = 0 => dx = g sign(x).
    """

    def forward(self, x):
        self.x = x
        return xp_of(x).abs(x)

    def backward(self, grad):
        # BEGIN SOLUTION 1.4 Abs.backward
        # dx = g * sign(x)   (0 at x = 0)
        return grad * xp_of(self.x).sign(self.x)
        # END SOLUTION 1.4


class Maximum(Function):
    """y = max(a, b) entry by entry, broadcasting.

    Backward: y equals a where a > b and b where b > a, so the gradient flows to the larger input:
    da = g [a > b],  db = g [b > a]. At a tie the derivative is undefined; each input takes
    g / 2 (as PyTorch does), so da + db = g everywhere. Then unbroadcast.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return xp_of(a).maximum(a, b)

    def backward(self, grad):
        # BEGIN SOLUTION 1.5 Maximum.backward
        # the larger input takes the gradient; on a tie each takes half (as PyTorch does)
        a_wins = (self.a > self.b).astype(grad.dtype) + 0.5 * (self.a == self.b).astype(grad.dtype)
        return unbroadcast(grad * a_wins, self.a.shape), unbroadcast(grad * (1 - a_wins), self.b.shape)
        # END SOLUTION 1.5


class Where(Function):
    """y = a where condition else b, broadcasting; condition is a constant boolean array.

    Backward: each entry of y is a copy of one input's entry => da = g where condition, 0 elsewhere,
    and db = g where not condition, then unbroadcast. (Selecting with where, not multiplying g by
    the 0/1 condition, keeps an inf in g out of the input that was not chosen: inf * 0 is NaN.)
    """

    def forward(self, a, b, condition):
        self.condition, self.a_shape, self.b_shape = condition, a.shape, b.shape
        return xp_of(a).where(condition, a, b)

    def backward(self, grad):
        # BEGIN SOLUTION 1.5 Where.backward
        # da = g where condition, db = g elsewhere
        zero = grad.dtype.type(0)
        xp = xp_of(grad)
        grad_a = xp.where(self.condition, grad, zero)
        grad_b = xp.where(self.condition, zero, grad)
        return unbroadcast(grad_a, self.a_shape), unbroadcast(grad_b, self.b_shape)
        # END SOLUTION 1.5


class Cast(Function):
    """y = x converted to `dtype`, any shape. The value is unchanged (up to rounding).

    Backward: dy/dx = 1 => dx = g, converted back to x's dtype so x's gradient matches x.
    """

    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        # BEGIN SOLUTION 1.5 Cast.backward
        # dx = g, cast back to the input's dtype
        return grad.astype(self.input_dtype)
        # END SOLUTION 1.5


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
