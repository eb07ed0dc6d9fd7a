"""A per-layer summary of a model: output shapes, parameters and multiply-adds (MACs).

    >>> from scratchvit.models import summarize
    >>> summary = summarize(sv.create_model("vit_base_patch16_224"), (1, 3, 224, 224))
    >>> print(summary.table(max_depth=2)); summary.total_macs     # 17.56 G
    >>> # the command: scratchvit summary vit_base_patch16_224 --img-size 224

How it works: a forward hook (Module.register_forward_hook) on every module records the shape of
what the module returned and the multiply-adds the module did itself; the model runs once under
sv.no_grad, in eval mode, on a zero input. Each row's MACs are those of the module and everything
inside it; the total is the sum over modules of their own MACs, so nothing is counted twice.

Which multiply-adds count: the products of the matrix multiplications, as the ViT paper's
Table 1 / timm's fvcore figures count them (a multiply-add is one multiplication and one addition);
layer norms, activations, softmax, additions and reshapes are not counted.
    Linear:          tokens * in_features * out_features      (tokens = all leading dims of the output)
    PatchProjection: B * N * D * C * P * P                      (the convolution of ViT Eq. 1 as a GEMM)
    Attention:       2 * B * heads * N * N * head_dim           (q @ k^T and attention @ v; its qkv and
                                                                 proj are Linear children, counted there)

A module counts its own products by defining a method

    def own_macs(self, inputs: tuple, output) -> int

that gets the positional arguments of its forward and what forward returned, and returns the
multiply-adds it did outside its child modules. It takes precedence over the rules above. Define it
on any module that multiplies tensors itself rather than through a Linear child: e.g. Swin's
WindowAttention, whose q @ k^T and attention @ v per window give 2 * (B * windows) * heads * M^2 *
M^2 * head_dim for windows of M x M tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..autograd import Tensor, no_grad
from ..tensors import zeros


@dataclass
class SummaryRow:
    """One module: its dotted name, class, depth in the tree, the shape of its (last) output,
    the parameters in it (its children's included), the MACs of its calls (children's included),
    and how many times the forward pass called it."""

    name: str
    kind: str
    depth: int
    output_shape: str
    params: int
    macs: int
    calls: int


@dataclass
class Summary:
    """The rows of every module in tree order, and the totals."""

    input_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0

    def table(self, max_depth: int | None = None) -> str:
        """The rows (down to max_depth; 0 is the model itself) and the totals as aligned text."""
        rows = [row for row in self.rows if max_depth is None or row.depth <= max_depth]
        lines = [("layer (type)", "output shape", "params", "MACs")]
        for row in rows:
            label = "  " * row.depth + (f"{row.name} ({row.kind})" if row.name else row.kind)
            calls = f" x{row.calls}" if row.calls > 1 else ""
            lines.append(
                (
                    label,
                    row.output_shape + calls,
                    f"{row.params:,}" if row.params else "-",
                    format_count(row.macs) if row.macs else "-",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(4)]
        text = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}" for a, b, c, d in lines]
        text.insert(1, "-" * len(text[0]))
        text.append("-" * len(text[0]))
        text.append(self.totals())
        return "\n".join(text)

    def totals(self) -> str:
        """e.g. 'params: 86,567,656 (86.57 M), trainable 86.57 M | MACs: 17.56 G | input (1, 3, 224, 224)'"""
        return (
            f"params: {self.total_params:,} ({format_count(self.total_params)}), trainable "
            f"{format_count(self.trainable_params)} | MACs: {format_count(self.total_macs)} | "
            f"input {self.input_shape}"
        )

    def __str__(self) -> str:
        return self.table()


def format_count(count: int) -> str:
    """Human-readable: 86567656 -> '86.57 M', 17563000000 -> '17.56 G', 512 -> '512'."""
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(count) >= threshold:
            return f"{count / threshold:.2f} {suffix}"
    return str(int(count))


def _shape_text(output) -> str:
    if isinstance(output, Tensor) or hasattr(output, "shape"):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_shape_text(item) for item in output) + "]"
    return type(output).__name__


def _leading_size(shape) -> int:
    return int(math.prod(shape[:-1]))


def own_macs_of(module: nn.Module, inputs: tuple, output) -> int:
    """Multiply-adds `module` did itself in one call (not in its children); see the module docstring."""
    if hasattr(module, "own_macs"):
        return int(module.own_macs(inputs, output))
    if isinstance(module, nn.Linear):  # one GEMM: (tokens, in) @ (in, out)
        return _leading_size(output.shape) * module.in_features * module.out_features
    if isinstance(module, nn.PatchProjection):  # (B * N, C * P * P) @ (C * P * P, D)
        return _leading_size(output.shape) * module.weight.size
    if isinstance(module, nn.Attention):  # q @ k^T: (N, d) @ (d, N) and attention @ v: (N, N) @ (N, d), per head
        batch, tokens, _ = inputs[0].shape
        return 2 * batch * module.num_heads * tokens * tokens * module.head_dim
    return 0


def summarize(model: nn.Module, input_shape, device=None) -> Summary:
    """Run `model` once on zeros of `input_shape` (e.g. (1, 3, 224, 224)) and return a Summary:
    a row per module in tree order, with total parameters and multiply-adds.

    The model runs in eval mode under sv.no_grad; its mode is restored and the hooks removed after.
    device: where the zero input lives (default: the device of the model's first parameter).
    """
    input_shape = tuple(int(size) for size in input_shape)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else None
    named = list(model.named_modules())
    records = {name: {"macs": 0, "calls": 0, "shape": "-"} for name, _ in named}

    def make_hook(name):
        def hook(module, inputs, output):
            record = records[name]
            record["macs"] += own_macs_of(module, inputs, output)
            record["calls"] += 1
            record["shape"] = _shape_text(output)

        return hook

    modes = [(module, module.training) for _, module in named]
    removers = [module.register_forward_hook(make_hook(name)) for name, module in named]
    try:
        model.eval()
        with no_grad():
            model(zeros(*input_shape, device=device))
    finally:
        for remove in removers:
            remove()
        for module, training in modes:
            object.__setattr__(module, "training", training)

    summary = Summary(input_shape=input_shape)
    summary.total_params = model.num_parameters()
    summary.trainable_params = model.num_parameters(trainable_only=True)
    summary.total_macs = sum(record["macs"] for record in records.values())
    for name, module in named:
        inside = [other for other in records if other == name or not name or other.startswith(name + ".")]
        summary.rows.append(
            SummaryRow(
                name=name,
                kind=type(module).__name__,
                depth=0 if not name else name.count(".") + 1,
                output_shape=records[name]["shape"],
                params=module.num_parameters(),
                macs=sum(records[other]["macs"] for other in inside),
                calls=records[name]["calls"],
            )
        )
    return summary


def input_shape_for(model: nn.Module, batch_size: int = 1, img_size=None) -> tuple:
    """(B, C, H, W) for a model with a `patch_embed` (ViT, MAE, Swin): its channels, and img_size
    (int or (H, W)) or else the size the model was built for."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    patch_embed = getattr(model, "patch_embed", None)
    if img_size is None:
        if patch_embed is None or not hasattr(patch_embed, "img_size"):
            raise ValueError(f"{type(model).__name__} has no patch_embed.img_size; pass img_size")
        img_size = patch_embed.img_size
    height, width = (img_size, img_size) if isinstance(img_size, (int, np.integer)) else img_size
    channels = getattr(patch_embed, "in_chans", 3)
    return (batch_size, channels, int(height), int(width))
