"""Position embeddings: fixed 2-D sine-cosine tables (MAE Sec. 3 and its code, after Vaswani et
al. 2017, Sec. 3.5) and resampling a learned grid to another size (ViT Sec. 3.2, "Fine-tuning and
higher resolution: we perform 2D interpolation of the pre-trained position embeddings").

Resampling is written as two 1-D interpolation matrices, so it is a linear map:
out = A_h @ grid @ A_w^T, which the autograd differentiates like any matmul. Each matrix holds the
weights PyTorch's F.interpolate(align_corners=False) gives: bicubic, antialiased or not (timm's
resample_abs_pos_embed and checkpoint_filter_fn; the official MAE interpolate_pos_embed is not
antialiased), or bilinear without antialias (timm's loader of JAX checkpoints). This one resampler
serves the forward pass at another image size and the loading of weights made at another one.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops as F
from ..autograd import Tensor


def sincos_1d(embed_dim: int, positions: np.ndarray) -> np.ndarray:
    """(M,) positions -> (M, D): [sin(pos * w_k), cos(pos * w_k)], w_k = 1 / 10000^(2k / D)."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos embedding needs an even embed_dim, got {embed_dim}")
    frequencies = 1.0 / 10000 ** (np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0))
    angles = np.outer(positions.reshape(-1).astype(np.float64), frequencies)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(embed_dim: int, grid_size, class_token: bool = False) -> np.ndarray:
    """(h*w [+1], D) table: half the channels encode the column, half the row, as MAE's
    get_2d_sincos_pos_embed (its grid is meshgrid(w, h), so the first half is the column index).
    With class_token, a row of zeros comes first."""
    grid_h, grid_w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs embed_dim divisible by 4, got {embed_dim}")
    rows, columns = np.meshgrid(np.arange(grid_h, dtype=np.float64), np.arange(grid_w, dtype=np.float64), indexing="ij")
    table = np.concatenate([sincos_1d(embed_dim // 2, columns), sincos_1d(embed_dim // 2, rows)], axis=1)
    if class_token:
        table = np.concatenate([np.zeros((1, embed_dim)), table], axis=0)
    return table.astype(np.float32)


def _cubic(distance: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.75 in PyTorch's bicubic, -0.5 in its antialiased one)."""
    d = np.abs(distance)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def interpolation_matrix(in_size: int, out_size: int, antialias: bool = True, interpolation: str = "bicubic"):
    """(out_size, in_size) weights of PyTorch's 1-D resize (align_corners=False): bicubic, or bilinear
    (without antialias only). ValueError for another interpolation."""
    if interpolation == "bicubic":
        return _bicubic_matrix(in_size, out_size, antialias)
    if interpolation == "bilinear" and not antialias:
        return _bilinear_matrix(in_size, out_size)
    if interpolation == "bilinear":
        raise ValueError("bilinear resampling is written without antialias only: pass antialias=False")
    raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}")


def _bicubic_matrix(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out_size, in_size) weights of PyTorch's 1-D bicubic resize (align_corners=False).

    antialias=False: 4 taps around src = (i + 0.5) * in/out - 0.5, kernel a = -0.75, indices
    clamped at the border. antialias=True (timm's default): taps within `support` of the centre,
    the kernel stretched by in/out when shrinking, a = -0.5, weights normalised to sum to 1.
    """
    scale = in_size / out_size
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        if antialias:
            stretch = max(scale, 1.0)
            center = scale * (i + 0.5)
            first = max(int(center - 2 * stretch + 0.5), 0)
            last = min(int(center + 2 * stretch + 0.5), in_size)
            taps = np.arange(first, last)
            weights = _cubic((taps - center + 0.5) / stretch, a=-0.5)
            matrix[i, taps] = weights / weights.sum()
        else:
            source = (i + 0.5) * scale - 0.5
            base = math.floor(source)
            taps = np.arange(base - 1, base + 3)
            weights = _cubic(taps - source, a=-0.75)
            np.add.at(matrix[i], np.clip(taps, 0, in_size - 1), weights)
    return matrix


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of PyTorch's 1-D bilinear resize (align_corners=False, no antialias):
    src = max((i + 0.5) * in/out - 0.5, 0) between its two neighbours, the upper one clamped."""
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    fraction = source - lower
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1.0 - fraction)
    np.add.at(matrix, (rows, upper), fraction)
    return matrix


def resample_grid(grid: Tensor, new_size, antialias: bool = True, interpolation: str = "bicubic") -> Tensor:
    """(h, w, D) -> (h', w', D), differentiable; interpolation "bicubic" or "bilinear"."""
    old_h, old_w, _ = grid.shape
    new_h, new_w = new_size
    if (old_h, old_w) == (new_h, new_w):
        return grid
    dtype = grid.dtype
    rows = interpolation_matrix(old_h, new_h, antialias, interpolation)
    columns = interpolation_matrix(old_w, new_w, antialias, interpolation)
    rows, columns = Tensor(rows.astype(dtype), device=grid.device), Tensor(columns.astype(dtype), device=grid.device)
    grid = (rows @ grid.permute(2, 0, 1)) @ columns.T  # (D, h', w')
    return grid.permute(1, 2, 0)


def resample_abs_pos_embed(
    pos_embed: Tensor,
    new_size,
    old_size=None,
    num_prefix_tokens: int = 1,
    antialias: bool = True,
    interpolation: str = "bicubic",
) -> Tensor:
    """(1, prefix + h*w, D) -> (1, prefix + h'*w', D): the grid part resampled, the class (prefix)
    tokens kept as they are, as timm's resample_abs_pos_embed. Without old_size the grid is taken to
    be square, as timm takes it; ValueError when it cannot be."""
    embed_dim = pos_embed.shape[-1]
    grid_tokens = pos_embed.shape[1] - num_prefix_tokens
    if old_size is None:
        side = math.isqrt(max(grid_tokens, 0))
        if side == 0 or side * side != grid_tokens:
            raise ValueError(
                f"its {grid_tokens} rows after the {num_prefix_tokens} prefix rows are not a square grid; pass old_size"
            )
        old_size = (side, side)
    if old_size[0] * old_size[1] != grid_tokens:
        raise ValueError(f"old_size {old_size} does not hold the {grid_tokens} grid position embeddings")
    if tuple(old_size) == tuple(new_size):
        return pos_embed
    prefix = pos_embed[:, :num_prefix_tokens]
    grid = pos_embed[0, num_prefix_tokens:].reshape(old_size[0], old_size[1], embed_dim)
    grid = resample_grid(grid, new_size, antialias, interpolation).reshape(1, new_size[0] * new_size[1], embed_dim)
    return F.concatenate([prefix, grid], axis=1) if num_prefix_tokens else grid
