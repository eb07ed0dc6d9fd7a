"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), equal to timm's
`timm.models.vision_transformer.VisionTransformer` (timm 1.0.31): the same constructor keywords,
the same state_dict keys and shapes, the same forward in float32, the same default initialisation.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos          (ViT Eq. 1)
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                        (ViT Eq. 2)
    z_l = MLP(LN(z'_l)) + z'_l                               (ViT Eq. 3)
    y = head(LN(z_L^0))                                      (ViT Eq. 4)

The named configurations (vit_tiny_patch16_224, ...) are registered with the model registry, so
`sv.create_model("vit_base_patch16_224", num_classes=10)` builds one with keyword overrides.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from .. import ops as F
from ..backend import DEFAULT_DTYPE
from .arguments import check_non_negative_ints, check_positive_ints, check_positive_numbers
from .pos_embed import resample_abs_pos_embed
from .registry import register_model

_GLOBAL_POOLS = ("", "token", "avg", "max", "avgmax")


class VisionTransformer(nn.Module):
    """ViT: patch embedding, class token, learned position embedding, pre-norm blocks, a head.

    Keywords and their meaning are timm's:
        img_size: int or (H, W), the image size the position embedding is made for.
        patch_size: int or (P, P); in_chans: image channels C; num_classes: 0 gives no head (Identity).
        global_pool: 'token' (the class token), 'avg' (mean of the patch tokens), 'max', 'avgmax',
            or '' (no pooling: forward returns every token through the head).
        class_token: prepend a learned class token. pos_embed: 'learn' or 'none' ('' as 'none').
        no_embed_class: the position embedding covers the patches only and is added before the
            class token is prepended (DeiT-3, big_vision).
        embed_dim D, depth, num_heads, mlp_ratio, qkv_bias: the encoder's sizes.
        init_values: LayerScale's initial gamma (Touvron et al. 2021, CaiT); None for no LayerScale.
        fc_norm: put the final LayerNorm after pooling instead of before it; None is timm's rule,
            on when global_pool is 'avg', 'max' or 'avgmax'.
        dynamic_img_size: accept any image size divisible by the patch size, resampling the
            position embedding bicubically (antialiased, as timm) from its grid to the input's.
        drop_rate (head dropout), pos_drop_rate, proj_drop_rate, attn_drop_rate, drop_path_rate
            (stochastic depth, rising linearly from 0 at the first block to this at the last).

    images: (B, C, H, W) -> logits (B, num_classes); with global_pool '' (B, N, num_classes).
    """

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_values: float | None = None,
        class_token: bool = True,
        pos_embed: str = "learn",
        no_embed_class: bool = False,
        fc_norm: bool | None = None,
        dynamic_img_size: bool = False,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if global_pool not in _GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {_GLOBAL_POOLS}, got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool 'token' needs class_token=True (there is no class token to pool)")
        if pos_embed not in ("", "none", "learn"):
            raise ValueError(f"pos_embed must be 'learn' or 'none', got {pos_embed!r}")
        check_positive_ints("VisionTransformer", in_chans=in_chans, embed_dim=embed_dim, num_heads=num_heads)
        check_non_negative_ints("VisionTransformer", depth=depth, num_classes=num_classes)
        check_positive_numbers("VisionTransformer", mlp_ratio=mlp_ratio)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        use_fc_norm = global_pool in ("avg", "max", "avgmax") if fc_norm is None else fc_norm

        self.num_classes, self.in_chans, self.global_pool = num_classes, in_chans, global_pool
        self.num_features = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.has_class_token, self.no_embed_class = class_token, no_embed_class
        self.dynamic_img_size = dynamic_img_size

        # ViT Eq. 1: each P x P patch mapped linearly to D dims
        self.patch_embed = nn.PatchEmbed(
            img_size, patch_size, in_chans, embed_dim, strict_img_size=not dynamic_img_size
        )
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(np.zeros((1, 1, embed_dim), DEFAULT_DTYPE)) if class_token else None
        if pos_embed == "learn":
            embed_len = num_patches if no_embed_class else num_patches + self.num_prefix_tokens
            self.pos_embed = nn.Parameter(np.zeros((1, embed_len, embed_dim), DEFAULT_DTYPE))
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(pos_drop_rate)

        # stochastic depth decay rule: rates rise linearly over the blocks (Huang et al. 2016)
        drop_path_rates = np.linspace(0.0, drop_path_rate, depth)
        self.blocks = nn.Sequential(
            nn.Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=float(rate),
                init_values=init_values,
                norm_eps=1e-6,
            )
            for rate in drop_path_rates
        )
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's default ('') scheme: position embedding trunc_normal(std .02), class token
        normal(std 1e-6), every Linear trunc_normal(std .02) with zero bias; LayerNorm ones/zeros
        and the patch projection as PyTorch's Conv2d default, as they were built."""
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _pos_embed(self, tokens, grid_size):
        """tokens: (B, N, D) patch tokens of an h x w grid -> (B, prefix + N, D) with the class
        token prepended and the position embedding added (ViT Eq. 1)."""
        # BEGIN SOLUTION 5.1 VisionTransformer._pos_embed
        batch = tokens.shape[0]
        prefix = [] if self.cls_token is None else [self.cls_token.expand(batch, 1, self.embed_dim)]
        if self.pos_embed is None:
            return self.pos_drop(F.concatenate(prefix + [tokens], axis=1) if prefix else tokens)
        pos_embed = self.pos_embed
        if self.dynamic_img_size:
            # ViT Sec. 3.2: 2-D interpolation of the learned embedding to the input's grid
            pos_embed = resample_abs_pos_embed(
                pos_embed,
                new_size=grid_size,
                old_size=self.patch_embed.grid_size,
                num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
                antialias=True,
            )
        if self.no_embed_class:  # the embedding covers the patches only: add, then prepend
            tokens = tokens + pos_embed
            if prefix:
                tokens = F.concatenate(prefix + [tokens], axis=1)
        else:  # the embedding has a row for the class token: prepend, then add
            if prefix:
                tokens = F.concatenate(prefix + [tokens], axis=1)
            tokens = tokens + pos_embed
        return self.pos_drop(tokens)
        # END SOLUTION 5.1

    def no_weight_decay(self) -> set:
        """Parameters the optimizer must not decay (timm's rule): the position embedding and class token."""
        return {"pos_embed", "cls_token"}

    def forward_features(self, images):
        """images: (B, C, H, W) -> tokens (B, prefix + N, D) after the blocks and the final norm"""
        tokens = self.patch_embed(images)
        patch_h, patch_w = self.patch_embed.patch_size
        grid_size = (images.shape[2] // patch_h, images.shape[3] // patch_w)
        tokens = self._pos_embed(tokens, grid_size)
        tokens = self.blocks(tokens)
        return self.norm(tokens)

    def pool(self, tokens):
        """tokens: (B, prefix + N, D) -> (B, D) by global_pool ('' keeps (B, prefix + N, D))"""
        # BEGIN SOLUTION 5.1 VisionTransformer.pool
        if self.global_pool == "token":
            return tokens[:, 0]  # the class token (ViT Eq. 4)
        if self.global_pool == "":
            return tokens
        patches = tokens[:, self.num_prefix_tokens :]
        if self.global_pool == "avg":
            return patches.mean(axis=1)
        if self.global_pool == "max":
            return patches.max(axis=1)
        return 0.5 * (patches.max(axis=1) + patches.mean(axis=1))  # 'avgmax'
        # END SOLUTION 5.1

    def forward_head(self, tokens, pre_logits: bool = False):
        """tokens: (B, prefix + N, D) -> logits (B, num_classes), or the pooled (B, D) if pre_logits"""
        pooled = self.head_drop(self.fc_norm(self.pool(tokens)))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, images):
        """images: (B, C, H, W) -> logits (B, num_classes)"""
        return self.forward_head(self.forward_features(images))


def _create(defaults: dict, overrides: dict) -> VisionTransformer:
    return VisionTransformer(**{**defaults, **overrides})


# timm's named configurations (its vision_transformer.py): ViT-Ti/S from DeiT (Touvron et al. 2021),
# ViT-B/L from the ViT paper's Table 1; *_384 are the same models made for 384 x 384 images.
_TINY = dict(patch_size=16, embed_dim=192, depth=12, num_heads=3)
_SMALL = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6)
_BASE = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
_LARGE = dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16)


