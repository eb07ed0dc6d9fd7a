"""Layers of the Vision Transformer family, with timm's names and parameter keys:
Linear, LayerNorm, GELU, Dropout, DropPath, Identity, LayerScale, Mlp, Attention, Block, PatchEmbed.

Block is ViT's pre-norm encoder block (ViT Sec. 3.1, Eq. 2-3):
    x = x + MSA(LN(x));   x = x + MLP(LN(x))
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops as F
from ..backend import DEFAULT_DTYPE
from ..ops.vision import size_pair
from . import init
from .module import Module, Parameter


def _empty(*shape) -> Parameter:
    return Parameter(np.zeros(shape, dtype=DEFAULT_DTYPE))


class Identity(Module):
    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features). Initialised as PyTorch's nn.Linear:
    uniform(-1/sqrt(in), 1/sqrt(in)); the models re-initialise as their papers do."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = init.uniform_(_empty(out_features, in_features), -bound, bound)
        self.bias = init.uniform_(_empty(out_features), -bound, bound) if bias else None

    def forward(self, x):
        """x: (..., in_features) -> (..., out_features)"""
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LayerNorm(Module):
    """Layer norm over the last axis; eps 1e-6 in timm's ViT, 1e-5 (PyTorch's default) in Swin and MAE."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = init.ones_(_empty(normalized_shape)) if elementwise_affine else None
        self.bias = init.zeros_(_empty(normalized_shape)) if elementwise_affine else None

    def forward(self, x):
        """x: (..., C) -> (..., C)"""
        if x.shape[-1] != self.normalized_shape:
            raise ValueError(f"LayerNorm({self.normalized_shape}) got input with last dim {x.shape[-1]}")
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class GELU(Module):
    def forward(self, x):
        return F.gelu(x)


class Dropout(Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropPath(Module):
    """Stochastic depth per sample on a residual branch (Huang et al. 2016)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return F.drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerScale(Module):
    """x * gamma, a learned per-channel scale of a residual branch (Touvron et al. 2021, CaiT)."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.gamma = init.constant_(_empty(dim), init_values)

    def forward(self, x):
        return x * self.gamma


class Mlp(Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (ViT Sec. 3.1: "two layers with a GELU")."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
        drop: float = 0.0,
    ):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = Linear(in_features, hidden_features, bias=bias)
        self.act = GELU()
        self.drop1 = Dropout(drop)
        self.fc2 = Linear(hidden_features, out_features, bias=bias)
        self.drop2 = Dropout(drop)

    def forward(self, x):
        """x: (..., in_features) -> (..., out_features)"""
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Attention(Module):
    """Multi-head self-attention (ViT Appendix A, Eq. 5-8): one qkv projection, heads attend in
    parallel as batched GEMMs, then the output projection."""

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.proj_drop = Dropout(proj_drop)

    def forward(self, x):
        """x: (B, N, C) -> (B, N, C)"""
        x = F.multi_head_self_attention(self.qkv(x), self.num_heads, dropout_p=self.attn_drop, training=self.training)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}"


class Block(Module):
    """Pre-norm transformer block (ViT Eq. 2-3), timm's keys: norm1 attn ls1 norm2 mlp ls2."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else Identity()
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else Identity()

    def forward(self, x):
        """x: (B, N, C) -> (B, N, C)"""
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class PatchProjection(Module):
    """The linear map of every P x P patch to D dims (ViT Eq. 1), stored as timm's convolution
    weight (D, C, P, P) so checkpoints carry over; computed as patchify + one GEMM."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: tuple, bias: bool = True):
        super().__init__()
        self.patch_size = patch_size
        fan_in = in_chans * patch_size[0] * patch_size[1]
        bound = 1 / math.sqrt(fan_in)  # PyTorch's Conv2d default
        self.weight = init.uniform_(_empty(embed_dim, in_chans, *patch_size), -bound, bound)
        self.bias = init.uniform_(_empty(embed_dim), -bound, bound) if bias else None

    def forward(self, images):
        """images: (B, C, H, W) -> (B, N, D), patches in row-major order"""
        patches = F.patchify(images, self.patch_size)  # (B, N, P*P*C), each patch as (p, q, c)
        embed_dim = self.weight.shape[0]
        # the conv weight (D, C, P, P) reordered to (D, P, P, C) to match the patch layout
        weight = self.weight.permute(0, 2, 3, 1).reshape(embed_dim, -1)
        return F.linear(patches, weight, self.bias)


class PatchEmbed(Module):
    """Image to patch tokens (ViT Sec. 3.1; Swin's "patch partition + linear embedding")."""

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm_layer=None,
        flatten: bool = True,
        bias: bool = True,
        strict_img_size: bool = True,
    ):
        super().__init__()
        self.img_size, self.patch_size = size_pair("img_size", img_size), size_pair("patch_size", patch_size)
        for side, patch in zip(self.img_size, self.patch_size, strict=True):
            if side % patch:
                raise ValueError(f"img_size {side} is not divisible by patch_size {patch}")
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans, self.flatten, self.strict_img_size = in_chans, flatten, strict_img_size
        self.proj = PatchProjection(in_chans, embed_dim, self.patch_size, bias=bias)
        self.norm = norm_layer(embed_dim) if norm_layer else Identity()

    def forward(self, images):
        """images: (B, C, H, W) -> (B, N, D) if flatten else (B, H/P, W/P, D)"""
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        if images.dtype.kind != "f":
            raise TypeError(
                f"images must be floating point, got dtype {images.dtype}: convert pixels first, e.g. "
                "scratchvit.data.to_float_images(pixels, maximum=255) for float32 in [0, 1]"
            )
        batch, channels, height, width = images.shape
        if channels != self.in_chans:
            raise ValueError(f"images have {channels} channels but the model expects in_chans={self.in_chans}")
        if self.strict_img_size and (height, width) != self.img_size:
            raise ValueError(
                f"image size {height}x{width} does not match the model's img_size {self.img_size[0]}x{self.img_size[1]}"
            )
        if height % self.patch_size[0] or width % self.patch_size[1]:
            raise ValueError(
                f"image size {height}x{width} is not divisible by patch_size {self.patch_size[0]}x{self.patch_size[1]}"
            )
        tokens = self.norm(self.proj(images))
        if self.flatten:
            return tokens
        return tokens.reshape(batch, height // self.patch_size[0], width // self.patch_size[1], -1)
