"""Vision ops that rearrange pixels and tokens:

- patchify / unpatchify: images <-> flattened non-overlapping patches (ViT, Dosovitskiy et al.
  2021, Sec. 3.1, Eq. 1; MAE's order, in which each patch is flattened as (row p, column q,
  channel c));
- window_partition / window_reverse: Swin's non-overlapping M x M windows (Liu et al. 2021,
  Sec. 3.2);
- patch_merge: Swin's 2 x 2 neighbour concatenation between stages (Liu et al. 2021, Sec. 3.1).

The cyclic shift of Swin's shifted windows (Sec. 3.2) is `roll`, in shape.py.
Each is one `Rearrange`: a reshape + transpose, so each backward is the inverse rearrangement.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from .shape import inverse_permutation


class Rearrange(Function):
    """y = x.reshape(split_shape).transpose(axes).reshape(out_shape): the same entries in a new
    order, x: (...) -> out_shape, of the same size.

    Backward: each entry of y is one entry of x, each used once: y = P x for a permutation matrix
    P, so dx = P^T g = P^-1 g, the steps undone in reverse order: g reshaped to the transposed
    shape, transposed by the inverse permutation, reshaped to x's shape.
    """

    def forward(self, x, split_shape, axes, out_shape):
        self.input_shape, self.axes = x.shape, axes
        self.transposed_shape = tuple(split_shape[a] for a in axes)
        return x.reshape(split_shape).transpose(axes).reshape(out_shape)

    def backward(self, grad):
        # BEGIN SOLUTION 2.5 Rearrange.backward
        # dx = g put through the inverse: reshape, inverse transpose, reshape
        return grad.reshape(self.transposed_shape).transpose(inverse_permutation(self.axes)).reshape(self.input_shape)
        # END SOLUTION 2.5


def size_pair(name: str, value) -> tuple:
    """An int or (h, w) -> (h, w) of positive ints; ValueError naming the argument otherwise.
    Used for every patch, window, image and grid size."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_rank(name: str, x, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {layout} ({ndim} dims), got shape {tuple(x.shape)}")


def patchify(images, patch_size) -> Tensor:
    """(B, C, H, W) -> (B, N, P*P*C), N = (H/P)(W/P): the sequence x_p of ViT Eq. 1 (Sec. 3.1).

    Patches in row-major order (patch n = row h * W/P + column w). Each patch is flattened in
    MAE's order (p, q, c): all channels of pixel (0, 0), then (0, 1), ..., so feature
    (p * P + q) * C + c is channel c of pixel (h * P + p, w * P + q).
    """
    _check_rank("images", images, 4, "(B, C, H, W)")
    patch_h, patch_w = size_pair("patch_size", patch_size)
    batch, channels, height, width = images.shape
    if height % patch_h or width % patch_w:
        raise ValueError(f"image size {height}x{width} is not divisible by patch_size {patch_h}x{patch_w}")
    grid_h, grid_w = height // patch_h, width // patch_w
    # BEGIN SOLUTION 2.5 patchify
    return Rearrange.apply(
        images,
        split_shape=(batch, channels, grid_h, patch_h, grid_w, patch_w),  # (B, C, h, p, w, q): row = h P + p
        axes=(0, 2, 4, 3, 5, 1),  # (B, h, w, p, q, C): (h, w) -> the patch index, (p, q, C) -> its features
        out_shape=(batch, grid_h * grid_w, patch_h * patch_w * channels),
    )
    # END SOLUTION 2.5


def unpatchify(patches, patch_size, grid_size=None) -> Tensor:
    """(B, N, P*P*C) -> (B, C, H, W), the inverse of patchify.

    grid_size: (h, w) patches per column and row; default a square grid, h = w = sqrt(N).
    """
    _check_rank("patches", patches, 3, "(B, N, P*P*C)")
    patch_h, patch_w = size_pair("patch_size", patch_size)
    batch, count, features = patches.shape
    if grid_size is None:
        side = round(count**0.5)
        if side * side != count:
            raise ValueError(f"unpatchify: {count} patches do not form a square grid; pass grid_size=(h, w)")
        grid_size = (side, side)
    grid_h, grid_w = size_pair("grid_size", grid_size)
    if grid_h * grid_w != count:
        raise ValueError(f"unpatchify: grid_size {grid_h}x{grid_w} does not hold {count} patches")
    if features % (patch_h * patch_w):
        raise ValueError(f"unpatchify: {features} features per patch is not a multiple of {patch_h}*{patch_w}")
    channels = features // (patch_h * patch_w)
    return Rearrange.apply(
        patches,
        split_shape=(batch, grid_h, grid_w, patch_h, patch_w, channels),  # (B, h, w, p, q, C), patchify's order
        axes=(0, 5, 1, 3, 2, 4),  # (B, C, h, p, w, q): (h, p) -> pixel row, (w, q) -> pixel column
        out_shape=(batch, channels, grid_h * patch_h, grid_w * patch_w),
    )


