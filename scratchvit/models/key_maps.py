"""Each model family's key map for foreign checkpoints, and the resampling applied on load: a state_dict
read by scratchvit.io (any format) made to fit a scratchvit model of the family before it is loaded.

Key maps, by the family of the model loaded into:
    VisionTransformer   timm's keys. The official MAE pre-training checkpoint: its encoder keys are
                        timm's; decoder_* and mask_token are dropped. The official MAE fine-tuned
                        classifier (models_vit.py, global_pool=True) has timm's keys with fc_norm and
                        no norm: timm's global_pool='avg' layout. pre_logits.* is dropped, as timm does.
    SwinTransformer     timm >= 0.9 keys. The official layout (microsoft/Swin-Transformer), detected
                        as timm does by layers.0.downsample.reduction.weight: patch merging closes
                        stage i there and opens stage i + 1 in timm (layers.i.downsample ->
                        layers.{i+1}.downsample), head.* -> head.fc.*. The relative_position_index and
                        attn_mask buffers are dropped (rebuilt from the sizes). PatchMerging's norm and
                        reduction keep their names, and both concatenate the 2x2 neighbours in the same
                        order (x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]), so no
                        weight is permuted.
    MaskedAutoencoderViT the official MAE keys, as they are.

Resampling on load, as each format's reference loader does:
    ViT pos_embed, when the checkpoint has another number of positions: the class (prefix) rows kept,
        the square grid resampled to the model's (pos_embed.resample_abs_pos_embed, the resampler the
        forward pass uses too). torch / safetensors / own / plain .npz follow timm's
        checkpoint_filter_fn (bicubic, antialiased); JAX .npz timm's _load_weights (bilinear, not
        antialiased); an MAE pre-training checkpoint the official interpolate_pos_embed (bicubic, not
        antialiased). The position grid of a checkpoint is assumed square, as timm assumes.
    Swin relative_position_bias_table, when the window differs: timm's resize_rel_pos_bias_table,
        which is BEiT's: the source's relative offsets are spread out on a geometric progression that
        reaches the new table's edge, and the new table is read off that grid by linear interpolation
        (timm's default; its TIMM_USE_SCIPY_INTERP=1 path, scipy's cubic interp2d, is not followed).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..autograd import Tensor
from ..io import CheckpointError
from .pos_embed import resample_abs_pos_embed
from .swin import SwinTransformer, WindowAttention
from .vit import VisionTransformer

__all__ = ["adapt_state_dict", "resize_relative_position_bias_table"]


def adapt_state_dict(state: dict, model, source: str = "torch", path="state_dict") -> dict:
    """`state` with the key map of `model`'s family applied and its position tables resampled to the
    model's sizes (see the module's docstring). source: the format read_state_dict named."""
    if isinstance(model, SwinTransformer):
        return _adapt_swin(state, model, path)
    if isinstance(model, VisionTransformer):
        return _adapt_vit(state, model, source, path)
    return dict(state)


def _is_mae_pretraining(state: dict) -> bool:
    return "mask_token" in state or any(name.startswith("decoder_") for name in state)


def _adapt_vit(state: dict, model: VisionTransformer, source: str, path) -> dict:
    mae = _is_mae_pretraining(state)
    dropped = ("decoder_", "mask_token", "pre_logits.") if mae else ("pre_logits.",)
    state = {name: array for name, array in state.items() if not name.startswith(dropped)}
    pos_embed, target = state.get("pos_embed"), model.pos_embed
    other_length = pos_embed is not None and target is not None and pos_embed.ndim == 3
    other_length = other_length and pos_embed.shape[1] != target.shape[1] and pos_embed.shape[2] == target.shape[2]
    if other_length:
        if source == "big_vision":
            interpolation, antialias = "bilinear", False  # timm's _load_weights
        else:  # timm's checkpoint_filter_fn; the official MAE interpolate_pos_embed is not antialiased
            interpolation, antialias = "bicubic", not mae
        prefix = 0 if model.no_embed_class else model.num_prefix_tokens
        try:
            state["pos_embed"] = _resampled_pos_embed(
                pos_embed, model.patch_embed.grid_size, prefix, interpolation, antialias
            )
        except ValueError as error:
            raise CheckpointError(f"{path}: cannot resample pos_embed {pos_embed.shape}: {error}") from error
    return state


def _resampled_pos_embed(
    pos_embed: np.ndarray, new_size, num_prefix_tokens: int, interpolation: str, antialias: bool
) -> np.ndarray:
    """A checkpoint's (1, prefix + g*g, D) array resampled in float64 on the host, back in its dtype."""
    resampled = resample_abs_pos_embed(
        Tensor(pos_embed.astype(np.float64)),
        new_size,
        num_prefix_tokens=num_prefix_tokens,
        antialias=antialias,
        interpolation=interpolation,
    )
    return resampled.data.astype(pos_embed.dtype)


