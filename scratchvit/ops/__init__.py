"""Every differentiable operation, as `from scratchvit import ops as F`.

One file per family; each op is a Function subclass with forward and backward side by side,
plus a lowercase function that checks its arguments and applies it.
"""

from .activation import gelu, log_softmax, relu, softmax
from .attention import multi_head_self_attention, scaled_dot_product_attention
from .elementwise import abs, add, cast, div, exp, log, maximum, mul, neg, pow, sqrt, sub, tanh, where
from .loss import cross_entropy, mse_loss
from .norm import layer_norm
from .products import linear, matmul
from .random import drop_path, dropout
from .reduce import max, mean, sum, var
from .shape import (
    concatenate,
    expand,
    getitem,
    pad,
    permute,
    reshape,
    roll,
    split,
    stack,
    take_along_axis,
    to_device,
    transpose,
)
from .vision import patch_merge, patchify, unpatchify, window_partition, window_reverse

__all__ = [
    "abs",
    "add",
    "cast",
    "concatenate",
    "cross_entropy",
    "div",
    "drop_path",
    "dropout",
    "exp",
    "expand",
    "gelu",
    "getitem",
    "layer_norm",
    "linear",
    "log",
    "log_softmax",
    "matmul",
    "max",
    "maximum",
    "mean",
    "mse_loss",
    "mul",
    "multi_head_self_attention",
    "neg",
    "pad",
    "patch_merge",
    "patchify",
    "permute",
    "pow",
    "relu",
    "reshape",
    "roll",
    "scaled_dot_product_attention",
    "softmax",
    "split",
    "sqrt",
    "stack",
    "sub",
    "sum",
    "take_along_axis",
    "tanh",
    "to_device",
    "transpose",
    "unpatchify",
    "var",
    "where",
    "window_partition",
    "window_reverse",
]
