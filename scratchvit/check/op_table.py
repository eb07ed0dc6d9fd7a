"""The op table: one entry per differentiable op, with a builder of valid inputs.

Each `OpEntry` names an op, the function to differentiate (a thin lambda around the public op in
`scratchvit.ops`, fixing its non-tensor arguments), and `make_inputs(rng, sizes, dtype, device)`,
which builds valid arguments from a few small integer sizes. `size_ranges` bounds each size
(inclusive, with 1 allowed wherever the op allows it, so size-1 and broadcast dims occur), and
`default_sizes` is what `scratchvit gradcheck` uses. The same table drives the gradient, dtype and
backend tests (tests/ops/test_table.py), in the manner of minitorch's test tables.

Inputs are kept away from kinks, where finite differences disagree with any backward: relu and
abs away from 0, log / sqrt / div denominators away from 0, max and maximum without ties.

>>> rows = run_gradchecks(only=["softmax", "layer_norm"])
>>> all(row.passed for row in rows)
True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import backend, kernels
from .. import ops as F
from ..autograd import Tensor
from .gradcheck import gradcheck

# -----------------------------------------------------------------------------------------
# Building blocks for make_inputs
# -----------------------------------------------------------------------------------------


def _leaf(values: np.ndarray, dtype, device, requires_grad: bool = True) -> Tensor:
    """A leaf tensor of `values` in `dtype` on `device`."""
    return Tensor(np.asarray(values).astype(dtype), requires_grad=requires_grad, device=device)


def _constant(values: np.ndarray, device):
    """A raw array (indices, masks, targets) on `device`."""
    return backend.to_device(np.asarray(values), backend.get_device(device))


def _normal(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.standard_normal(shape)


def _positive(rng: np.random.Generator, shape: tuple, low: float = 0.5, high: float = 2.0) -> np.ndarray:
    """Values in [low, high]: safe for log, sqrt, and as a denominator or a base of pow."""
    return rng.uniform(low, high, shape)


def _away_from_zero(rng: np.random.Generator, shape: tuple, low: float = 0.2, high: float = 2.0) -> np.ndarray:
    """|values| in [low, high] with random signs: away from the kink of relu and abs."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _distinct(rng: np.random.Generator, shape: tuple, gap: float = 0.1) -> np.ndarray:
    """Values at least `gap` apart (a shuffled grid, jittered by < gap / 4): no ties for max."""
    count = math.prod(shape)
    grid = (rng.permutation(count) - count / 2) * gap
    return (grid + rng.uniform(0, gap / 4, count)).reshape(shape)


def _on_grid(rng: np.random.Generator, shape: tuple, offset: float) -> np.ndarray:
    """Values near k * 0.2 + offset: with offsets 0 and 0.1, two such arrays never tie."""
    return rng.integers(-8, 9, shape) * 0.2 + offset + rng.uniform(-0.02, 0.02, shape)


_MASK_SEED = 1234


def _dropout_fixed(x, p: float = 0.3):
    with backend.fixed_device_rng(x.device, _MASK_SEED):
        return F.dropout(x, p, training=True)


def _drop_path_fixed(x, drop_prob: float = 0.5):
    with backend.fixed_device_rng(x.device, _MASK_SEED):
        return F.drop_path(x, drop_prob, training=True)


def _attention_dropout_fixed(q, k, v, dropout_p: float = 0.3):
    with backend.fixed_device_rng(q.device, _MASK_SEED):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, training=True)


# -----------------------------------------------------------------------------------------
# The table
# -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpEntry:
    """One differentiable op: `function(*make_inputs(rng, sizes, dtype, device))` is a Tensor.

    size_ranges: one inclusive (low, high) per size parameter; default_sizes: one value each.
    """

    name: str
    function: Callable
    make_inputs: Callable
    default_sizes: tuple
    size_ranges: tuple

    def inputs(self, rng: np.random.Generator, sizes=None, dtype=np.float64, device=None) -> tuple:
        """Arguments for `function`, at `sizes` (default_sizes when None)."""
        sizes = self.default_sizes if sizes is None else tuple(sizes)
        if len(sizes) != len(self.size_ranges):
            raise ValueError(f"op {self.name!r} takes {len(self.size_ranges)} sizes, got {sizes}")
        return tuple(self.make_inputs(rng, sizes, dtype, backend.get_device(device)))


