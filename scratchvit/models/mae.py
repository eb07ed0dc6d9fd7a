"""Masked Autoencoders (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"),
equal to the official code (facebookresearch/mae, models_mae.py): the same constructor keywords,
state_dict keys, initialisation, masking, decoder and loss.

    imgs (B, C, H, W) -> patch tokens (B, L, D) + fixed sin-cos position embedding
      -> random masking: keep int(L * (1 - mask_ratio)) tokens per sample        (Sec. 3 "Masking")
      -> [cls] + visible tokens -> encoder blocks -> norm                        (Sec. 3 "MAE encoder")
      -> decoder_embed, mask tokens appended, unshuffled to the original order,
         + fixed sin-cos decoder position embedding -> decoder blocks -> norm
         -> decoder_pred: P*P*C pixel values per patch                           (Sec. 3 "MAE decoder")
      -> mean squared error on the removed patches only, optionally against
         per-patch normalised pixels (norm_pix_loss)                             (Sec. 3 "Reconstruction target")

Patches are flattened in the official order (row p, column q, channel c), so `pred` and a
checkpoint's decoder_pred carry over unchanged.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import backend, nn
from .. import ops as F
from ..autograd import Tensor
from ..backend import DEFAULT_DTYPE
from .arguments import check_non_negative_ints, check_positive_ints, check_positive_numbers
from .pos_embed import sincos_2d
from .registry import register_alias, register_model

__all__ = ["MaskedAutoencoderViT"]


class MaskedAutoencoderViT(nn.Module):
    """Masked autoencoder with a Vision Transformer backbone (He et al. 2022, Fig. 1).

    Keywords as the official MaskedAutoencoderViT. `norm_eps` stands for the official
    `norm_layer=partial(nn.LayerNorm, eps=norm_eps)`: the class default is nn.LayerNorm's 1e-5,
    and every registered model (mae_vit_*_dec512d8b) passes 1e-6, as the official ones do.
    `img_size` and `patch_size` may also be (height, width) pairs.
    """

    def __init__(
        self,
        img_size=224,
        patch_size=16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-5,
        norm_pix_loss: bool = False,
    ):
        super().__init__()
        check_positive_ints(
            "MaskedAutoencoderViT",
            in_chans=in_chans,
            embed_dim=embed_dim,
            num_heads=num_heads,
            decoder_embed_dim=decoder_embed_dim,
            decoder_num_heads=decoder_num_heads,
        )
        check_non_negative_ints("MaskedAutoencoderViT", depth=depth, decoder_depth=decoder_depth)
        check_positive_numbers("MaskedAutoencoderViT", mlp_ratio=mlp_ratio)
        # ---- encoder (Sec. 3 "MAE encoder": a ViT applied only on visible, unmasked patches)
        self.patch_embed = nn.PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(np.zeros((1, 1, embed_dim), DEFAULT_DTYPE))
        # fixed 2-D sin-cos embedding with a zero row for the class token, not trained
        self.pos_embed = nn.Parameter(np.zeros((1, num_patches + 1, embed_dim), DEFAULT_DTYPE), requires_grad=False)
        self.blocks = nn.ModuleList(
            nn.Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_eps=norm_eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

        # ---- decoder (Sec. 3 "MAE decoder": the full set of encoded visible tokens and mask tokens)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(np.zeros((1, 1, decoder_embed_dim), DEFAULT_DTYPE))
        self.decoder_pos_embed = nn.Parameter(
            np.zeros((1, num_patches + 1, decoder_embed_dim), DEFAULT_DTYPE), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            nn.Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_eps=norm_eps)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=norm_eps)
        patch_h, patch_w = self.patch_embed.patch_size
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_h * patch_w * in_chans)  # pixels of one patch

        self.norm_pix_loss = bool(norm_pix_loss)
        self.num_heads, self.mlp_ratio = num_heads, mlp_ratio  # for vit_from_mae, with embed_dim and depth above
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """The official initialisation: sin-cos position tables; the patch projection as a linear
        layer; tokens N(0, 0.02^2); every Linear xavier_uniform with zero bias; LayerNorm 1 and 0.
        The patch projection's bias keeps PyTorch's Conv2d default, as the official code leaves it."""
        grid_size = self.patch_embed.grid_size
        self.pos_embed.data = self.pos_embed.xp.asarray(
            sincos_2d(self.pos_embed.shape[-1], grid_size, class_token=True)[None]
        )
        self.decoder_pos_embed.data = self.decoder_pos_embed.xp.asarray(
            sincos_2d(self.decoder_pos_embed.shape[-1], grid_size, class_token=True)[None]
        )
        # (D, C, P, P) treated as the (D, C*P*P) matrix of a linear layer, "instead of nn.Conv2d"
        nn.init.xavier_uniform_(self.patch_embed.proj.weight)
        # normal(std=0.02): timm's trunc_normal_(std=.02) cut at +-2 never truncates in practice
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)  # following the official JAX ViT
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ---- pixels <-> patches -----------------------------------------------------------------
    def patchify(self, imgs) -> Tensor:
        """imgs: (B, C, H, W) -> (B, L, P*P*C), each patch flattened as (p, q, c)."""
        return F.patchify(imgs, self.patch_embed.patch_size)

    def unpatchify(self, x) -> Tensor:
        """x: (B, L, P*P*C) -> (B, C, H, W), the inverse of patchify."""
        return F.unpatchify(x, self.patch_embed.patch_size, grid_size=self.patch_embed.grid_size)

    # ---- masking ------------------------------------------------------------------------------
    def random_masking(self, x, mask_ratio: float, noise=None):
        """Per-sample random masking by per-sample shuffling: argsort of uniform noise (Sec. 3
        "Masking": "random sampling ... without replacement, following a uniform distribution").

        x: (B, L, D); noise: (B, L) or None (uniform [0, 1) from the device generator)
        -> x_masked: (B, K, D), K = int(L * (1 - mask_ratio)), the kept tokens in shuffled order;
           mask: (B, L), in the original token order, 0 = kept (visible), 1 = removed;
           ids_restore: (B, L) integers, the inverse of the shuffle.
        """
        x = x if isinstance(x, Tensor) else Tensor(x)
        batch, length, dim = x.shape
        mask_ratio = _check_mask_ratio(mask_ratio)
        len_keep = int(length * (1 - mask_ratio))
        xp = x.xp
        if noise is None:
            noise = backend.device_rng(x.device).random((batch, length), dtype=np.float32)
        else:
            noise = backend.to_device(noise.data if isinstance(noise, Tensor) else noise, x.device)
            if noise.shape != (batch, length):
                raise ValueError(f"noise must have shape (B, L) = ({batch}, {length}), got {tuple(noise.shape)}")

        # BEGIN SOLUTION 5.2 MaskedAutoencoderViT.random_masking
        # ids_shuffle[b, j] = original index of the token at shuffled position j. Ascending noise:
        # the len_keep tokens with the smallest noise come first, and are the ones kept.
        ids_shuffle = xp.argsort(noise, axis=1)
        # ids_restore[b, i] = shuffled position of original token i, the inverse permutation:
        # gathering a sequence in shuffled order with ids_restore puts it back in the original order.
        ids_restore = xp.argsort(ids_shuffle, axis=1)

        # original indices of the kept tokens, in shuffled order (the encoder sees them in that order)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = F.take_along_axis(x, xp.broadcast_to(ids_keep[:, :, None], (batch, len_keep, dim)), axis=1)

        # the binary mask in the original order, 0 = kept, 1 = removed: original token i is kept
        # exactly when its shuffled position ids_restore[b, i] is among the first len_keep
        mask = (ids_restore >= len_keep).astype(x.dtype)
        # END SOLUTION 5.2
        return x_masked, Tensor(mask), Tensor(ids_restore)

    # ---- encoder, decoder, loss ---------------------------------------------------------------
    def forward_encoder(self, imgs, mask_ratio: float, noise=None):
        """imgs: (B, C, H, W) -> latent: (B, 1 + K, D), the class token then the K visible tokens
        in shuffled order; mask: (B, L), 0 = kept, 1 = removed; ids_restore: (B, L)."""
        imgs, mask_ratio = self._check_imgs(imgs), _check_mask_ratio(mask_ratio)
        x = self.patch_embed(imgs)  # (B, L, D), patches in row-major order
        x = x + self.pos_embed[:, 1:, :]  # position embedding before masking, without the cls row
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)  # (B, K, D)

        cls_token = self.cls_token + self.pos_embed[:, :1, :]  # (1, 1, D)
        x = F.concatenate([cls_token.expand(x.shape[0], 1, x.shape[2]), x], axis=1)  # (B, 1 + K, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent, ids_restore) -> Tensor:
        """latent: (B, 1 + K, D), ids_restore: (B, L) -> pred: (B, L, P*P*C), no class token."""
        x = self.decoder_embed(latent)  # (B, 1 + K, Dd)
        ids_restore = backend.to_device(ids_restore.data if isinstance(ids_restore, Tensor) else ids_restore, x.device)
        batch, tokens, dim = x.shape
        length = ids_restore.shape[1]
        if ids_restore.shape[0] != batch or not 0 < tokens <= length + 1:
            raise ValueError(
                f"ids_restore of shape {tuple(ids_restore.shape)} does not fit latent of shape "
                f"{latent.shape}: expected (B, L) with B = {batch} and 1 + K <= 1 + L"
            )

        # the visible tokens (shuffled order) followed by L - K mask tokens: a full sequence in
        # shuffled order, which ids_restore gathers back into the original patch order
        mask_tokens = self.mask_token.expand(batch, length + 1 - tokens, dim)
        patch_tokens = F.concatenate([x[:, 1:, :], mask_tokens], axis=1)  # (B, L, Dd), shuffled order
        # unshuffle: out[b, i] = patch_tokens[b, ids_restore[b, i]], original token i from its shuffled place
        index = x.xp.broadcast_to(ids_restore[:, :, None], (batch, length, dim))
        patch_tokens = F.take_along_axis(patch_tokens, index, axis=1)
        x = F.concatenate([x[:, :1, :], patch_tokens], axis=1)  # class token first again: (B, 1 + L, Dd)

        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))  # (B, 1 + L, P*P*C)
        return x[:, 1:, :]  # the class token predicts nothing

    def reconstruction_target(self, imgs) -> Tensor:
        """imgs: (B, C, H, W) -> (B, L, P*P*C): the pixels of each patch, or with norm_pix_loss
        each patch normalised by its own mean and (unbiased, as torch's .var) variance + 1e-6
        (Sec. 3 "Reconstruction target": "normalized pixels ... improves representation quality")."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(axis=-1, keepdims=True)
            var = target.var(axis=-1, keepdims=True, correction=1)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward_loss(self, imgs, pred, mask) -> Tensor:
        """imgs: (B, C, H, W), pred: (B, L, P*P*C), mask: (B, L), 0 = kept, 1 = removed -> scalar:
        the mean squared error per patch, averaged over the removed patches only (Sec. 3); nan when
        nothing is removed (mask_ratio 0), as in the official code."""
        target = self.reconstruction_target(imgs)
        # BEGIN SOLUTION 5.2 MaskedAutoencoderViT.forward_loss
        loss = F.mse_loss(pred, target, reduction="none").mean(axis=-1)  # (B, L), mean loss per patch
        mask = mask if isinstance(mask, Tensor) else Tensor(mask)
        return (loss * mask).sum() / mask.sum()  # mean loss on removed patches
        # END SOLUTION 5.2

    def forward(self, imgs, mask_ratio: float = 0.75, noise=None):
        """imgs: (B, C, H, W) -> (loss: scalar, pred: (B, L, P*P*C), mask: (B, L), 1 = removed).

        noise: (B, L), the per-sample scores whose argsort decides the masking (smallest kept);
        None draws uniform noise from the device generator (seeded by sv.manual_seed).
        """
        imgs = self._check_imgs(imgs)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask

    def _check_imgs(self, imgs) -> Tensor:
        imgs = imgs if isinstance(imgs, Tensor) else Tensor(imgs)
        if imgs.ndim != 4:
            raise ValueError(f"imgs must be (B, C, H, W), got shape {tuple(imgs.shape)}")
        channels, height, width = imgs.shape[1:]
        in_chans = self.patch_embed.in_chans
        if channels != in_chans:
            raise ValueError(f"imgs have {channels} channels but the model was built with in_chans={in_chans}")
        patch_h, patch_w = self.patch_embed.patch_size
        if height % patch_h or width % patch_w:
            raise ValueError(f"imgs of size {height}x{width} are not divisible by patch_size {patch_h}x{patch_w}")
        if (height, width) != self.patch_embed.img_size:
            expected_h, expected_w = self.patch_embed.img_size
            raise ValueError(
                f"imgs of size {height}x{width} do not match img_size {expected_h}x{expected_w} "
                "(the fixed position embeddings are built for that grid)"
            )
        return imgs

    def extra_repr(self) -> str:
        return f"norm_pix_loss={self.norm_pix_loss}"


def _check_mask_ratio(mask_ratio) -> float:
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, numbers.Real):
        raise TypeError(f"mask_ratio must be a number in [0, 1), got {type(mask_ratio).__name__}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return float(mask_ratio)  # a Python float, so int(L * (1 - mask_ratio)) is the official count


# ---- the official configurations: ViT-B/L/H encoders, a 512-d 8-block decoder, LayerNorm eps 1e-6
def _create(config: dict, kwargs: dict) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(**{**config, **kwargs})


@register_model
def mae_vit_base_patch16_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    config = dict(
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4,
        norm_eps=1e-6,
    )
    return _create(config, kwargs)


@register_model
def mae_vit_large_patch16_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    config = dict(
        patch_size=16,
        embed_dim=1024,
        depth=24,
        num_heads=16,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4,
        norm_eps=1e-6,
    )
    return _create(config, kwargs)


@register_model
def mae_vit_huge_patch14_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    config = dict(
        patch_size=14,
        embed_dim=1280,
        depth=32,
        num_heads=16,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4,
        norm_eps=1e-6,
    )
    return _create(config, kwargs)


# the official recommended architectures (decoder: 512 dim, 8 blocks)
register_alias("mae_vit_base_patch16", "mae_vit_base_patch16_dec512d8b")
register_alias("mae_vit_large_patch16", "mae_vit_large_patch16_dec512d8b")
register_alias("mae_vit_huge_patch14", "mae_vit_huge_patch14_dec512d8b")