@register_model
def vit_tiny_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-Ti/16, 224 x 224 (5.7 M parameters)."""
    return _create(dict(_TINY, img_size=224), kwargs)


@register_model
def vit_tiny_patch16_384(**kwargs) -> VisionTransformer:
    """ViT-Ti/16, 384 x 384."""
    return _create(dict(_TINY, img_size=384), kwargs)


@register_model
def vit_small_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-S/16, 224 x 224 (22.1 M parameters)."""
    return _create(dict(_SMALL, img_size=224), kwargs)


@register_model
def vit_small_patch16_384(**kwargs) -> VisionTransformer:
    """ViT-S/16, 384 x 384."""
    return _create(dict(_SMALL, img_size=384), kwargs)


@register_model
def vit_base_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-B/16, 224 x 224 (86.6 M parameters)."""
    return _create(dict(_BASE, img_size=224), kwargs)


@register_model
def vit_base_patch16_384(**kwargs) -> VisionTransformer:
    """ViT-B/16, 384 x 384."""
    return _create(dict(_BASE, img_size=384), kwargs)


@register_model
def vit_base_patch32_224(**kwargs) -> VisionTransformer:
    """ViT-B/32, 224 x 224 (88.2 M parameters)."""
    return _create(dict(_BASE, patch_size=32, img_size=224), kwargs)


@register_model
def vit_large_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-L/16, 224 x 224 (304.3 M parameters)."""
    return _create(dict(_LARGE, img_size=224), kwargs)


@register_model
def vit_large_patch16_384(**kwargs) -> VisionTransformer:
    """ViT-L/16, 384 x 384."""
    return _create(dict(_LARGE, img_size=384), kwargs)
