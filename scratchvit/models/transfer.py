"""From a pre-trained MAE encoder to a ViT classifier, as the official MAE code does for its two
evaluation protocols (He et al. 2022, Sec. 4 and Appendix A.2-A.3; main_finetune.py,
main_linprobe.py and models_vit.py of facebookresearch/mae).

The official classifier is timm's VisionTransformer with the MAE encoder's weights loaded by name
(cls_token, pos_embed, patch_embed.proj, blocks.i, norm); the decoder and mask token are dropped.
Only the pooling differs between the recipes:

- fine-tuning (main_finetune.py, default `--global_pool`): the mean of the patch tokens (class
  token excluded) through a new LayerNorm `fc_norm`; the encoder's final `norm` is removed. That is
  timm's global_pool='avg' (fc_norm on, norm off). Every parameter trains, the position embedding
  included: it was a fixed sin-cos table during pre-training and is a learned Parameter from now
  on. The head is trunc_normal(std=2e-5), zero bias; the recipe uses drop_path_rate=0.1, layer-wise
  lr decay, mixup/cutmix and label smoothing, which belong to the training loop.
- linear probing (main_linprobe.py, default `--cls_token`): the class token after the encoder's
  final `norm`, i.e. timm's global_pool='token'. The head is trunc_normal(std=0.01), preceded by a
  BatchNorm1d(affine=False, eps=1e-6) on the features (Appendix A.2: normalising the pre-trained
  features helps the probe), and everything but the head is frozen: `prepare_linear_probe`.

When the classifier is built for another image size, the position embedding is resampled
bicubically as the official interpolate_pos_embed does (not antialiased, class-token row kept).
"""

from __future__ import annotations

from .. import nn
from ..autograd import Tensor
from .mae import MaskedAutoencoderViT
from .pos_embed import resample_abs_pos_embed
from .vit import VisionTransformer

__all__ = ["prepare_linear_probe", "vit_from_mae"]

_POOLS = ("token", "avg")


def vit_from_mae(
    mae: MaskedAutoencoderViT, num_classes: int, global_pool: str = "avg", head_init_std: float = 2e-5, **kwargs
) -> VisionTransformer:
    """A VisionTransformer with `mae`'s encoder weights, for fine-tuning or a linear probe.

    mae: a MaskedAutoencoderViT (pre-trained). num_classes: the size of the new head (0: none).
    global_pool: 'avg' (the fine-tuning recipe, the default: mean of the patch tokens, fc_norm, no
        final norm) or 'token' (the linear-probe recipe: the class token after the final norm).
    head_init_std: the head's trunc_normal std; 2e-5 in main_finetune.py (prepare_linear_probe
        re-draws it with main_linprobe.py's 0.01).
    kwargs: further timm keywords of VisionTransformer, e.g. drop_path_rate=0.1 (the fine-tuning
        recipe) or img_size (the position embedding is then resampled to the new grid).

    The architecture (patch size, channels, width, depth, heads, MLP ratio, qkv bias, LayerNorm eps)
    is the MAE encoder's. The copied arrays are the ViT's own: training it leaves `mae` as it was.
    images (B, C, H, W) -> logits (B, num_classes)
    """
    if not isinstance(mae, MaskedAutoencoderViT):
        raise TypeError(f"mae must be a MaskedAutoencoderViT, got {type(mae).__name__}")
    if global_pool not in _POOLS:
        raise ValueError(f"global_pool must be one of {_POOLS} (the official MAE recipes), got {global_pool!r}")
    fixed = dict(
        patch_size=mae.patch_embed.patch_size,
        in_chans=mae.patch_embed.in_chans,
        embed_dim=mae.cls_token.shape[-1],
        depth=len(mae.blocks),
        num_heads=mae.num_heads,
        mlp_ratio=mae.mlp_ratio,
        qkv_bias=True,
        class_token=True,
    )
    clashes = sorted(set(fixed) & set(kwargs))
    if clashes:
        raise ValueError(f"vit_from_mae: {', '.join(clashes)} come from the MAE encoder and cannot be overridden")
    kwargs.setdefault("img_size", mae.patch_embed.img_size)
    vit = VisionTransformer(num_classes=num_classes, global_pool=global_pool, **fixed, **kwargs)
    # the official models use LayerNorm eps 1e-6, as timm's ViT; an MAE built with another eps keeps it
    for module in vit.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = mae.norm.eps

    vit_keys = vit.state_dict()
    encoder = {name: array for name, array in mae.state_dict().items() if name in vit_keys}
    if encoder["pos_embed"].shape != vit_keys["pos_embed"].shape:
        encoder["pos_embed"] = resample_abs_pos_embed(
            Tensor(encoder["pos_embed"]),
            new_size=vit.patch_embed.grid_size,
            old_size=mae.patch_embed.grid_size,
            num_prefix_tokens=1,
            antialias=False,
        ).data
    missing, _ = vit.load_state_dict(encoder, strict=False)
    # as main_finetune.py / main_linprobe.py assert: only the new layers are left to initialise
    new_layers = {name for name in vit_keys if name.startswith(("head.", "fc_norm."))}
    if set(missing) != new_layers:
        raise ValueError(f"vit_from_mae: the MAE encoder lacks {sorted(set(missing) - new_layers)}")
    if num_classes > 0:
        nn.init.trunc_normal_(vit.head.weight, std=head_init_std)  # timm's cut at +-2 (absolute), as the official
        nn.init.zeros_(vit.head.bias)
    return vit


def prepare_linear_probe(vit: VisionTransformer, head_init_std: float = 0.01) -> VisionTransformer:
    """main_linprobe.py's set-up of a vit_from_mae(..., global_pool='token') classifier: the head
    re-drawn trunc_normal(std=0.01) (following MoCo v3) with zero bias, and put after a
    BatchNorm1d(affine=False, eps=1e-6) of the features as the official code does
    (`model.head = Sequential(BatchNorm1d(...), model.head)`, so the keys are head.0.running_mean,
    head.0.running_var, head.0.num_batches_tracked, head.1.weight, head.1.bias); every other
    parameter frozen (requires_grad=False), so only the linear classifier trains. Returns `vit`,
    changed in place."""
    if vit.num_classes == 0:
        raise ValueError("prepare_linear_probe: vit has no head (num_classes=0); build it with num_classes > 0")
    if not isinstance(vit.head, nn.Linear):
        raise ValueError(f"prepare_linear_probe: vit.head must be its Linear classifier, got {type(vit.head).__name__}")
    linear = vit.head
    nn.init.trunc_normal_(linear.weight, std=head_init_std)
    nn.init.zeros_(linear.bias)
    features_norm = nn.BatchNorm1d(linear.in_features, affine=False, eps=1e-6).to(linear.weight.device)
    vit.head = nn.Sequential([features_norm, linear])  # on the device the model is already on
    head = {id(parameter) for parameter in vit.head.parameters()}
    for parameter in vit.parameters():
        parameter.requires_grad = id(parameter) in head
    return vit