OP_TABLE: list[OpEntry] = []


def _register(name: str, function: Callable, default_sizes: tuple, size_ranges: tuple):
    """Decorator: register `make_inputs` as the input builder of op `name`."""

    def decorate(make_inputs: Callable) -> Callable:
        if len(default_sizes) != len(size_ranges):
            raise ValueError(f"op {name!r}: default_sizes and size_ranges differ in length")
        OP_TABLE.append(OpEntry(name, function, make_inputs, tuple(default_sizes), tuple(size_ranges)))
        return make_inputs

    return decorate


# ---- elementwise, binary: a (m, 1, n) against b (k, n) broadcasts both ways to (m, k, n) ---------
_BINARY_SIZES, _BINARY_RANGES = (2, 3, 2), ((1, 3), (1, 3), (1, 3))


def _binary_shapes(sizes: tuple) -> tuple:
    m, k, n = sizes
    return (m, 1, n), (k, n)


def _binary(name: str, function: Callable, make_a: Callable, make_b: Callable) -> None:
    def make_inputs(rng, sizes, dtype, device):
        shape_a, shape_b = _binary_shapes(sizes)
        return _leaf(make_a(rng, shape_a), dtype, device), _leaf(make_b(rng, shape_b), dtype, device)

    _register(name, function, _BINARY_SIZES, _BINARY_RANGES)(make_inputs)


_binary("add", F.add, _normal, _normal)
_binary("sub", F.sub, _normal, _normal)
_binary("mul", F.mul, _normal, _normal)
_binary("div", F.div, _normal, _away_from_zero)
_binary("pow_tensor", F.pow, _positive, lambda rng, shape: rng.uniform(-2.0, 2.0, shape))
_binary(
    "maximum",
    F.maximum,
    lambda rng, shape: _on_grid(rng, shape, 0.0),
    lambda rng, shape: _on_grid(rng, shape, 0.1),
)


@_register("where", lambda condition, a, b: F.where(condition, a, b), _BINARY_SIZES, _BINARY_RANGES)
def _where_inputs(rng, sizes, dtype, device):
    shape_a, shape_b = _binary_shapes(sizes)
    condition = rng.random((sizes[0], sizes[1], sizes[2])) < 0.5
    return (
        _constant(condition, device),
        _leaf(_normal(rng, shape_a), dtype, device),
        _leaf(_normal(rng, shape_b), dtype, device),
    )


# ---- elementwise, unary: x (m, n) ------------------------------------------------------------
_UNARY_SIZES, _UNARY_RANGES = (3, 4), ((1, 4), (1, 5))


def _unary(name: str, function: Callable, make_x: Callable) -> None:
    def make_inputs(rng, sizes, dtype, device):
        return (_leaf(make_x(rng, tuple(sizes)), dtype, device),)

    _register(name, function, _UNARY_SIZES, _UNARY_RANGES)(make_inputs)


_unary("neg", F.neg, _normal)
_unary("exp", F.exp, _normal)
_unary("log", F.log, _positive)
_unary("sqrt", F.sqrt, _positive)
_unary("tanh", F.tanh, _normal)
_unary("abs", F.abs, _away_from_zero)
_unary("pow_int", lambda x: F.pow(x, 3), _normal)
_unary("pow_float", lambda x: F.pow(x, -1.5), _positive)
_unary("cast", lambda x: F.cast(x, x.dtype) * x, _normal)  # a cast to float32 is not checkable in float64
_unary("relu", F.relu, _away_from_zero)
_unary("gelu", F.gelu, lambda rng, shape: 2 * _normal(rng, shape))


@_register("add_same_shape", F.add, _UNARY_SIZES, _UNARY_RANGES)
def _add_same_shape_inputs(rng, sizes, dtype, device):
    """a + b of one shape (m, n), as in the residual adds: no broadcasting."""
    return tuple(_leaf(_normal(rng, tuple(sizes)), dtype, device) for _ in range(2))


# ---- reductions: x (a, b, c) -----------------------------------------------------------------
_CUBE_SIZES, _CUBE_RANGES = (2, 3, 4), ((1, 3), (1, 3), (1, 4))


