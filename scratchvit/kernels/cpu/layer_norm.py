"""Layer norm with fewer passes and arrays, its rows cut over every core (textbook op: ops.norm.LayerNormFn).

The forward saves x (alive anyway: it is the residual stream) and two numbers per row, mean and
1 / std, as PyTorch does, instead of x_hat; the backward recomputes x_hat. Each direction
allocates only the arrays it returns or must hold (a fresh large array costs a page fault per
4 KiB page on its first write), works in place in them, and sums rows through einsum, one pass
without a temporary. The formulas are the textbook's.

Every row is normalised on its own, so x, viewed as rows (R, C), is cut into one part of
consecutive rows per core (threads.py) once scratchvit may take over from OpenBLAS and x has at
least chunks.min_parallel_row_elements() elements: each part runs the forward, and later the backward, of
its rows on its own thread, writing its slice of the output. The backward's dw and db are sums
over all rows: each part sums its own rows, and the parts' sums are added. Smaller arrays stay
on the calling thread: waking a thread costs more than their work.
"""

from __future__ import annotations

import numpy as np

from ...backend import FLOAT_DTYPES
from ...ops.norm import LayerNormFn
from ..registry import register_kernel
from . import chunks, threads


def row_parts(rows: int, channels: int) -> list:
    """(start, stop) of the parts that (rows, channels) is cut into: one part below the minimum."""
    parts = min(threads.parts_for(rows * channels, minimum=chunks.min_parallel_row_elements()), rows)
    return threads.bounds(rows, parts) if parts > 1 else [(0, rows)]


def layer_norm_rows(rows, weight, bias, eps, out, mean, inv_std) -> None:
    """out = layer_norm of rows (R, C); mean and inv_std (R,) get each row's mean and 1 / std."""
    channels = rows.shape[1]
    np.einsum("ij->i", rows, out=mean)
    mean *= 1 / channels
    np.subtract(rows, mean[:, None], out=out)
    np.einsum("ij,ij->i", out, out, out=inv_std)
    inv_std *= 1 / channels
    inv_std += eps
    np.sqrt(inv_std, out=inv_std)
    np.divide(1, inv_std, out=inv_std)
    out *= inv_std[:, None]  # x_hat
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias


def layer_norm_backward_rows(grad, rows, mean, inv_std, weight, has_bias, grad_x) -> tuple:
    """grad_x (R, C) = the gradient of x for rows (R, C) and upstream grad (R, C); returns this
    part's (dw, db), each (C,) or None."""
    # with h = g * w:  dx = inv_std * (h - mean(h) - x_hat * mean(h * x_hat)),
    # dw = sum of g * x_hat over the rows, db = sum of g over the rows
    channels = rows.shape[1]
    x_hat = np.subtract(rows, mean[:, None])
    x_hat *= inv_std[:, None]
    h = grad_x
    if weight is not None:
        np.multiply(grad, weight, out=h)
    else:
        np.copyto(h, grad)
    mean_h = np.einsum("ij->i", h)
    mean_h *= 1 / channels
    mean_h_x_hat = np.einsum("ij,ij->i", h, x_hat)
    mean_h_x_hat *= 1 / channels
    grad_weight = None if weight is None else np.einsum("ij,ij->j", grad, x_hat)
    grad_bias = np.einsum("ij->j", grad) if has_bias else None
    x_hat *= mean_h_x_hat[:, None]  # x_hat is not needed any more: reuse it
    x_hat += mean_h[:, None]
    h -= x_hat
    h *= inv_std[:, None]
    return grad_weight, grad_bias


@register_kernel(LayerNormFn, "numpy", FLOAT_DTYPES)
class LayerNormInPlace(LayerNormFn):
    """layer_norm keeping x and two numbers per row, in place, row sums by einsum, rows cut over the cores."""

    def forward(self, x, weight, bias, eps):
        # x: (..., C) viewed as rows (R, C); out: (..., C); mean, inv_std: (R,)
        rows = x.reshape(-1, x.shape[-1])
        out = np.empty(rows.shape, x.dtype)
        mean = np.empty(rows.shape[0], x.dtype)
        inv_std = np.empty(rows.shape[0], x.dtype)

        def part(start: int, stop: int) -> None:
            cut = slice(start, stop)
            layer_norm_rows(rows[cut], weight, bias, eps, out[cut], mean[cut], inv_std[cut])

        threads.run_parts(part, row_parts(*rows.shape))
        self.rows, self.mean, self.inv_std = rows, mean, inv_std
        self.weight, self.has_bias = weight, bias is not None
        return out.reshape(x.shape)

    def backward(self, grad):
        # grad: (..., C) -> dx (..., C), dw (C,), db (C,): each part's dw and db are summed
        rows = grad.reshape(self.rows.shape)
        grad_x = np.empty(rows.shape, rows.dtype)

        def part(start: int, stop: int) -> tuple:
            cut = slice(start, stop)
            return layer_norm_backward_rows(
                rows[cut], self.rows[cut], self.mean[cut], self.inv_std[cut], self.weight, self.has_bias, grad_x[cut]
            )

        sums = threads.run_parts(part, row_parts(*rows.shape))
        grad_weight, grad_bias = sums[0]
        for part_weight, part_bias in sums[1:]:
            if grad_weight is not None:
                grad_weight += part_weight
            if grad_bias is not None:
                grad_bias += part_bias
        return grad_x.reshape(grad.shape), grad_weight, grad_bias
