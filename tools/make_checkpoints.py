#!/usr/bin/env python
"""Make the foreign-checkpoint fixtures under tests/io/fixtures/ with torch, timm and the official MAE code.

DEV-ONLY: this script imports torch and timm; scratchvit and its tests only read what it writes.

    /work/torchenv/bin/python tools/make_checkpoints.py --mae-src /work/mae-src

It builds tiny timm ViT / Swin models, an official MAE and an MAE fine-tuned classifier (the layout of
facebookresearch/mae models_vit.py), overwrites their weights with the documented random values of
make_golden.py (so every LayerNorm gain, bias and token matters), and saves them the ways they are
published:

- torch.save zip files (.pth): a plain state_dict, {'state_dict': ..., 'state_dict_ema': ...} (timm's
  train checkpoints), {'model': ...} (official MAE / Swin), float16 and bfloat16 tensors, and tensors
  that are strided / offset views of larger storages or share one storage;
- safetensors files as timm writes them (safetensors.torch.save_file, metadata {"format": "pt"}),
  float32, float16 and bfloat16;
- the official Swin layout (microsoft/Swin-Transformer): patch merging at the END of stage i
  (`layers.i.downsample`), `head.weight`, and the persistent relative_position_index / attn_mask buffers;
- JAX `.npz` files: the original ViT / AugReg layout (`Transformer/encoderblock_{i}/...`, with a
  `pre_logits` layer) and the big_vision layout (`params/` prefix, top-level `pos_embedding`, one
  scanned `Transformer/encoderblock` with the depth as leading axis), written from a timm model by the
  inverse of timm's _load_weights;
- a few small bad files that only torch can write (a legacy non-zip pickle, a complex64 tensor).

Every loading case is one entry of cases.json: the file, the scratchvit model name and keywords to load
it into, and the reference: the torch model's output in eval mode, in references.npz. Where the model
differs from the checkpoint (image size, window size) the reference model is loaded by timm's own rule
(vision_transformer / swin_transformer checkpoint_filter_fn, or _load_weights for .npz).
"""

from __future__ import annotations

import argparse
import io
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import (  # noqa: E402
    FILE_MODE,
    build_mae,
    fixed_rand,
    import_mae,
    max_rel_diff,
    overwrite_params_,
    to_np,
    versions,
    write_json,
    write_npz,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "io" / "fixtures"
MODEL_SEED, PARAM_SEED, DATA_SEED = 0, 1, 2
BATCH = 2
SIZE_LIMIT = 3 * 1024 * 1024  # all fixtures together

VIT_KWARGS = dict(
    img_size=32,
    patch_size=8,
    in_chans=3,
    num_classes=10,
    embed_dim=32,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    drop_path_rate=0.0,
)
VIT_NAME = "vit_tiny_patch16_224"
SWIN_KWARGS = dict(
    img_size=32,
    patch_size=2,
    in_chans=3,
    num_classes=10,
    embed_dim=12,
    depths=(2, 2, 1),
    num_heads=(1, 2, 4),
    window_size=4,
    mlp_ratio=2.0,
    drop_path_rate=0.0,
)
SWIN_NAME = "swin_tiny_patch4_window7_224"
MAE_KWARGS = dict(
    img_size=16,
    patch_size=4,
    in_chans=3,
    embed_dim=32,
    depth=2,
    num_heads=2,
    decoder_embed_dim=16,
    decoder_depth=1,
    decoder_num_heads=2,
    mlp_ratio=2.0,
    norm_pix_loss=False,
)
MAE_NAME = "mae_vit_base_patch16_dec512d8b"


class Writer:
    """Collects the weights files, the cases and the reference arrays, and writes them."""

    def __init__(self, out: Path, torch):
        self.out, self.torch = out, torch
        self.cases: list[dict] = []
        self.references: dict[str, np.ndarray] = {}
        self.files: list[Path] = []

    def path(self, name: str) -> Path:
        path = self.out / name
        self.files.append(path)
        return path

    def torch_save(self, name: str, obj, **kwargs) -> str:
        self.torch.save(obj, self.path(name), **kwargs)
        return name

    def safetensors_save(self, name: str, state_dict) -> str:
        from safetensors.torch import save_file

        path = self.path(name)
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path), metadata={"format": "pt"})
        path.chmod(FILE_MODE)  # save_file leaves its temporary file's 0600
        return name

    def npz_save(self, name: str, arrays: dict) -> str:
        write_npz(self.path(name), arrays)
        return name

    def image(self, tag: str, height: int, width: int):
        """A fixed (B, 3, H, W) input, stored once per tag."""
        generator = self.torch.Generator().manual_seed(DATA_SEED)
        images = self.torch.randn(BATCH, 3, height, width, generator=generator)
        self.references[f"input/{tag}"] = to_np(images)
        return images, f"input/{tag}"

    def case(
        self, name: str, file: str, model_name: str, kwargs: dict, input_key: str, output, note: str, **extra_arrays
    ) -> None:
        self.references[f"{name}/output"] = to_np(output)
        for key, value in extra_arrays.items():
            self.references[f"{name}/{key}"] = value if isinstance(value, np.ndarray) else to_np(value)
        kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
        self.cases.append(
            dict(
                name=name,
                file=file,
                model_name=model_name,
                kwargs=kwargs,
                input=input_key,
                note=note,
                extra=sorted(extra_arrays),
            )
        )