def _cube(name: str, function: Callable, make_x: Callable = _normal) -> None:
    def make_inputs(rng, sizes, dtype, device):
        return (_leaf(make_x(rng, tuple(sizes)), dtype, device),)

    _register(name, function, _CUBE_SIZES, _CUBE_RANGES)(make_inputs)


_cube("sum", lambda x: F.sum(x, axis=(0, 2)))
_cube("sum_all", lambda x: F.sum(x))
_cube("mean", lambda x: F.mean(x, axis=1, keepdims=True))
_cube("max", lambda x: F.max(x, axis=-1), _distinct)
_cube("max_all", lambda x: F.max(x, keepdims=True), _distinct)
_cube("var", lambda x: F.var(x, axis=(1, 2)))


@_register("var_unbiased", lambda x: F.var(x, axis=0, keepdims=True, correction=1), (3, 2, 2), ((2, 4), (1, 3), (1, 3)))
def _var_unbiased_inputs(rng, sizes, dtype, device):
    return (_leaf(_normal(rng, tuple(sizes)), dtype, device),)  # at least 2 values per variance


# ---- shape ops -------------------------------------------------------------------------------
_cube("reshape", lambda x: F.reshape(x, (x.shape[2], -1)))
_cube("permute", lambda x: F.permute(x, (2, 0, 1)))
_cube("transpose", lambda x: F.transpose(x, 0, 2))
_cube("roll", lambda x: F.roll(x, (1, -2), (0, 2)))
_cube("pad", lambda x: F.pad(x, ((1, 0), (0, 0), (0, 2)), value=0.5))
_cube("split", lambda x: F.concatenate(F.split(x, 2, axis=2)[::-1], axis=2))  # pieces in reverse order
_cube("split_sections", lambda x: F.concatenate(F.split(x, [1, x.shape[1] - 1], axis=1)[::-1], axis=1))


@_register("expand", lambda x: F.expand(x, (2, x.shape[0], 3, x.shape[2])), _CUBE_SIZES, _CUBE_RANGES)
def _expand_inputs(rng, sizes, dtype, device):
    a, _, c = sizes
    return (_leaf(_normal(rng, (a, 1, c)), dtype, device),)


@_register("getitem_slice", lambda x: x[1:, ::2, None, -1], _CUBE_SIZES, _CUBE_RANGES)
def _getitem_slice_inputs(rng, sizes, dtype, device):
    a, b, c = sizes
    return (_leaf(_normal(rng, (a + 1, b, c)), dtype, device),)  # x[1:] is never empty


@_register("getitem_int_array", lambda x, index: x[:, index], _CUBE_SIZES, _CUBE_RANGES)
def _getitem_int_array_inputs(rng, sizes, dtype, device):
    index = rng.integers(0, sizes[1], 4)
    index = np.concatenate([index, index[:2]])  # repeated indices: their gradients must add up
    return _leaf(_normal(rng, tuple(sizes)), dtype, device), _constant(index, device)


@_register("getitem_bool_mask", lambda x, mask: x[mask], _CUBE_SIZES, _CUBE_RANGES)
def _getitem_bool_mask_inputs(rng, sizes, dtype, device):
    mask = rng.random(sizes[:2]) < 0.5
    mask.flat[0] = True  # never empty
    return _leaf(_normal(rng, tuple(sizes)), dtype, device), _constant(mask, device)


@_register("take_along_axis", lambda x, indices: F.take_along_axis(x, indices, axis=1), (2, 3, 4), _CUBE_RANGES)
def _take_along_axis_inputs(rng, sizes, dtype, device):
    a, b, c = sizes
    indices = rng.integers(0, b, (a, b + 2, c))  # more picks than rows: some repeat
    return _leaf(_normal(rng, (a, b, c)), dtype, device), _constant(indices, device)


@_register(
    "take_along_axis_broadcast", lambda x, indices: F.take_along_axis(x, indices, axis=1), (2, 3, 4), _CUBE_RANGES
)
def _take_along_axis_broadcast_inputs(rng, sizes, dtype, device):
    a, b, c = sizes
    indices = rng.integers(0, b, (a, b + 1, 1))  # MAE's gather: one index per token, broadcast over C
    return _leaf(_normal(rng, (a, b, c)), dtype, device), _constant(indices, device)


