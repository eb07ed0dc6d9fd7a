"""Swin Transformer (Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows"), with the module names, keywords and state_dict keys of timm's
`timm.models.swin_transformer.SwinTransformer` (timm >= 0.9), so its checkpoints load unchanged.

    patch partition + linear embedding (+ LayerNorm)         Sec. 3.1, Fig. 3
    stage i: [patch merging if i > 0] -> Swin blocks          Sec. 3.1
    block:  x = x + (S)W-MSA(LN(x));  x = x + MLP(LN(x))      Eq. 3
    W-MSA:  softmax(Q K^T / sqrt(d) + B [+ mask]) V            Sec. 3.2, Eq. 4
    final LayerNorm -> average pool -> linear classifier

Windows are a batch dimension: attention runs on (B * nW, heads, M*M, head_dim) at once. Even
blocks use regular windows, odd blocks windows shifted by M // 2 through a cyclic roll of the
feature map plus an additive mask of -100 between tokens that the roll brought together from
places that are not adjacent (Sec. 3.2, "Efficient batch computation for shifted configuration").
Where a stage's feature map is no larger than the window, the window is clipped to the map and
the shift disabled, exactly as timm's `SwinTransformerBlock._calc_window_shift`.

As timm, a map that does not divide into windows is padded at the bottom and right with zeros
for the attention and cropped after it, and an odd map is padded by one row / column before
patch merging; so any image size that is a multiple of the patch size works.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from .. import ops as F
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from ..ops.vision import size_pair
from .arguments import check_non_negative_ints, check_positive_ints, check_positive_numbers
from .registry import register_model

# Added to the attention scores of token pairs that the cyclic shift put into one window from
# places that are not adjacent (the reference code's value; exp(-100) ~ 4e-44 after softmax).
SHIFT_MASK_VALUE = -100.0


def stage_window_sizes(window_size, num_stages: int) -> tuple:
    """One (h, w) window per stage from an int, an (h, w) pair, or one int / pair per stage.

    As timm's resolve_stage_window_sizes, a sequence of two ints is always one (h, w) window.
    """
    if isinstance(window_size, int):
        window_size = (window_size,) * num_stages
    elif len(window_size) == 2 and all(isinstance(w, int) for w in window_size):
        window_size = (tuple(window_size),) * num_stages
    if len(window_size) != num_stages:
        raise ValueError(f"window_size needs one entry per stage ({num_stages}), got {window_size!r}")
    return tuple(size_pair("window_size", w) for w in window_size)


def clip_window_and_shift(resolution: tuple, window_size: tuple, shift_size: tuple) -> tuple:
    """(window, shift) actually used on a (h, w) feature map, per axis as timm's _calc_window_shift:
    where the map is no larger than the window, the window becomes the whole map and the shift 0."""
    window = tuple(side if side <= w else w for side, w in zip(resolution, window_size, strict=True))
    shift = tuple(0 if side <= w else s for side, w, s in zip(resolution, window, shift_size, strict=True))
    return window, shift


def relative_position_index(window_h: int, window_w: int) -> np.ndarray:
    """(N, N) int64, N = Mh * Mw: entry [i, j] is the row of the bias table for query token i and
    key token j of a window (Sec. 3.2, "Relative position bias").

    Tokens are numbered row-major inside the window, token t at (t // Mw, t % Mw). The offset
    (dy, dx) = position_i - position_j lies in [-(Mh-1), Mh-1] x [-(Mw-1), Mw-1]; shifted to start
    at 0, it addresses the ((2Mh-1) * (2Mw-1), heads) table row-major: (dy + Mh-1) * (2Mw-1) + dx + Mw-1.
    """
    # BEGIN SOLUTION 5.3 relative_position_index
    rows, columns = np.divmod(np.arange(window_h * window_w), window_w)
    offset_y = rows[:, None] - rows[None, :] + (window_h - 1)  # [i, j]: query i minus key j
    offset_x = columns[:, None] - columns[None, :] + (window_w - 1)
    return (offset_y * (2 * window_w - 1) + offset_x).astype(np.int64)
    # END SOLUTION 5.3


def shifted_window_regions(resolution: tuple, window_size: tuple, shift_size: tuple) -> np.ndarray:
    """(H, W) int64: the region label of every position of the cyclically shifted map (Sec. 3.2,
    Fig. 4), from which shifted_window_mask is built.

    Along each axis of length L the rolled map (shifted by -s) has three regions, as the reference:
    [0, L - M) never wraps, [L - M, L - s) is the last window's part that did not wrap, and
    [L - s, L) came round from the start of the map. A position's label is 3 * (row region) +
    (column region); two tokens of a window may attend to each other only if their labels are equal.
    """
    # BEGIN SOLUTION 5.3 shifted_window_regions
    height, width = resolution
    window_h, window_w = window_size

    def regions(length: int, window: int, shift: int) -> np.ndarray:
        # 0, 1 or 2 per position; with no shift along this axis one region covers everything
        positions = np.arange(length)
        if shift == 0:
            return np.zeros(length, dtype=np.int64)
        return (positions >= length - window).astype(np.int64) + (positions >= length - shift)

    return regions(height, window_h, shift_size[0])[:, None] * 3 + regions(width, window_w, shift_size[1])[None, :]
    # END SOLUTION 5.3


def shifted_window_mask(resolution: tuple, window_size: tuple, shift_size: tuple) -> np.ndarray:
    """(nW, N, N) float32 additive mask of the shifted windows (Sec. 3.2, Fig. 4): 0 between tokens
    of one sub-window, -100 between tokens that the cyclic roll brought into one window from
    non-adjacent places, i.e. tokens of different shifted_window_regions. Windows in
    window_partition's order (row of windows, then column).
    """
    height, width = resolution
    window_h, window_w = window_size
    # BEGIN SOLUTION 5.3 shifted_window_mask
    labels = shifted_window_regions(resolution, window_size, shift_size)
    # (H, W) -> (H/Mh, Mh, W/Mw, Mw) -> (H/Mh, W/Mw, Mh, Mw) -> (nW, N): window_partition's order
    windows = labels.reshape(height // window_h, window_h, width // window_w, window_w).transpose(0, 2, 1, 3)
    windows = windows.reshape(-1, window_h * window_w)
    different = windows[:, :, None] != windows[:, None, :]  # [w, i, j]: query i, key j of window w
    return np.where(different, SHIFT_MASK_VALUE, 0.0).astype(DEFAULT_DTYPE)
    # END SOLUTION 5.3


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias
    (Sec. 3.2, Eq. 4): Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + B) V, B gathered per token
    pair from a ((2Mh-1)(2Mw-1), heads) table."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size=7,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.window_size = size_pair("window_size", window_size)
        window_h, window_w = self.window_size
        self.window_area = window_h * window_w
        self.attn_drop = attn_drop
        table = nn.Parameter(np.zeros(((2 * window_h - 1) * (2 * window_w - 1), num_heads), dtype=DEFAULT_DTYPE))
        self.relative_position_bias_table = nn.init.trunc_normal_(table, std=0.02)
        # not in timm's state_dict: rebuilt from the window size
        self.register_buffer("relative_position_index", relative_position_index(window_h, window_w), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self):
        """The bias B of Eq. 4: (heads, N, N), [h, i, j] for query i and key j in head h."""
        # BEGIN SOLUTION 5.3 WindowAttention.relative_position_bias
        bias = self.relative_position_bias_table[self.relative_position_index]  # (N, N, heads)
        return bias.permute(2, 0, 1)
        # END SOLUTION 5.3

    def forward(self, x, mask=None):
        """x: (B * nW, N, C) windows of N = Mh * Mw tokens -> (B * nW, N, C).

        mask: None, or the (nW, N, N) additive shifted-window mask; the windows of x must then be
        ordered image by image, nW windows each (window_partition's order).
        """
        windows, tokens, channels = x.shape
        if tokens != self.window_area or channels != self.dim:
            raise ValueError(
                f"WindowAttention expects (B * nW, {self.window_area}, {self.dim}) windows, got shape {tuple(x.shape)}"
            )
        if isinstance(mask, Tensor):
            mask = mask.data
        if mask is not None and windows % mask.shape[0]:
            raise ValueError(
                f"WindowAttention: {windows} windows are not a whole number of images "
                f"of {mask.shape[0]} windows (the mask's first dim)"
            )
        # the bias (heads, N, N) is added in every window; window w of each image gets mask[w]
        # (windows are image-major, window_partition's order)
        x = F.multi_head_self_attention(
            self.qkv(x),
            self.num_heads,
            bias=self.relative_position_bias(),
            mask=None if mask is None else mask.astype(x.dtype, copy=False),
            dropout_p=self.attn_drop,
            training=self.training,
        )
        return self.proj_drop(self.proj(x))

    def own_macs(self, inputs, output) -> int:
        """Multiply-adds of the two attention products, Q K^T and A V, that no Linear counts:
        2 * windows * heads * N * N * head_dim. inputs: forward's positional arguments, x first."""
        windows, tokens = inputs[0].shape[0], inputs[0].shape[1]
        return 2 * windows * self.num_heads * tokens * tokens * self.head_dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinTransformerBlock(nn.Module):
    """One Swin block on a (B, H, W, C) map (Sec. 3.1, Eq. 3):

        x = x + DropPath(unshift(window_reverse(W-MSA(window_partition(shift(LN(x)))))))
        x = x + DropPath(MLP(LN(x)))

    shift_size 0 gives W-MSA, a positive shift SW-MSA; window and shift are clipped to the map.
    A map that does not divide into windows is padded at the bottom / right with zeros after the
    shift, as timm does (the padded tokens take part in attention; the mask is timm's, built on
    the padded map), and cropped back after the windows are merged.
    """

    def __init__(
        self,
        dim: int,
        input_resolution,
        num_heads: int = 4,
        window_size=7,
        shift_size=0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.dim = dim
        self.input_resolution = size_pair("input_resolution", input_resolution)
        shift_size = (shift_size, shift_size) if isinstance(shift_size, int) else tuple(shift_size)
        self.window_size, self.shift_size = clip_window_and_shift(
            self.input_resolution, size_pair("window_size", window_size), shift_size
        )
        # the map padded up to whole windows: (H + pad_h, W + pad_w)
        self.padded_resolution = tuple(
            -(-side // w) * w for side, w in zip(self.input_resolution, self.window_size, strict=True)
        )
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, num_heads, self.window_size, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.drop_path1 = nn.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = nn.DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if any(self.shift_size):  # not in timm's state_dict: rebuilt from the sizes
            mask = shifted_window_mask(self.padded_resolution, self.window_size, self.shift_size)
            self.register_buffer("attn_mask", mask, persistent=False)
        else:
            self.attn_mask = None

    def _window_attention(self, x):
        """x: (B, H, W, C) -> (B, H, W, C), (S)W-MSA over the whole map."""
        height, width, channels = x.shape[1:]
        padded_h, padded_w = self.padded_resolution
        shifted = any(self.shift_size)
        if shifted:  # cyclic shift towards the top left (Sec. 3.2, Fig. 4)
            x = F.roll(x, (-self.shift_size[0], -self.shift_size[1]), axes=(1, 2))
        if (padded_h, padded_w) != (height, width):
            x = F.pad(x, ((0, 0), (0, padded_h - height), (0, padded_w - width), (0, 0)))
        windows = F.window_partition(x, self.window_size)  # (B*nW, Mh, Mw, C), image-major
        windows = self.attn(windows.reshape(-1, self.attn.window_area, channels), mask=self.attn_mask)
        windows = windows.reshape(-1, self.window_size[0], self.window_size[1], channels)
        x = F.window_reverse(windows, self.window_size, padded_h, padded_w)
        if (padded_h, padded_w) != (height, width):
            x = x[:, :height, :width]
        if shifted:  # and back
            x = F.roll(x, self.shift_size, axes=(1, 2))
        return x

    def forward(self, x):
        """x: (B, H, W, C) -> (B, H, W, C)"""
        if x.ndim != 4 or tuple(x.shape[1:]) != (*self.input_resolution, self.dim):
            height, width = self.input_resolution
            raise ValueError(
                f"SwinTransformerBlock expects (B, {height}, {width}, {self.dim}), got shape {tuple(x.shape)}"
            )
        x = x + self.drop_path1(self._window_attention(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, input_resolution={self.input_resolution}, window_size={self.window_size}, "
            f"shift_size={self.shift_size}"
        )


class PatchMerging(nn.Module):
    """Halve the map, double the channels (Sec. 3.1, "patch merging"): each 2x2 neighbourhood
    concatenated to 4C (row offset fastest, see F.patch_merge), LayerNorm, linear 4C -> 2C, no bias.
    An odd side is first padded with one row / column of zeros at the bottom / right, as timm."""

    def __init__(self, dim: int, out_dim: int | None = None):
        super().__init__()
        self.dim, self.out_dim = dim, out_dim or 2 * dim
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x):
        """x: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), out_dim)"""
        height, width = x.shape[1], x.shape[2]
        if height % 2 or width % 2:
            x = F.pad(x, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))
        return self.reduction(self.norm(F.patch_merge(x)))


class SwinTransformerStage(nn.Module):
    """One stage: patch merging first when downsample (timm >= 0.9: `layers.i.downsample`, i >= 1),
    then `depth` blocks alternating regular (even j) and shifted (odd j) windows."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        input_resolution,
        depth: int,
        downsample: bool = True,
        num_heads: int = 4,
        window_size=7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path=0.0,
    ):
        super().__init__()
        if not downsample and dim != out_dim:
            raise ValueError(f"SwinTransformerStage: without downsample dim {dim} must equal out_dim {out_dim}")
        self.input_resolution = size_pair("input_resolution", input_resolution)
        if downsample:
            self.output_resolution = tuple((side + 1) // 2 for side in self.input_resolution)
            self.downsample = PatchMerging(dim, out_dim)
        else:
            self.output_resolution = self.input_resolution
            self.downsample = nn.Identity()
        window_size = size_pair("window_size", window_size)
        shift_size = (window_size[0] // 2, window_size[1] // 2)
        drop_paths = list(drop_path) if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.Sequential(
            SwinTransformerBlock(
                out_dim,
                self.output_resolution,
                num_heads,
                window_size,
                shift_size=0 if j % 2 == 0 else shift_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop,
                attn_drop=attn_drop,
                drop_path=drop_paths[j],
            )
            for j in range(depth)
        )

    def forward(self, x):
        """x: (B, H, W, dim) -> (B, H', W', out_dim), H' = ceil(H/2) with downsample, else H"""
        return self.blocks(self.downsample(x))


class ClassifierHead(nn.Module):
    """Global average pool over the map (global_pool 'avg'; '' keeps the map), dropout, linear.
    timm's key: `head.fc`. x: (B, H, W, C) -> (B, num_classes), or (B, H, W, num_classes) without
    pooling; num_classes 0 leaves out the linear layer."""

    def __init__(self, in_features: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        if pool_type not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {pool_type!r}")
        self.pool_type = pool_type
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        if self.pool_type == "avg":
            x = x.mean(axis=(1, 2))
        return self.fc(self.drop(x))


class SwinTransformer(nn.Module):
    """Swin Transformer (Liu et al. 2021) as timm's SwinTransformer.

    images (B, in_chans, H, W) -> logits (B, num_classes); with global_pool '' the last stage's map
    is kept, (B, H', W', num_classes), H' = H / P halved (rounding up) at each of the S - 1 merges.
    num_classes 0: the pooled features (B, num_features).

    Keywords are timm's: img_size (int or (H, W)), patch_size, in_chans, num_classes, global_pool
    ('avg' | ''), embed_dim (stage 0; stage i has embed_dim * 2^i), depths and num_heads (one per
    stage), window_size (int, (h, w), or one per stage), mlp_ratio, qkv_bias, drop_rate (before the
    classifier), proj_drop_rate (after the attention projection and in the MLP), attn_drop_rate,
    drop_path_rate (stochastic depth rising linearly from 0 over all blocks to this rate).
    """

    def __init__(
        self,
        img_size=224,
        patch_size=4,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        embed_dim: int = 96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
    ):
        super().__init__()
        for name, per_stage in (("depths", depths), ("num_heads", num_heads)):
            if not isinstance(per_stage, (tuple, list)):
                raise ValueError(f"SwinTransformer: {name} must be a sequence, one per stage, got {per_stage!r}")
        depths, num_heads = tuple(depths), tuple(num_heads)
        check_positive_ints("SwinTransformer", in_chans=in_chans, embed_dim=embed_dim)
        check_positive_ints("SwinTransformer", **{f"num_heads[{i}]": heads for i, heads in enumerate(num_heads)})
        check_non_negative_ints("SwinTransformer", num_classes=num_classes)
        check_non_negative_ints("SwinTransformer", **{f"depths[{i}]": depth for i, depth in enumerate(depths)})
        check_positive_numbers("SwinTransformer", mlp_ratio=mlp_ratio)
        if len(num_heads) != len(depths):
            raise ValueError(
                f"num_heads needs one entry per stage: depths {depths} has {len(depths)} stages, "
                f"num_heads {num_heads} has {len(num_heads)}"
            )
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.num_classes, self.global_pool, self.in_chans = num_classes, global_pool, in_chans
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.num_features = embed_dim * 2 ** (self.num_layers - 1)

        # Sec. 3.1: 4x4 patches, each linearly embedded to C channels (and normalised, patch_norm)
        self.patch_embed = nn.PatchEmbed(
            img_size, patch_size, in_chans, embed_dim, norm_layer=nn.LayerNorm, flatten=False
        )
        windows = stage_window_sizes(window_size, self.num_layers)

        # stochastic depth rising linearly over all blocks, split by stage (timm's drop path rule)
        rates = np.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        starts = np.cumsum((0,) + depths).tolist()
        resolution = self.patch_embed.grid_size
        stages, in_dim = [], embed_dim
        for i in range(self.num_layers):
            out_dim = embed_dim * 2**i
            stage = SwinTransformerStage(
                in_dim,
                out_dim,
                resolution,
                depths[i],
                downsample=i > 0,
                num_heads=num_heads[i],
                window_size=windows[i],
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rates[starts[i] : starts[i + 1]],
            )
            stages.append(stage)
            resolution, in_dim = stage.output_resolution, out_dim
        self.layers = nn.Sequential(stages)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's init: every Linear weight trunc_normal(std .02), its bias 0; the bias tables were
        drawn the same way; the patch projection keeps PyTorch's conv default, LayerNorm 1 and 0."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def no_weight_decay(self) -> set:
        """Parameters the optimizer must not decay (timm's rule): every relative position bias table."""
        return {name for name, _ in self.named_parameters() if "relative_position_bias_table" in name}

    def forward_features(self, images):
        """images: (B, C, H, W) -> (B, H', W', num_features), the normalised last-stage map."""
        x = self.patch_embed(images)  # (B, H/P, W/P, embed_dim); checks channels and image size
        return self.norm(self.layers(x))

    def forward_head(self, x):
        """(B, H', W', num_features) -> (B, num_classes)"""
        return self.head(x)

    def forward(self, images):
        """images: (B, in_chans, H, W) -> (B, num_classes)"""
        return self.forward_head(self.forward_features(images))


# Table 1 of the paper (timm's configurations); C is the channel number of stage 0
_SWIN_T = dict(patch_size=4, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
_SWIN_S = dict(patch_size=4, embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
_SWIN_B = dict(patch_size=4, embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
_SWIN_L = dict(patch_size=4, embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))


def _create(defaults: dict, kwargs: dict) -> SwinTransformer:
    return SwinTransformer(**{**defaults, **kwargs})


@register_model
def swin_tiny_patch4_window7_224(**kwargs) -> SwinTransformer:
    """Swin-T, 224 x 224, 7 x 7 windows (28.3 M parameters)."""
    return _create(dict(_SWIN_T, img_size=224, window_size=7), kwargs)


@register_model
def swin_small_patch4_window7_224(**kwargs) -> SwinTransformer:
    """Swin-S, 224 x 224, 7 x 7 windows (49.6 M parameters)."""
    return _create(dict(_SWIN_S, img_size=224, window_size=7), kwargs)


@register_model
def swin_base_patch4_window7_224(**kwargs) -> SwinTransformer:
    """Swin-B, 224 x 224, 7 x 7 windows (87.8 M parameters)."""
    return _create(dict(_SWIN_B, img_size=224, window_size=7), kwargs)


@register_model
def swin_base_patch4_window12_384(**kwargs) -> SwinTransformer:
    """Swin-B, 384 x 384, 12 x 12 windows (87.9 M parameters)."""
    return _create(dict(_SWIN_B, img_size=384, window_size=12), kwargs)


@register_model
def swin_large_patch4_window7_224(**kwargs) -> SwinTransformer:
    """Swin-L, 224 x 224, 7 x 7 windows (196.5 M parameters)."""
    return _create(dict(_SWIN_L, img_size=224, window_size=7), kwargs)


@register_model
def swin_large_patch4_window12_384(**kwargs) -> SwinTransformer:
    """Swin-L, 384 x 384, 12 x 12 windows (196.7 M parameters)."""
    return _create(dict(_SWIN_L, img_size=384, window_size=12), kwargs)