# ---- models ------------------------------------------------------------------------------------
def build(timm, torch, name: str, **kwargs):
    torch.manual_seed(MODEL_SEED)
    model = timm.create_model(name, pretrained=False, **kwargs)
    overwrite_params_(model, torch.Generator().manual_seed(PARAM_SEED), torch)
    return model.eval()


def forward(torch, model, images):
    with torch.no_grad():
        return model(images)


def rounded(torch, model, dtype):
    """A copy of `model` whose float weights went through `dtype` and back to float32."""
    import copy

    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in list(copy_.parameters()) + list(copy_.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).float())
    return copy_


def timm_load(torch, timm, name: str, kwargs: dict, state_dict, filter_fn):
    """timm's own load of a checkpoint into a model built with `kwargs`: filter_fn then a strict load."""
    torch.manual_seed(MODEL_SEED)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    model.load_state_dict(filter_fn({k: v.clone() for k, v in state_dict.items()}, model), strict=True)
    return model


def strided_views(torch, state_dict) -> dict:
    """The same values, but every 2-D weight stored as a transposed view with an offset into a larger
    storage, and cls_token / pos_embed sharing one storage (cls first, then pos_embed, offset 1 * D)."""
    out = {}
    for key, value in state_dict.items():
        if value.ndim == 2:
            rows, columns = value.shape
            base = torch.zeros(columns + 1, rows + 2)
            base[1:, 2:] = value.t()
            view = base[1:, 2:].t()  # stride (1, rows + 2), storage offset rows + 2 + 2
            assert not view.is_contiguous() and view.storage_offset() > 0 and torch.equal(view, value)
            out[key] = view
        else:
            out[key] = value
    cls_token, pos_embed = state_dict["cls_token"], state_dict["pos_embed"]
    shared = torch.cat([cls_token.flatten(), pos_embed.flatten()])
    out["cls_token"] = shared[: cls_token.numel()].view(cls_token.shape)
    out["pos_embed"] = shared[cls_token.numel() :].view(pos_embed.shape)
    assert out["pos_embed"].untyped_storage().data_ptr() == out["cls_token"].untyped_storage().data_ptr()
    return out