@_register("concatenate", lambda *tensors: F.concatenate(tensors, axis=1), (2, 3, 1), ((1, 3), (1, 3), (1, 3)))
def _concatenate_inputs(rng, sizes, dtype, device):
    m, n1, n2 = sizes
    return tuple(_leaf(_normal(rng, (m, n, 2)), dtype, device) for n in (n1, n2, 1))


@_register("stack", lambda *tensors: F.stack(tensors, axis=1), (2, 3), ((1, 3), (1, 4)))
def _stack_inputs(rng, sizes, dtype, device):
    return tuple(_leaf(_normal(rng, tuple(sizes)), dtype, device) for _ in range(3))


# ---- matrix products -------------------------------------------------------------------------
@_register("matmul", F.matmul, (2, 2, 3, 2, 2), ((1, 2), (1, 3), (1, 3), (1, 3), (1, 3)))
def _matmul_inputs(rng, sizes, dtype, device):
    batch, heads, n, k, m = sizes  # (B, 1, n, k) @ (H, k, m) -> (B, H, n, m)
    return _leaf(_normal(rng, (batch, 1, n, k)), dtype, device), _leaf(_normal(rng, (heads, k, m)), dtype, device)


@_register("matmul_vector_matrix", F.matmul, (2, 3, 2), ((1, 3), (1, 4), (1, 3)))
def _matmul_vector_matrix_inputs(rng, sizes, dtype, device):
    heads, k, m = sizes  # (k,) @ (H, k, m) -> (H, m)
    return _leaf(_normal(rng, (k,)), dtype, device), _leaf(_normal(rng, (heads, k, m)), dtype, device)


@_register("matmul_matrix_vector", F.matmul, (2, 3, 2), ((1, 3), (1, 4), (1, 3)))
def _matmul_matrix_vector_inputs(rng, sizes, dtype, device):
    heads, n, k = sizes  # (H, n, k) @ (k,) -> (H, n)
    return _leaf(_normal(rng, (heads, n, k)), dtype, device), _leaf(_normal(rng, (k,)), dtype, device)


@_register("matmul_vector_vector", F.matmul, (4,), ((1, 6),))
def _matmul_vector_vector_inputs(rng, sizes, dtype, device):
    (k,) = sizes  # (k,) @ (k,) -> ()
    return _leaf(_normal(rng, (k,)), dtype, device), _leaf(_normal(rng, (k,)), dtype, device)


_LINEAR_SIZES, _LINEAR_RANGES = (2, 3, 4, 3), ((1, 2), (1, 3), (1, 4), (1, 4))


@_register("linear", F.linear, _LINEAR_SIZES, _LINEAR_RANGES)
def _linear_inputs(rng, sizes, dtype, device):
    batch, tokens, features_in, features_out = sizes
    return (
        _leaf(_normal(rng, (batch, tokens, features_in)), dtype, device),
        _leaf(_normal(rng, (features_out, features_in)), dtype, device),
        _leaf(_normal(rng, (features_out,)), dtype, device),
    )


@_register("linear_no_bias", F.linear, _LINEAR_SIZES, _LINEAR_RANGES)
def _linear_no_bias_inputs(rng, sizes, dtype, device):
    return _linear_inputs(rng, sizes, dtype, device)[:2]


# ---- normalisation and normalised exponentials -----------------------------------------------
_ROWS_SIZES, _ROWS_RANGES = (2, 2, 4), ((1, 2), (1, 3), (2, 5))


@_register("layer_norm", F.layer_norm, _ROWS_SIZES, _ROWS_RANGES)
def _layer_norm_inputs(rng, sizes, dtype, device):
    channels = sizes[-1]
    return (
        _leaf(_normal(rng, tuple(sizes)), dtype, device),
        _leaf(1 + 0.5 * _normal(rng, (channels,)), dtype, device),
        _leaf(_normal(rng, (channels,)), dtype, device),
    )


def _rows(name: str, function: Callable, scale: float = 1.0) -> None:
    def make_inputs(rng, sizes, dtype, device):
        return (_leaf(scale * _normal(rng, tuple(sizes)), dtype, device),)

    _register(name, function, _ROWS_SIZES, _ROWS_RANGES)(make_inputs)


