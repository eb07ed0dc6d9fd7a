"""Matrix products: batched broadcasting `matmul`, and the fused `linear` layer.

`linear` is the hot path of every transformer: each one is reshaped to 2-D so the forward and
both gradients are one GEMM each (ViT Sec. 3.1: the patch embedding, qkv, projections and MLP
are all linear maps).
"""

from __future__ import annotations

from ..autograd import Function, Tensor, unbroadcast


class MatMul(Function):
    """C = A B with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m), leading dims broadcast.

    A vector is a (1, k) row on the left and a (k, 1) column on the right, its new axis dropped again.

    Backward: C_ij = sum_l A_il B_lj, so dL/dA_il = sum_j g_ij B_lj and dL/dB_lj = sum_i A_il g_ij:
        dA = g B^T,   dB = A^T g,
    each then summed over the leading dims its input was broadcast along.
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        # BEGIN SOLUTION 3.1 MatMul.backward
        # da = g @ b^T, db = a^T @ g; vectors are treated as (1, n) / (n, 1) matrices
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.b.ndim == 1:  # first: for vector @ vector, g is 0-d and gains its column axis here
            grad = grad[..., None]
        if self.a.ndim == 1:
            grad = grad[..., None, :]
        grad_a = unbroadcast(grad @ b.swapaxes(-1, -2), a.shape).reshape(self.a.shape)
        grad_b = unbroadcast(a.swapaxes(-1, -2) @ grad, b.shape).reshape(self.b.shape)
        return grad_a, grad_b
        # END SOLUTION 3.1


class LinearFn(Function):
    """y = x W^T + b   x: (..., in), W: (out, in), b: (out,) -> y: (..., out).

    Backward: with the leading dims flattened, X: (M, in) and G = dL/dY: (M, out),
    Y = X W^T + 1 b^T gives
        dX = G W,   dW = G^T X,   db = sum of G's rows:
    three GEMMs on 2-D views.
    """

    def forward(self, x, weight, bias):
        # BEGIN SOLUTION 3.1 LinearFn.forward
        self.x2d = x.reshape(-1, x.shape[-1])  # (M, in), M = product of the leading dims
        self.weight, self.input_shape, self.has_bias = weight, x.shape, bias is not None
        out = self.x2d @ weight.T
        if bias is not None:
            out = out + bias
        return out.reshape(*x.shape[:-1], weight.shape[0])
        # END SOLUTION 3.1

    def backward(self, grad):
        # BEGIN SOLUTION 3.1 LinearFn.backward
        # dx = g @ W, dW = g^T @ x, db = sum of g over all rows
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = (grad2d @ self.weight).reshape(self.input_shape)
        grad_weight = grad2d.T @ self.x2d
        grad_bias = grad2d.sum(axis=0) if self.has_bias else None
        return grad_x, grad_weight, grad_bias
        # END SOLUTION 3.1


def matmul(a, b) -> Tensor:
    """a @ b with NumPy's rules: (..., n, k) @ (..., k, m) -> (..., n, m), batch dims broadcast."""
    shape_a, shape_b = (tuple(getattr(value, "shape", ())) for value in (a, b))
    if not shape_a or not shape_b:
        raise ValueError(f"matmul needs tensors of at least 1 dimension, got shapes {shape_a} and {shape_b}")
    if shape_a[-1] != shape_b[-2 if len(shape_b) > 1 else 0]:
        raise ValueError(f"matmul: shapes {shape_a} and {shape_b} do not match in the inner dimension")
    return MatMul.apply(a, b)


def linear(x, weight, bias=None) -> Tensor:
    """y = x W^T + b. x: (..., in), weight: (out, in) as timm/PyTorch store it, bias: (out,)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: x has {x.shape[-1]} features in its last dim but weight expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    return LinearFn.apply(x, weight, bias)