# ---- the inverse of timm's _load_weights (vision_transformer.py) --------------------------------
def to_jax_npz(model, big_vision: bool) -> dict:
    """timm ViT -> the JAX .npz layout timm's _load_weights reads.

    Original ViT / AugReg: `Transformer/posembed_input/pos_embedding`, `encoderblock_{i}` with
    LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2, MlpBlock_3, plus a `pre_logits` layer.
    big_vision: everything under `params/`, top-level `pos_embedding`, one scanned `encoderblock`
    (depth first) with LayerNorm_0, MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0.
    """
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    dim, heads = model.embed_dim, model.blocks[0].attn.num_heads
    head_dim = dim // heads
    prefix = "params/" if big_vision else ""
    mha, ln2, mlp = (
        ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
        if big_vision
        else ("MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    )
    out = {
        f"{prefix}embedding/kernel": state["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # (P, P, C, D)
        f"{prefix}embedding/bias": state["patch_embed.proj.bias"],
        f"{prefix}Transformer/encoder_norm/scale": state["norm.weight"],
        f"{prefix}Transformer/encoder_norm/bias": state["norm.bias"],
        f"{prefix}head/kernel": state["head.weight"].T,
        f"{prefix}head/bias": state["head.bias"],
    }
    if "cls_token" in state:
        out[f"{prefix}cls"] = state["cls_token"]
    out[f"{prefix}pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding"] = state["pos_embed"]
    if not big_vision:  # the ViT paper's representation layer; timm and scratchvit drop it
        generator = np.random.default_rng(DATA_SEED)
        out["pre_logits/kernel"] = generator.standard_normal((dim, dim)).astype(np.float32)
        out["pre_logits/bias"] = generator.standard_normal(dim).astype(np.float32)
    blocks = []
    for i in range(len(model.blocks)):
        b = f"blocks.{i}."
        qkv_w, qkv_b = state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"]
        block = {
            "LayerNorm_0/scale": state[b + "norm1.weight"],
            "LayerNorm_0/bias": state[b + "norm1.bias"],
            f"{ln2}/scale": state[b + "norm2.weight"],
            f"{ln2}/bias": state[b + "norm2.bias"],
            f"{mha}/out/kernel": state[b + "attn.proj.weight"].T.reshape(heads, head_dim, dim),
            f"{mha}/out/bias": state[b + "attn.proj.bias"],
            f"{mlp}/Dense_0/kernel": state[b + "mlp.fc1.weight"].T,
            f"{mlp}/Dense_0/bias": state[b + "mlp.fc1.bias"],
            f"{mlp}/Dense_1/kernel": state[b + "mlp.fc2.weight"].T,
            f"{mlp}/Dense_1/bias": state[b + "mlp.fc2.bias"],
        }
        for j, part in enumerate(("query", "key", "value")):
            block[f"{mha}/{part}/kernel"] = qkv_w[j * dim : (j + 1) * dim].T.reshape(dim, heads, head_dim)
            block[f"{mha}/{part}/bias"] = qkv_b[j * dim : (j + 1) * dim].reshape(heads, head_dim)
        blocks.append(block)
    if big_vision:
        for name in blocks[0]:
            out[f"{prefix}Transformer/encoderblock/{name}"] = np.stack([block[name] for block in blocks])
    else:
        for i, block in enumerate(blocks):
            out.update({f"Transformer/encoderblock_{i}/{name}": value for name, value in block.items()})
    return out


def timm_load_npz(torch, timm, kwargs: dict, path: Path):
    from timm.models.vision_transformer import _load_weights

    torch.manual_seed(MODEL_SEED)
    model = timm.create_model(VIT_NAME, pretrained=False, **kwargs).eval()
    _load_weights(model, str(path))
    return model


# ---- the official Swin layout (microsoft/Swin-Transformer models/swin_transformer.py) ---------
def to_official_swin(model) -> dict:
    """timm (>= 0.9) Swin state_dict -> the official one: patch merging belongs to the END of stage i
    (timm: START of stage i + 1), the classifier is `head` (timm: `head.fc`), and the official model
    keeps relative_position_index and the shifted blocks' attn_mask as persistent buffers."""
    import re

    out = {}
    for key, value in model.state_dict().items():
        key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
        out[key.replace("head.fc.", "head.")] = value
    for name, buffer in model.named_buffers():
        if name.endswith(("relative_position_index", "attn_mask")) and buffer is not None:
            out[name] = buffer
    return out


def check_patch_merging_order(torch) -> None:
    """The official PatchMerging concatenates x0 = x[0::2, 0::2], x1 = x[1::2, 0::2], x2 = x[0::2, 1::2],
    x3 = x[1::2, 1::2]; timm's reshape/permute must give the same channel order, or the reduction
    weights would need permuting when converting (they do not)."""
    from timm.models.swin_transformer import PatchMerging

    x = torch.randn(2, 4, 6, 5)
    merging = PatchMerging(5)
    merging.norm, merging.reduction = torch.nn.Identity(), torch.nn.Identity()
    official = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    assert torch.equal(merging(x), official), "timm's PatchMerging channel order differs from the official"


# ---- the official MAE fine-tuned classifier (facebookresearch/mae models_vit.py) ---------------
def mae_finetuned_vit(timm, torch, **kwargs):
    """models_vit.VisionTransformer(global_pool=True) on timm 1.x: timm's ViT with the final `norm`
    deleted, a new LayerNorm `fc_norm` after the mean of the patch tokens (class token excluded)."""
    from timm.models.vision_transformer import VisionTransformer

    class MaeFinetuneViT(VisionTransformer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.fc_norm = torch.nn.LayerNorm(kw["embed_dim"], eps=1e-6)
            del self.norm

        def forward_features(self, x):  # models_vit.VisionTransformer.forward_features, global_pool=True
            x = self.patch_embed(x)
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            x = self.pos_drop(x + self.pos_embed)
            for block in self.blocks:
                x = block(x)
            return self.fc_norm(x[:, 1:, :].mean(dim=1))

        def forward(self, x):
            return self.head(self.forward_features(x))

    torch.manual_seed(MODEL_SEED)
    model = MaeFinetuneViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **kwargs)
    overwrite_params_(model, torch.Generator().manual_seed(PARAM_SEED), torch)
    return model.eval()


# ---- the cases ---------------------------------------------------------------------------------
def vit_cases(w: Writer, torch, timm) -> None:
    from timm.models.vision_transformer import checkpoint_filter_fn

    model = build(timm, torch, VIT_NAME, **VIT_KWARGS)
    images, input_key = w.image("32", 32, 32)
    output = forward(torch, model, images)
    state = model.state_dict()
    note = "timm VisionTransformer"

    w.case(
        "vit_safetensors",
        w.safetensors_save("vit.safetensors", state),
        VIT_NAME,
        VIT_KWARGS,
        input_key,
        output,
        note + ", safetensors.torch.save_file",
    )
    w.case(
        "vit_pth",
        w.torch_save("vit.pth", state),
        VIT_NAME,
        VIT_KWARGS,
        input_key,
        output,
        note + ", torch.save(state_dict)",
    )
    ema = {"pos_embed": state["pos_embed"] + 1.0}  # a stand-in for the EMA weights, which must NOT be loaded
    w.case(
        "vit_pth_train_checkpoint",
        w.torch_save(
            "vit_train_checkpoint.pth",
            {"epoch": 3, "arch": VIT_NAME, "state_dict": state, "state_dict_ema": ema, "metric": 0.5},
        ),
        VIT_NAME,
        VIT_KWARGS,
        input_key,
        output,
        note + ", {'state_dict': ..., 'state_dict_ema': ...}",
    )
    w.case(
        "vit_pth_views",
        w.torch_save("vit_views.pth", strided_views(torch, state)),
        VIT_NAME,
        VIT_KWARGS,
        input_key,
        output,
        note + ", 2-D weights as transposed offset views; cls/pos sharing a storage",
    )
    for dtype, tag in ((torch.float16, "float16"), (torch.bfloat16, "bfloat16")):
        low = rounded(torch, model, dtype)
        low_output = forward(torch, low, images)
        low_state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        rounded_note = "reference: the model with its weights rounded the same way"
        w.case(
            f"vit_pth_{tag}",
            w.torch_save(f"vit_{tag}.pth", {"model": low_state}),
            VIT_NAME,
            VIT_KWARGS,
            input_key,
            low_output,
            f"{note}, {tag} tensors in {{'model': ...}}; {rounded_note}",
        )
        w.case(
            f"vit_safetensors_{tag}",
            w.safetensors_save(f"vit_{tag}.safetensors", low_state),
            VIT_NAME,
            VIT_KWARGS,
            input_key,
            low_output,
            f"{note}, {tag} safetensors; {rounded_note}",
        )

    # resampled position embeddings: timm's checkpoint_filter_fn (bicubic, antialias) then a strict load
    for size in (48, 24):
        kwargs = dict(VIT_KWARGS, img_size=size)
        resampled = timm_load(torch, timm, VIT_NAME, kwargs, state, checkpoint_filter_fn)
        images_k, key_k = w.image(str(size), size, size)
        w.case(
            f"vit_pth_resample_{size}",
            "vit.pth",
            VIT_NAME,
            kwargs,
            key_k,
            forward(torch, resampled, images_k),
            f"4x4 position grid resampled to {size // 8}x{size // 8} by timm's checkpoint_filter_fn",
            pos_embed=resampled.pos_embed,
        )

    # JAX .npz: the original ViT / AugReg layout (with pre_logits), read back by timm's _load_weights
    name = w.npz_save("vit_augreg.npz", to_jax_npz(model, big_vision=False))
    loaded = timm_load_npz(torch, timm, VIT_KWARGS, w.out / name)
    assert max_rel_diff(to_np(forward(torch, loaded, images)), to_np(output)) < 1e-6
    w.case(
        "vit_augreg_npz",
        name,
        VIT_NAME,
        VIT_KWARGS,
        input_key,
        forward(torch, loaded, images),
        "original ViT / AugReg .npz layout, pre_logits dropped",
    )
    kwargs = dict(VIT_KWARGS, img_size=48)
    loaded = timm_load_npz(torch, timm, kwargs, w.out / name)
    images_48 = torch.from_numpy(w.references["input/48"])
    w.case(
        "vit_augreg_npz_resample_48",
        name,
        VIT_NAME,
        kwargs,
        "input/48",
        forward(torch, loaded, images_48),
        "AugReg .npz into a 6x6 grid: timm's _load_weights resamples bilinear, no antialias",
        pos_embed=loaded.pos_embed,
    )

    # big_vision: the position embedding covers the patches only (no_embed_class), scanned blocks
    bv_kwargs = dict(VIT_KWARGS, no_embed_class=True)
    bv_model = build(timm, torch, VIT_NAME, **bv_kwargs)
    name = w.npz_save("vit_big_vision.npz", to_jax_npz(bv_model, big_vision=True))
    loaded = timm_load_npz(torch, timm, bv_kwargs, w.out / name)
    assert max_rel_diff(to_np(forward(torch, loaded, images)), to_np(forward(torch, bv_model, images))) < 1e-6
    w.case(
        "vit_big_vision_npz",
        name,
        VIT_NAME,
        bv_kwargs,
        input_key,
        forward(torch, loaded, images),
        "big_vision .npz: params/ prefix, pos_embedding without the class token, scanned blocks",
    )
    kwargs = dict(bv_kwargs, img_size=24)
    loaded = timm_load_npz(torch, timm, kwargs, w.out / name)
    images_24 = torch.from_numpy(w.references["input/24"])
    w.case(
        "vit_big_vision_npz_resample_24",
        name,
        VIT_NAME,
        kwargs,
        "input/24",
        forward(torch, loaded, images_24),
        "big_vision .npz into a 3x3 grid (bilinear, no antialias, no prefix token)",
        pos_embed=loaded.pos_embed,
    )


def mae_cases(w: Writer, torch, timm, models_mae) -> None:
    # the fine-tuned classifier of the official recipe (global_pool=True): timm keys with fc_norm, no norm
    kwargs = dict(
        img_size=32,
        patch_size=8,
        in_chans=3,
        num_classes=10,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        qkv_bias=True,
    )
    finetuned = mae_finetuned_vit(timm, torch, **kwargs)
    images, input_key = w.image("32", 32, 32)
    name = w.torch_save("mae_finetuned_vit.pth", {"model": finetuned.state_dict()})
    ours = dict(kwargs, global_pool="avg")
    w.case(
        "mae_finetuned_vit",
        name,
        VIT_NAME,
        ours,
        input_key,
        forward(torch, finetuned, images),
        "official MAE fine-tuned ViT (models_vit, global_pool=True) in {'model': ...}",
    )

    # the pre-trained MAE, {'model': ...} as the released mae_pretrain_vit_*.pth
    torch.manual_seed(MODEL_SEED)
    mae = build_mae(models_mae, MAE_KWARGS, torch).float()
    overwrite_params_(mae, torch.Generator().manual_seed(PARAM_SEED), torch)
    mae.eval()
    images16, key16 = w.image("16", 16, 16)
    generator = torch.Generator().manual_seed(DATA_SEED + 1)
    noise = torch.rand(BATCH, mae.patch_embed.num_patches, generator=generator)
    mask_ratio = 0.75
    with torch.no_grad(), fixed_rand(noise, torch) as calls:
        loss, pred, mask = mae(images16, mask_ratio=mask_ratio)
    assert calls[0] == 1
    name = w.torch_save("mae_pretrain.pth", {"model": mae.state_dict()})
    w.case(
        "mae_pretrain",
        name,
        MAE_NAME,
        MAE_KWARGS,
        key16,
        pred,
        "official MaskedAutoencoderViT in {'model': ...}",
        noise=to_np(noise),
        loss=loss,
        mask=mask,
        mask_ratio=np.array(mask_ratio, np.float32),
    )

    # its encoder as a headless ViT (decoder and mask token dropped): timm's ViT with those weights
    vit_kwargs = dict(
        img_size=16, patch_size=4, in_chans=3, num_classes=0, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0
    )
    torch.manual_seed(MODEL_SEED)
    vit = timm.create_model(VIT_NAME, pretrained=False, **vit_kwargs).eval()
    encoder = {k: v for k, v in mae.state_dict().items() if not k.startswith(("decoder_", "mask_token"))}
    vit.load_state_dict(encoder, strict=True)
    w.case(
        "mae_pretrain_as_vit",
        name,
        VIT_NAME,
        vit_kwargs,
        key16,
        forward(torch, vit, images16),
        "the MAE encoder into a ViT with num_classes=0: the class token after the encoder's norm",
    )


def swin_cases(w: Writer, torch, timm) -> None:
    from timm.models.swin_transformer import checkpoint_filter_fn

    check_patch_merging_order(torch)
    model = build(timm, torch, SWIN_NAME, **SWIN_KWARGS)
    images, input_key = w.image("32", 32, 32)
    output = forward(torch, model, images)
    name = w.safetensors_save("swin.safetensors", model.state_dict())
    w.case("swin_safetensors", name, SWIN_NAME, SWIN_KWARGS, input_key, output, "timm SwinTransformer, safetensors")

    official = to_official_swin(model)
    assert "layers.0.downsample.reduction.weight" in official and "head.weight" in official
    reloaded = timm_load(torch, timm, SWIN_NAME, SWIN_KWARGS, official, checkpoint_filter_fn)
    assert torch.equal(forward(torch, reloaded, images), output)
    official_name = w.torch_save("swin_official.pth", {"model": official})
    w.case(
        "swin_official_pth",
        official_name,
        SWIN_NAME,
        SWIN_KWARGS,
        input_key,
        output,
        "official Swin layout in {'model': ...}: downsample at the end of stage i, head.weight, index/mask buffers",
    )

    # relative position bias tables resized by timm's resize_rel_pos_bias_table
    for window, source, state in ((8, official_name, official), (2, name, model.state_dict())):
        kwargs = dict(SWIN_KWARGS, window_size=window)
        loaded = timm_load(torch, timm, SWIN_NAME, kwargs, state, checkpoint_filter_fn)
        table = loaded.layers[0].blocks[0].attn.relative_position_bias_table
        w.case(
            f"swin_window_{window}",
            source,
            SWIN_NAME,
            kwargs,
            input_key,
            forward(torch, loaded, images),
            f"window 4 -> {window}: bias tables resized by timm's checkpoint_filter_fn",
            table=table,
        )


def bad_files(w: Writer, torch) -> None:
    """Files the loader must refuse with a clear error, which only torch can write."""
    weight, buffer = torch.ones(2), io.BytesIO()
    torch.save({"weight": weight}, buffer, _use_new_zipfile_serialization=False)
    # the legacy format names a storage by its memory address: zeroed, so reruns write the same bytes
    address = str(weight.untyped_storage()._cdata).encode()
    w.path("bad_legacy.pth").write_bytes(buffer.getvalue().replace(address, b"0" * len(address)))
    w.torch_save("bad_complex.pth", {"weight": torch.ones(2, dtype=torch.complex64)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mae-src", type=Path, required=True, help="the official MAE source (see tools/README.md)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import timm
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    models_mae, mae_commit = import_mae(args.mae_src.resolve(), torch)
    args.out.mkdir(parents=True, exist_ok=True)
    writer = Writer(args.out, torch)
    vit_cases(writer, torch, timm)
    mae_cases(writer, torch, timm, models_mae)
    swin_cases(writer, torch, timm)
    bad_files(writer, torch)

    write_npz(writer.path("references.npz"), writer.references)
    manifest = dict(
        versions=versions(torch, timm, mae_commit),
        batch=BATCH,
        seeds=dict(model=MODEL_SEED, params=PARAM_SEED, data=DATA_SEED),
        param_init="make_golden.overwrite_params_ (tests/golden/README.md)",
        references="references.npz: input/<tag> (B, 3, H, W); <case>/output; <case>/<extra> as listed",
        cases=writer.cases,
    )
    write_json(writer.path("cases.json"), manifest)
    total = 0
    for path in writer.files:
        total += path.stat().st_size
        print(f"{path.stat().st_size / 1024:8.1f} KiB  {path.name}")
    print(f"{total / 1024:8.1f} KiB  total")
    if total > SIZE_LIMIT:
        raise SystemExit(f"fixtures are {total} bytes, over the {SIZE_LIMIT} byte budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