_rows("layer_norm_no_affine", F.layer_norm)
_rows("softmax", F.softmax, scale=2.0)
_rows("softmax_axis1", lambda x: F.softmax(x, axis=1), scale=2.0)
_rows("log_softmax", F.log_softmax, scale=2.0)
_rows("dropout", _dropout_fixed)
_rows("drop_path", _drop_path_fixed)

# ---- losses: logits (B, K) -------------------------------------------------------------------
_LOSS_SIZES, _LOSS_RANGES = (3, 4), ((1, 4), (2, 5))


def _cross_entropy(name: str, soft: bool, **options) -> None:
    def make_inputs(rng, sizes, dtype, device):
        batch, classes = sizes
        logits = _leaf(2 * _normal(rng, (batch, classes)), dtype, device)
        if soft:  # probabilities, e.g. from mixup
            target = _constant(rng.dirichlet(np.ones(classes), batch).astype(dtype), device)
        else:
            target = _constant(rng.integers(0, classes, batch), device)
        return logits, target

    _register(name, lambda logits, target: F.cross_entropy(logits, target, **options), _LOSS_SIZES, _LOSS_RANGES)(
        make_inputs
    )


_cross_entropy("cross_entropy", soft=False)
_cross_entropy("cross_entropy_soft", soft=True)
_cross_entropy("cross_entropy_smoothing", soft=False, label_smoothing=0.1)
_cross_entropy("cross_entropy_sum", soft=True, label_smoothing=0.2, reduction="sum")
_cross_entropy("cross_entropy_none", soft=False, reduction="none")


def _mse(name: str, reduction: str) -> None:
    def make_inputs(rng, sizes, dtype, device):
        return _leaf(_normal(rng, tuple(sizes)), dtype, device), _leaf(_normal(rng, tuple(sizes)), dtype, device)

    _register(name, lambda prediction, target: F.mse_loss(prediction, target, reduction), _LOSS_SIZES, _LOSS_RANGES)(
        make_inputs
    )


_mse("mse_loss", "mean")
_mse("mse_loss_sum", "sum")
_mse("mse_loss_none", "none")

# ---- attention: q (H, Nq, d), k (H, Nk, d), v (H, Nk, d + 1); bias and masks (Nq, Nk) ---------
# Short rows keep the weights for the backward, long ones recompute them (attention.keeps_weights):
# 3 x 3 weights against 3 x 2 + 3 x 5 numbers of q, k, v are kept; 5 x 6 against 5 + 6 x 3 are not.
_ATTENTION_SIZES, _LONG_ATTENTION_SIZES = (2, 3, 3, 2), (2, 5, 6, 1)
_ATTENTION_RANGES = ((1, 2), (1, 5), (1, 6), (1, 3))


def _qkv(rng, sizes, dtype, device) -> tuple:
    heads, queries, keys, head_dim = sizes
    return (
        _leaf(_normal(rng, (heads, queries, head_dim)), dtype, device),
        _leaf(_normal(rng, (heads, keys, head_dim)), dtype, device),
        _leaf(_normal(rng, (heads, keys, head_dim + 1)), dtype, device),
    )


def _allowed(rng, queries: int, keys: int) -> np.ndarray:
    """A boolean (Nq, Nk) mask, True where attention is allowed, at least one True per row."""
    allowed = rng.random((queries, keys)) < 0.6
    allowed[np.arange(queries), rng.integers(0, keys, queries)] = True
    return allowed


@_register("scaled_dot_product_attention", F.scaled_dot_product_attention, _LONG_ATTENTION_SIZES, _ATTENTION_RANGES)
def _attention_inputs(rng, sizes, dtype, device):
    return _qkv(rng, sizes, dtype, device)


@_register("scaled_dot_product_attention_bias", F.scaled_dot_product_attention, _ATTENTION_SIZES, _ATTENTION_RANGES)
def _attention_bias_inputs(rng, sizes, dtype, device):
    _, queries, keys, _ = sizes  # a bias shared by the heads, as Swin's relative position bias
    return _qkv(rng, sizes, dtype, device) + (_leaf(_normal(rng, (queries, keys)), dtype, device),)