def _adapt_swin(state: dict, model: SwinTransformer, path) -> dict:
    official = "layers.0.downsample.reduction.weight" in state  # timm's test: timm's stage 0 never merges
    out = {}
    for name, array in state.items():
        if name.endswith(("relative_position_index", "attn_mask")):
            continue  # buffers, rebuilt from the window and image sizes
        if official:
            name = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", name)
            name = re.sub(r"^head\.", "head.fc.", name)
        out[name] = array
    for module_name, module in model.named_modules():
        if not isinstance(module, WindowAttention):
            continue
        name = f"{module_name}.relative_position_bias_table"
        table, target = out.get(name), module.relative_position_bias_table
        if table is not None and table.ndim == 2 and table.shape[1] == target.shape[1] and table.shape != target.shape:
            try:
                out[name] = resize_relative_position_bias_table(table, module.window_size)
            except ValueError as error:
                raise CheckpointError(f"{path}: cannot resize {name} {table.shape}: {error}") from error
    return out


def _geometric_offsets(source: int, target: int) -> np.ndarray:
    """BEiT's positions for the `source` relative offsets -(s//2)..s//2 of a table side: steps growing
    by a ratio q found by bisection so the outermost lands near target // 2 (timm's `_calc`)."""
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        ratio = (left + right) / 2.0
        if (1.0 - ratio ** (source // 2)) / (1.0 - ratio) > target // 2:  # 1 + q + ... + q^(n-1)
            right = ratio
        else:
            left = ratio
    steps = np.cumsum([1.0] + [ratio ** (i + 1) for i in range(source // 2 - 1)]) if source // 2 else np.zeros(0)
    return np.concatenate([-steps[::-1], [0.0], steps])


def _linear_matrix(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(targets), len(points)) weights of 1-D linear interpolation on sorted, unevenly spaced
    points, clamped outside them: timm's RegularGridInterpolator along one axis."""
    upper = np.minimum(np.searchsorted(points, targets, side="left"), len(points) - 1)
    lower = np.clip(upper - 1, 0, len(points) - 1)
    to_lower = np.maximum(targets - points[lower], 0.0)
    to_upper = np.maximum(points[upper] - targets, 0.0)
    both_zero = (to_lower == 0) & (to_upper == 0)  # on a point at the edge: half and half of one value
    to_lower[both_zero], to_upper[both_zero] = 1.0, 1.0
    matrix = np.zeros((len(targets), len(points)))
    rows = np.arange(len(targets))
    np.add.at(matrix, (rows, lower), to_upper / (to_lower + to_upper))
    np.add.at(matrix, (rows, upper), to_lower / (to_lower + to_upper))
    return matrix


def resize_relative_position_bias_table(table: np.ndarray, new_window_size) -> np.ndarray:
    """((2M-1)^2, heads) -> ((2Mh'-1)(2Mw'-1), heads), timm's resize_rel_pos_bias_table: each head's
    (2M-1) x (2M-1) table of relative offsets, its rows and columns placed by _geometric_offsets, read
    at the new integer offsets -(2Mh'-1)//2 .. (2Mh'-1)//2 by linear interpolation (separable).
    The source window is assumed square (ValueError otherwise), as timm assumes."""
    new_h, new_w = 2 * new_window_size[0] - 1, 2 * new_window_size[1] - 1
    length, heads = table.shape
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"{length} rows are not the table of a square window")
    if (side, side) == (new_h, new_w):
        return table
    rows = _linear_matrix(_geometric_offsets(side, new_h), np.arange(new_h, dtype=np.float64) - new_h // 2)
    columns = _linear_matrix(_geometric_offsets(side, new_w), np.arange(new_w, dtype=np.float64) - new_w // 2)
    grid = table.T.reshape(heads, side, side).astype(np.float64)  # [head, dy, dx]
    resized = np.einsum("ih,nhw,jw->nij", rows, grid, columns)
    return resized.reshape(heads, new_h * new_w).T.astype(table.dtype)