def window_partition(x, window_size) -> Tensor:
    """(B, H, W, C) -> (B * nW, Mh, Mw, C): non-overlapping windows, nW = (H/Mh)(W/Mw)
    (Swin, Liu et al. 2021, Sec. 3.2: self-attention is computed within each window).

    Order: window index = (b * H/Mh + row of the window) * W/Mw + column of the window, i.e.
    image-major, then windows in row-major order, as Swin's attention mask expects.
    """
    _check_rank("x", x, 4, "(B, H, W, C)")
    window_h, window_w = size_pair("window_size", window_size)
    batch, height, width, channels = x.shape
    if height % window_h or width % window_w:
        raise ValueError(f"feature map {height}x{width} is not divisible by window_size {window_h}x{window_w}")
    # BEGIN SOLUTION 2.5 window_partition
    return Rearrange.apply(
        x,
        split_shape=(batch, height // window_h, window_h, width // window_w, window_w, channels),
        axes=(0, 1, 3, 2, 4, 5),  # (B, H/Mh, W/Mw, Mh, Mw, C): the first three merge into the window index
        out_shape=(-1, window_h, window_w, channels),
    )
    # END SOLUTION 2.5


def window_reverse(windows, window_size, height: int, width: int) -> Tensor:
    """(B * nW, Mh, Mw, C) -> (B, H, W, C), the inverse of window_partition."""
    _check_rank("windows", windows, 4, "(B * nW, Mh, Mw, C)")
    window_h, window_w = size_pair("window_size", window_size)
    if height % window_h or width % window_w:
        raise ValueError(f"feature map {height}x{width} is not divisible by window_size {window_h}x{window_w}")
    if windows.shape[1:3] != (window_h, window_w):
        raise ValueError(f"windows are {windows.shape[1]}x{windows.shape[2]} but window_size is {window_h}x{window_w}")
    per_image = (height // window_h) * (width // window_w)
    if windows.shape[0] % per_image:
        raise ValueError(
            f"{windows.shape[0]} windows is not a multiple of the {per_image} windows per {height}x{width} map"
        )
    batch, channels = windows.shape[0] // per_image, windows.shape[3]
    return Rearrange.apply(
        windows,
        split_shape=(batch, height // window_h, width // window_w, window_h, window_w, channels),
        axes=(0, 1, 3, 2, 4, 5),  # (B, H/Mh, Mh, W/Mw, Mw, C): (H/Mh, Mh) -> row, (W/Mw, Mw) -> column
        out_shape=(batch, height, width, channels),
    )


def patch_merge(x) -> Tensor:
    """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 neighbourhood concatenated along channels
    (Swin's patch merging, Liu et al. 2021, Sec. 3.1).

    Channel order as Swin: x0 = x[0::2, 0::2], x1 = x[1::2, 0::2], x2 = x[0::2, 1::2],
    x3 = x[1::2, 1::2] (row offset varies fastest), so output channel (2 * col offset + row
    offset) * C + c. Pretrained Swin weights depend on this order. The linear 4C -> 2C follows
    in the model.
    """
    _check_rank("x", x, 4, "(B, H, W, C)")
    batch, height, width, channels = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"patch_merge needs an even feature map, got {height}x{width}")
    # BEGIN SOLUTION 5.3 patch_merge
    return Rearrange.apply(
        x,
        split_shape=(batch, height // 2, 2, width // 2, 2, channels),  # (B, h, row offset, w, col offset, C)
        axes=(0, 1, 3, 4, 2, 5),  # (B, h, w, col offset, row offset, C): row offset fastest
        out_shape=(batch, height // 2, width // 2, 4 * channels),
    )
    # END SOLUTION 5.3