@_register(
    "scaled_dot_product_attention_mask",
    lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, mask=mask),
    _ATTENTION_SIZES,
    _ATTENTION_RANGES,
)
def _attention_mask_inputs(rng, sizes, dtype, device):
    _, queries, keys, _ = sizes  # Swin's shifted-window mask: 0 where allowed, -100 elsewhere
    mask = np.where(_allowed(rng, queries, keys), 0.0, -100.0).astype(dtype)
    return _qkv(rng, sizes, dtype, device) + (_constant(mask, device),)


@_register(
    "scaled_dot_product_attention_bool_mask",
    lambda q, k, v, bias, mask: F.scaled_dot_product_attention(q, k, v, bias=bias, mask=mask),
    _LONG_ATTENTION_SIZES,
    _ATTENTION_RANGES,
)
def _attention_bool_mask_inputs(rng, sizes, dtype, device):
    heads, queries, keys, _ = sizes  # with a per-head bias too
    bias = _leaf(_normal(rng, (heads, queries, keys)), dtype, device)
    return _qkv(rng, sizes, dtype, device) + (bias, _constant(_allowed(rng, queries, keys), device))


@_register("scaled_dot_product_attention_dropout", _attention_dropout_fixed, _ATTENTION_SIZES, _ATTENTION_RANGES)
def _attention_dropout_inputs(rng, sizes, dtype, device):
    return _qkv(rng, sizes, dtype, device)


# sizes: (windows per image G, images, heads, tokens, head_dim); qkv is (G * images, N, 3 * heads * head_dim)
_SELF_ATTENTION_SIZES, _LONG_SELF_ATTENTION_SIZES = (2, 2, 2, 3, 2), (2, 2, 2, 5, 1)  # weights kept / recomputed
_SELF_ATTENTION_RANGES = ((1, 2), (1, 2), (1, 2), (1, 5), (1, 2))


def _qkv_packed(rng, sizes, dtype, device) -> Tensor:
    groups, images, heads, tokens, head_dim = sizes
    return _leaf(_normal(rng, (groups * images, tokens, 3 * heads * head_dim)), dtype, device)


def _self_attention_dropout_fixed(qkv, num_heads: int, dropout_p: float = 0.3):
    with backend.fixed_device_rng(qkv.device, _MASK_SEED):
        return F.multi_head_self_attention(qkv, num_heads, dropout_p=dropout_p, training=True)


@_register("multi_head_self_attention", F.multi_head_self_attention, _SELF_ATTENTION_SIZES, _SELF_ATTENTION_RANGES)
def _self_attention_inputs(rng, sizes, dtype, device):
    return _qkv_packed(rng, sizes, dtype, device), sizes[2]


@_register(
    "multi_head_self_attention_bias_mask",
    lambda qkv, heads, bias, mask: F.multi_head_self_attention(qkv, heads, bias=bias, mask=mask),
    _LONG_SELF_ATTENTION_SIZES,
    _SELF_ATTENTION_RANGES,
)
def _self_attention_bias_mask_inputs(rng, sizes, dtype, device):
    groups, _, heads, tokens, _ = sizes  # Swin: a bias per head, a mask per window of each image
    bias = _leaf(_normal(rng, (heads, tokens, tokens)), dtype, device)
    mask = np.stack([np.where(_allowed(rng, tokens, tokens), 0.0, -100.0) for _ in range(groups)]).astype(dtype)
    return _qkv_packed(rng, sizes, dtype, device), heads, bias, _constant(mask, device)


@_register(
    "multi_head_self_attention_dropout", _self_attention_dropout_fixed, _SELF_ATTENTION_SIZES, _SELF_ATTENTION_RANGES
)
def _self_attention_dropout_inputs(rng, sizes, dtype, device):
    return _qkv_packed(rng, sizes, dtype, device), sizes[2]


# ---- vision rearrangements -------------------------------------------------------------------
@_register(
    "patchify",
    lambda images, patch_size: F.patchify(images, patch_size),
    (2, 2, 2, 3, 2),
    ((1, 2), (1, 2), (1, 2), (1, 3), (1, 2)),
)
def _patchify_inputs(rng, sizes, dtype, device):
    batch, channels, grid_h, grid_w, patch = sizes
    images = _leaf(_normal(rng, (batch, channels, grid_h * patch, grid_w * patch)), dtype, device)
    return images, patch


@_register(
    "unpatchify",
    lambda patches, patch_size, grid_size: F.unpatchify(patches, patch_size, grid_size),
    (2, 2, 2, 3, 2),
    ((1, 2), (1, 2), (1, 2), (1, 3), (1, 2)),
)
def _unpatchify_inputs(rng, sizes, dtype, device):
    batch, channels, grid_h, grid_w, patch = sizes
    patches = _leaf(_normal(rng, (batch, grid_h * grid_w, patch * patch * channels)), dtype, device)
    return patches, patch, (grid_h, grid_w)


_WINDOW_SIZES, _WINDOW_RANGES = (1, 2, 2, 2, 2), ((1, 2), (1, 2), (1, 2), (1, 2), (1, 2))


@_register("window_partition", lambda x, window: F.window_partition(x, window), _WINDOW_SIZES, _WINDOW_RANGES)
def _window_partition_inputs(rng, sizes, dtype, device):
    batch, rows, columns, window, channels = sizes
    return _leaf(_normal(rng, (batch, rows * window, columns * window, channels)), dtype, device), window


@_register(
    "window_reverse",
    lambda windows, window, height, width: F.window_reverse(windows, window, height, width),
    _WINDOW_SIZES,
    _WINDOW_RANGES,
)
def _window_reverse_inputs(rng, sizes, dtype, device):
    batch, rows, columns, window, channels = sizes
    windows = _leaf(_normal(rng, (batch * rows * columns, window, window, channels)), dtype, device)
    return windows, window, rows * window, columns * window


@_register("patch_merge", F.patch_merge, (2, 2, 1, 2), ((1, 2), (1, 2), (1, 3), (1, 2)))
def _patch_merge_inputs(rng, sizes, dtype, device):
    batch, half_h, half_w, channels = sizes
    return (_leaf(_normal(rng, (batch, 2 * half_h, 2 * half_w, channels)), dtype, device),)


OPS: dict[str, OpEntry] = {entry.name: entry for entry in OP_TABLE}
if len(OPS) != len(OP_TABLE):
    raise RuntimeError("op table: two entries share a name")


# -----------------------------------------------------------------------------------------
# Running the gradient checks
# -----------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the `scratchvit gradcheck` table."""

    op: str
    shapes: str
    max_relative_error: float
    passed: bool
    message: str


def select(only=None) -> list[OpEntry]:
    """The entries named in `only` (all when None); an unknown name raises ValueError."""
    if only is None:
        return list(OP_TABLE)
    names = [only] if isinstance(only, str) else list(only)
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise ValueError(f"unknown op {', '.join(map(repr, unknown))}; known ops: {', '.join(OPS)}")
    return [OPS[name] for name in dict.fromkeys(names)]


def entry_seed(entry: OpEntry, seed: int) -> np.random.Generator:
    """The generator for an entry's inputs: the same for an op whether run alone or with all."""
    return np.random.default_rng([seed, zlib.crc32(entry.name.encode())])


def describe_shapes(inputs: tuple) -> str:
    """'2x1x3 3x3': the shapes of the tensors among `inputs`."""
    shapes = [value.shape for value in inputs if isinstance(value, Tensor)]
    return " ".join("x".join(map(str, shape)) if shape else "()" for shape in shapes)


def run_gradchecks(device=None, seed: int = 0, only=None, tier: str = "textbook") -> list[Row]:
    """Check every op (or those named in `only`) in float64 by finite differences, at default sizes,
    on the "textbook" tier (the ops as written in scratchvit.ops) or the "fast" one (their kernels)."""
    entries = select(only)
    target = backend.get_device(device)
    with kernels.tier(tier):
        return [_gradcheck_row(entry, target, seed) for entry in entries]


def _gradcheck_row(entry: OpEntry, target: backend.Device, seed: int) -> Row:
    inputs = entry.inputs(entry_seed(entry, seed), dtype=np.float64, device=target)
    shapes = describe_shapes(inputs)
    try:
        error = gradcheck(entry.function, inputs, seed=seed)
    except Exception as failure:  # a wrong gradient (GradcheckError) or an op that raises
        message = str(failure) if isinstance(failure, AssertionError) else f"{type(failure).__name__}: {failure}"
        return Row(entry.name, shapes, math.nan, False, message)
    return Row(entry.name, shapes, error, True, "")
