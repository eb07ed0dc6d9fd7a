#!/usr/bin/env python
"""Make the golden fixtures under tests/golden/ from timm and the official MAE code.

DEV-ONLY. This script imports torch, timm and the official MAE sources; the scratchvit package and
its default test run never do. The fixtures it writes are plain .npz / .json files that the
scratchvit tests read with NumPy alone. See tools/README.md for set-up and tests/golden/README.md for
the file format and the semantics the fixtures pin down.

    /work/torchenv/bin/python tools/make_golden.py --mae-src /work/mae-src

Every fixture: the reference model is built in float32 with a fixed seed, its trainable parameters
are overwritten with documented random values (so that every parameter, including LayerNorm gains,
biases, tokens and relative-position tables, visibly matters), it is put in eval() mode, run on a
fixed random input, and then `(output * upstream).sum()` (MAE: the scalar loss) is back-propagated.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden.numpy_reference import resample_matrix, verify  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files; give the usual mode back
DEFAULT_OUT = REPO_ROOT / "tests" / "golden"

# Model names whose real-size parameter counts go to param_counts.json.
TIMM_COUNT_MODELS = [
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch32_224",
    "vit_large_patch16_224",
    "vit_base_patch16_384",
    "swin_tiny_patch4_window7_224",
    "swin_small_patch4_window7_224",
    "swin_base_patch4_window7_224",
    "swin_base_patch4_window12_384",
    "swin_large_patch4_window7_224",
]
MAE_COUNT_MODELS = [
    "mae_vit_base_patch16_dec512d8b",
    "mae_vit_large_patch16_dec512d8b",
    "mae_vit_huge_patch14_dec512d8b",
]
KEY_LAYOUT_MODELS = [
    "vit_tiny_patch16_224",
    "swin_tiny_patch4_window7_224",
    "mae_vit_base_patch16_dec512d8b",
]

BATCH = 2
MODEL_SEED = 0  # torch.manual_seed before building each model (timm/official init)
PARAM_SEED = 1  # generator that overwrites the trainable parameters
DATA_SEED = 2  # generator for input, upstream and MAE noise


# ----------------------------------------------------------------------------------------------
# the small configs
# ----------------------------------------------------------------------------------------------


def vit_configs() -> list[dict[str, Any]]:
    small = dict(
        img_size=32,
        patch_size=8,
        in_chans=3,
        num_classes=10,
        global_pool="token",
        embed_dim=48,
        depth=2,
        num_heads=3,
        mlp_ratio=2.0,
        qkv_bias=True,
        class_token=True,
        drop_rate=0.0,
        pos_drop_rate=0.0,
        proj_drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
    )
    return [
        dict(
            name="vit_small_like",
            family="vit",
            model_name="vit_small_patch16_224",
            kwargs=dict(small),
            input_hw=(32, 32),
        ),
        dict(
            name="vit_avgpool_nonsquare",
            family="vit",
            model_name="vit_tiny_patch16_224",
            kwargs=dict(
                img_size=[24, 40],
                patch_size=8,
                in_chans=3,
                num_classes=5,
                global_pool="avg",
                embed_dim=32,
                depth=2,
                num_heads=2,
                mlp_ratio=4.0,
                qkv_bias=False,
                class_token=False,
                drop_rate=0.0,
                pos_drop_rate=0.0,
                proj_drop_rate=0.0,
                attn_drop_rate=0.0,
                drop_path_rate=0.0,
            ),
            input_hw=(24, 40),
        ),
        # built for 32x32 (4x4 grid), run at 40x48 (5x6 grid): pos_embed upsampled in forward
        dict(
            name="vit_dynamic",
            family="vit",
            model_name="vit_small_patch16_224",
            kwargs=dict(small, dynamic_img_size=True),
            input_hw=(40, 48),
        ),
        # built for 32x32 (4x4 grid), run at 24x16 (3x2 grid): pos_embed DOWNsampled, where the
        # antialias flag changes the weights
        dict(
            name="vit_dynamic_down",
            family="vit",
            model_name="vit_small_patch16_224",
            kwargs=dict(small, dynamic_img_size=True),
            input_hw=(24, 16),
        ),
    ]


def swin_configs() -> list[dict[str, Any]]:
    common = dict(
        in_chans=3,
        mlp_ratio=2.0,
        qkv_bias=True,
        global_pool="avg",
        drop_rate=0.0,
        proj_drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
    )
    return [
        # stage 1 at 16x16 (window 4, odd blocks shift by 2), stage 2 at 8x8 (shift kept)
        dict(
            name="swin_shift",
            family="swin",
            model_name="swin_tiny_patch4_window7_224",
            kwargs=dict(
                common,
                img_size=32,
                patch_size=2,
                num_classes=10,
                window_size=4,
                embed_dim=24,
                depths=[2, 2],
                num_heads=[2, 4],
            ),
            input_hw=(32, 32),
        ),
        # 8x8 (window 4, shift 2) -> 4x4 (window 4 == res: shift disabled) -> 2x2 (window clipped
        # to 2, shift disabled)
        dict(
            name="swin_clipped",
            family="swin",
            model_name="swin_tiny_patch4_window7_224",
            kwargs=dict(
                common,
                img_size=32,
                patch_size=4,
                num_classes=10,
                window_size=4,
                embed_dim=16,
                depths=[2, 2, 2],
                num_heads=[1, 2, 4],
            ),
            input_hw=(32, 32),
        ),
        # 8x12 (window 4x4, shift 2x2) -> 4x6 (window 4x4, shift (0, 2), W padded 6 -> 8)
        # -> 2x3 (window clipped per axis to 2x3, no shift)
        dict(
            name="swin_nonsquare",
            family="swin",
            model_name="swin_tiny_patch4_window7_224",
            kwargs=dict(
                common,
                img_size=[32, 48],
                patch_size=4,
                num_classes=7,
                window_size=4,
                embed_dim=16,
                depths=[2, 2, 2],
                num_heads=[1, 2, 4],
            ),
            input_hw=(32, 48),
        ),
    ]


def mae_configs() -> list[dict[str, Any]]:
    base = dict(
        img_size=32,
        patch_size=4,
        in_chans=3,
        embed_dim=48,
        depth=2,
        num_heads=3,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        mlp_ratio=2.0,
        norm_pix_loss=False,
    )
    return [
        dict(
            name="mae_tiny",
            family="mae",
            model_name="mae_vit_base_patch16_dec512d8b",
            kwargs=dict(base),
            input_hw=(32, 32),
            mask_ratio=0.75,
        ),
        dict(
            name="mae_tiny_normpix",
            family="mae",
            model_name="mae_vit_base_patch16_dec512d8b",
            kwargs=dict(base, norm_pix_loss=True),
            input_hw=(32, 32),
            mask_ratio=0.75,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz deterministically (fixed zip timestamps, sorted order) and atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for key in sorted(arrays):
                    arr = np.asarray(arrays[key])
                    if arr.dtype == object:
                        raise TypeError(f"{path.name}:{key} has dtype object")
                    buf = io.BytesIO()
                    np.lib.format.write_array(
                        buf, arr if arr.flags.c_contiguous else arr.copy(order="C"), allow_pickle=False
                    )
                    info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_text(obj: Any, indent: str = "") -> str:
    """JSON with dicts spread over lines but lists of dicts/numbers kept one item per line."""
    inner = indent + " "
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {_json_text(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return "[\n" + ",\n".join(inner + json.dumps(v) for v in obj) + "\n" + indent + "]"
    return json.dumps(obj)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(_json_text(obj) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def to_np(t) -> np.ndarray:
    a = t.detach().cpu().numpy()
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return a


def torch_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON lists -> tuples, the form timm documents for img_size / depths / num_heads."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def versions(torch, timm, mae_commit: str | None) -> dict[str, Any]:
    v = dict(torch=torch.__version__, timm=timm.__version__, numpy=np.__version__, python=sys.version.split()[0])
    if mae_commit:
        v["mae_commit"] = mae_commit
    return v


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def overwrite_params_(model, gen, torch) -> dict[str, str]:
    """Replace every trainable parameter by documented random values (see tests/golden/README.md).

    - tokens, position embeddings, relative-position bias tables: N(0, 0.5^2)
    - weights with ndim >= 2 (Linear, Conv): N(0, 1/fan_in), fan_in = prod(shape[1:])
    - 1-D `*.weight` (LayerNorm gains): 1 + N(0, 0.1^2); 1-D `*.bias`: N(0, 0.1^2)
    Frozen parameters (MAE's sin-cos pos embeds, requires_grad=False) are left as built.
    """
    rule = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                rule[name] = "frozen (kept)"
                continue
            leaf = name.rsplit(".", 1)[-1]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if leaf in ("cls_token", "mask_token", "reg_token", "pos_embed", "relative_position_bias_table"):
                p.copy_(0.5 * noise)
                rule[name] = "N(0,0.25)"
            elif p.ndim >= 2:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(noise / math.sqrt(fan_in))
                rule[name] = "N(0,1/fan_in)"
            elif leaf == "weight":
                p.copy_(1.0 + 0.1 * noise)
                rule[name] = "1+N(0,0.01)"
            elif leaf == "bias":
                p.copy_(0.1 * noise)
                rule[name] = "N(0,0.01)"
            else:
                raise ValueError(f"no overwrite rule for parameter {name} {tuple(p.shape)}")
    return rule


def state_and_grads(model) -> dict[str, np.ndarray]:
    out = {}
    for k, v in model.state_dict().items():
        out["param/" + k] = to_np(v)
    for n, p in model.named_parameters():
        if p.requires_grad:
            if p.grad is None:
                raise RuntimeError(f"parameter {n} got no gradient")
            out["grad/" + n] = to_np(p.grad)
    # non-persistent buffers (not in state_dict) are stored separately for reference
    sd_keys = set(model.state_dict().keys())
    for n, b in model.named_buffers():
        if n not in sd_keys and b is not None:
            out["buffer/" + n] = b.detach().cpu().numpy()
    return out


def compare_float64(model32, run: Callable, inputs32: dict[str, Any], torch) -> dict[str, float]:
    """Re-run the same weights in float64; report max |f32 - f64| / max |f64| per quantity."""
    m64 = copy.deepcopy(model32).double()
    for p in m64.parameters():
        p.grad = None
    inputs64 = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs32.items()}
    outs32 = run(model32, inputs32, backward=False)
    outs64 = run(m64, inputs64, backward=True)
    report = {}
    for k, v in outs64.items():
        if torch.is_tensor(outs32.get(k)) and torch.is_tensor(v) and v.is_floating_point():
            report[k] = max_rel_diff(to_np(outs32[k]), v.detach().numpy())
    worst = 0.0
    g32 = dict(model32.named_parameters())
    for n, p in m64.named_parameters():
        if p.requires_grad:
            worst = max(worst, max_rel_diff(g32[n].grad.numpy(), p.grad.numpy()))
    report["grads_worst"] = worst
    return report


# ----------------------------------------------------------------------------------------------
# MAE loading and fixed noise
# ----------------------------------------------------------------------------------------------


def import_mae(mae_src: Path, torch):
    """Import the official models_mae from `mae_src`, made runnable on NumPy >= 1.24 / timm 1.x."""
    if not (mae_src / "models_mae.py").is_file() or not (mae_src / "util" / "pos_embed.py").is_file():
        raise SystemExit(f"--mae-src {mae_src} must hold models_mae.py and util/pos_embed.py")
    if not hasattr(np, "float"):
        np.float = float  # util/pos_embed.py uses np.float (removed in NumPy 1.24)
    sys.path.insert(0, str(mae_src))
    import models_mae
    import util.pos_embed  # noqa: F401  (must resolve to mae_src/util)
    from timm.models.vision_transformer import Block as TimmBlock

    class Block(TimmBlock):
        """timm>=0.9 Block without the qk_scale keyword that models_mae passes (always None)."""

        def __init__(self, *args, qk_scale=None, **kwargs):
            assert qk_scale is None
            super().__init__(*args, **kwargs)

    models_mae.Block = Block
    commit = None
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(mae_src), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
            ).stdout.strip()
            or None
        )
    except Exception:
        pass
    if commit is None and (mae_src / "COMMIT").is_file():
        commit = (mae_src / "COMMIT").read_text().strip()
    return models_mae, commit


def build_mae(models_mae, kwargs: dict[str, Any], torch):
    from functools import partial

    # the official named constructors (mae_vit_*_dec512d8b) all pass LayerNorm(eps=1e-6); the bare
    # class default is nn.LayerNorm (eps=1e-5). The fixtures follow the named constructors.
    return models_mae.MaskedAutoencoderViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **torch_kwargs(kwargs))


@contextlib.contextmanager
def fixed_rand(noise, torch) -> Iterator[list[int]]:
    """Make the one `torch.rand(N, L, device=...)` call in the official random_masking return
    `noise`. Patches torch.rand for the duration; fails loudly on any other call."""
    original = torch.rand
    calls = [0]

    def rand(*size, **kw):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        if tuple(shape) != tuple(noise.shape) or kw.get("generator") is not None:
            raise RuntimeError(f"unexpected torch.rand call {shape} {kw}")
        calls[0] += 1
        return noise.clone().to(device=kw.get("device") or noise.device, dtype=kw.get("dtype") or noise.dtype)

    torch.rand = rand
    try:
        yield calls
    finally:
        torch.rand = original


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


def make_classifier_fixture(cfg: dict[str, Any], torch, timm, out_dir: Path, meta: dict[str, Any]) -> Path:
    from timm.layers import resample_abs_pos_embed

    kwargs = torch_kwargs(cfg["kwargs"])
    torch.manual_seed(MODEL_SEED)
    model = timm.create_model(cfg["model_name"], pretrained=False, **kwargs)
    # the registry entry with every keyword given builds the same thing as the class itself
    direct = type(model)(**kwargs)
    assert [(k, v.shape) for k, v in model.state_dict().items()] == [
        (k, v.shape) for k, v in direct.state_dict().items()
    ]
    del direct
    model = model.float()
    init_rule = overwrite_params_(model, torch.Generator().manual_seed(PARAM_SEED), torch)
    model.eval()

    gen = torch.Generator().manual_seed(DATA_SEED)
    H, W = cfg["input_hw"]
    x = torch.randn(BATCH, kwargs["in_chans"], H, W, generator=gen, dtype=torch.float32)
    with torch.no_grad():
        out_shape = model(x).shape
    upstream = torch.randn(out_shape, generator=gen, dtype=torch.float32)

    def run(m, inp, backward=True):
        xx = inp["input"].clone().requires_grad_(True)
        feats = m.forward_features(xx)
        pre_logits = m.forward_head(feats, pre_logits=True)
        out = m.forward_head(feats)
        if backward:
            m.zero_grad(set_to_none=True)
            (out * inp["upstream"].to(out.dtype)).sum().backward()
        return dict(output=out, features=feats, pre_logits=pre_logits, grad_input=xx.grad)

    res = run(model, dict(input=x, upstream=upstream))
    with torch.no_grad():  # forward_features + forward_head is what forward() does
        assert torch.equal(model(x), res["output"])

    arrays = state_and_grads(model)
    arrays.update(
        input=to_np(x),
        upstream=to_np(upstream),
        output=to_np(res["output"]),
        features=to_np(res["features"]),
        pre_logits=to_np(res["pre_logits"]),
        grad_input=to_np(res["grad_input"]),
    )

    extra = {}
    if cfg["family"] == "vit" and kwargs.get("dynamic_img_size"):
        grid = model.patch_embed.dynamic_feat_size((H, W))
        resampled = resample_abs_pos_embed(
            model.pos_embed,
            new_size=grid,
            old_size=model.patch_embed.grid_size,
            num_prefix_tokens=0 if model.no_embed_class else model.num_prefix_tokens,
        )
        arrays["pos_embed_resampled"] = to_np(resampled)
        extra["pos_embed_resample"] = dict(
            old_grid=list(model.patch_embed.grid_size),
            new_grid=list(grid),
            num_prefix_tokens=model.num_prefix_tokens,
            interpolation="bicubic",
            antialias=True,
            align_corners=False,
        )
    if cfg["family"] == "swin":
        extra["swin_blocks"] = swin_block_layout(model)

    config = dict(
        name=cfg["name"],
        family=cfg["family"],
        model_name=cfg["model_name"],
        builder=f"timm.create_model({cfg['model_name']!r}, pretrained=False, **kwargs)",
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        kwargs=cfg["kwargs"],
        batch_size=BATCH,
        input_shape=list(x.shape),
        output_shape=list(res["output"].shape),
        features_shape=list(res["features"].shape),
        mode="eval",
        objective="(output * upstream).sum()",
        norm_eps=_norm_eps(model),
        fused_attn=_fused_attn_flags(model),
        seeds=dict(model=MODEL_SEED, params=PARAM_SEED, data=DATA_SEED),
        param_init=init_rule,
        versions=meta["versions"],
        **extra,
    )
    config["float64_rel_diff"] = compare_float64(model, run, dict(input=x, upstream=upstream), torch)
    arrays["config"] = np.array(json.dumps(config))
    path = out_dir / f"{cfg['name']}.npz"
    write_npz(path, arrays)
    return path


def make_mae_fixture(cfg: dict[str, Any], torch, models_mae, out_dir: Path, meta: dict[str, Any]) -> Path:
    torch.manual_seed(MODEL_SEED)
    model = build_mae(models_mae, cfg["kwargs"], torch).float()
    init_rule = overwrite_params_(model, torch.Generator().manual_seed(PARAM_SEED), torch)
    model.eval()
    mask_ratio = cfg["mask_ratio"]

    gen = torch.Generator().manual_seed(DATA_SEED)
    H, W = cfg["input_hw"]
    imgs = torch.randn(BATCH, cfg["kwargs"]["in_chans"], H, W, generator=gen, dtype=torch.float32)
    L = model.patch_embed.num_patches
    noise = torch.rand(BATCH, L, generator=gen, dtype=torch.float32)

    def run(m, inp, backward=True):
        xx = inp["input"].clone().requires_grad_(True)
        with fixed_rand(inp["noise"], torch) as calls:
            # exactly MaskedAutoencoderViT.forward, split to keep the encoder output
            latent, mask, ids_restore = m.forward_encoder(xx, mask_ratio)
            pred = m.forward_decoder(latent, ids_restore)
            loss = m.forward_loss(xx, pred, mask)
        assert calls[0] == 1
        if backward:
            m.zero_grad(set_to_none=True)
            loss.backward()
        return dict(loss=loss, pred=pred, mask=mask, ids_restore=ids_restore, latent=latent, grad_input=xx.grad)

    res = run(model, dict(input=imgs, noise=noise))
    with torch.no_grad(), fixed_rand(noise, torch):
        loss2, pred2, mask2 = model(imgs, mask_ratio=mask_ratio)
    assert torch.equal(loss2, res["loss"]) and torch.equal(pred2, res["pred"]) and torch.equal(mask2, res["mask"])

    arrays = state_and_grads(model)
    arrays.update(
        input=to_np(imgs),
        noise=to_np(noise),
        mask_ratio=np.array(mask_ratio, np.float32),
        loss=to_np(res["loss"]),
        output=to_np(res["loss"]),
        upstream=np.array(1.0, np.float32),
        pred=to_np(res["pred"]),
        mask=to_np(res["mask"]),
        ids_restore=res["ids_restore"].numpy().astype(np.int64),
        latent=to_np(res["latent"]),
        grad_input=to_np(res["grad_input"]),
        target=to_np(_mae_target(model, imgs, torch)),
    )
    config = dict(
        name=cfg["name"],
        family="mae",
        model_name=cfg["model_name"],
        builder="models_mae.MaskedAutoencoderViT(norm_layer=partial(nn.LayerNorm, eps=1e-6), **kwargs)",
        model_class="models_mae.MaskedAutoencoderViT (official facebookresearch/mae)",
        kwargs=cfg["kwargs"],
        norm_eps=_norm_eps(model),
        fused_attn=_fused_attn_flags(model),
        batch_size=BATCH,
        input_shape=list(imgs.shape),
        mask_ratio=mask_ratio,
        num_patches=L,
        len_keep=int(L * (1 - mask_ratio)),
        mode="eval",
        objective="loss (scalar), upstream = 1",
        noise="fixed (B, L) float32 from torch.rand(generator); injected by patching torch.rand "
        "for the single call inside the official random_masking",
        seeds=dict(model=MODEL_SEED, params=PARAM_SEED, data=DATA_SEED),
        param_init=init_rule,
        versions=meta["mae_versions"],
    )
    config["float64_rel_diff"] = compare_float64(model, run, dict(input=imgs, noise=noise), torch)
    arrays["config"] = np.array(json.dumps(config))
    path = out_dir / f"{cfg['name']}.npz"
    write_npz(path, arrays)
    return path


def _mae_target(model, imgs, torch):
    """The regression target forward_loss builds (after the optional per-patch normalisation)."""
    with torch.no_grad():
        target = model.patchify(imgs)
        if model.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
    return target


def _norm_eps(model) -> dict[str, float]:
    eps = {}
    for n, m in model.named_modules():
        if hasattr(m, "normalized_shape") and hasattr(m, "eps"):
            eps[n] = m.eps
    vals = sorted(set(eps.values()))
    return dict(values=vals, per_module=eps) if len(vals) > 1 else dict(values=vals)


def _fused_attn_flags(model) -> list[bool]:
    return sorted({bool(m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")})


# ----------------------------------------------------------------------------------------------
# position-embedding resampling reference (timm resample_abs_pos_embed == F.interpolate bicubic)
# ----------------------------------------------------------------------------------------------


def make_resample_fixture(torch, out_dir: Path, meta: dict[str, Any]) -> Path:
    from timm.layers import resample_abs_pos_embed

    gen = torch.Generator().manual_seed(DATA_SEED + 10)
    cases = [
        ("up_4x4_to_5x6", (4, 4), (5, 6)),
        ("down_4x4_to_3x2", (4, 4), (3, 2)),
        ("mixed_4x4_to_2x7", (4, 4), (2, 7)),
        ("up_3x5_to_6x10", (3, 5), (6, 10)),
        ("down_14x14_to_7x7", (14, 14), (7, 7)),
        ("down_7x7_to_3x3", (7, 7), (3, 3)),
        ("same_4x4", (4, 4), (4, 4)),
    ]
    D, prefix = 6, 1
    arrays, listing = {}, []
    worst = 0.0
    for name, old, new in cases:
        posemb = torch.randn(1, prefix + old[0] * old[1], D, generator=gen, dtype=torch.float32)
        arrays[f"{name}/input"] = to_np(posemb)
        for aa in (True, False):
            out = resample_abs_pos_embed(
                posemb, new_size=list(new), old_size=list(old), num_prefix_tokens=prefix, antialias=aa
            )
            tag = "aa" if aa else "noaa"
            arrays[f"{name}/{tag}"] = to_np(out)
            # check the NumPy reference above against torch
            grid = posemb[0, prefix:].double().numpy().reshape(old[0], old[1], D)
            Ah = resample_matrix(old[0], new[0], aa)
            Aw = resample_matrix(old[1], new[1], aa)
            ref = np.einsum("ih,jw,hwd->ijd", Ah, Aw, grid).reshape(-1, D)
            worst = max(worst, float(np.max(np.abs(ref - out[0, prefix:].double().numpy()))))
            arrays[f"{name}/{tag}_matrix_h"] = Ah.astype(np.float32)
            arrays[f"{name}/{tag}_matrix_w"] = Aw.astype(np.float32)
        listing.append(dict(name=name, old_size=list(old), new_size=list(new)))
    if worst > 1e-5:
        raise AssertionError(f"NumPy resample reference disagrees with torch by {worst}")
    config = dict(
        name="pos_embed_resample",
        family="util",
        function="timm.layers.resample_abs_pos_embed(posemb, new_size, old_size, "
        "num_prefix_tokens=1, interpolation='bicubic', antialias=<aa|noaa>)",
        num_prefix_tokens=prefix,
        embed_dim=D,
        cases=listing,
        numpy_reference_max_abs_err=worst,
        versions=meta["versions"],
    )
    arrays["config"] = np.array(json.dumps(config))
    path = out_dir / "pos_embed_resample.npz"
    write_npz(path, arrays)
    return path


# ----------------------------------------------------------------------------------------------
# real-size parameter counts and state_dict key layouts
# ----------------------------------------------------------------------------------------------


def describe_state_dict(model) -> dict[str, Any]:
    params = dict(model.named_parameters())
    keys = []
    for k, v in model.state_dict().items():
        entry = dict(key=k, shape=list(v.shape), dtype=str(v.dtype).replace("torch.", ""))
        if k in params:
            entry["kind"] = "parameter"
            entry["requires_grad"] = params[k].requires_grad
        else:
            entry["kind"] = "buffer"
        keys.append(entry)
    sd = set(model.state_dict().keys())
    non_persistent = [
        dict(name=n, shape=list(b.shape), dtype=str(b.dtype).replace("torch.", ""))
        for n, b in model.named_buffers()
        if n not in sd
    ]
    out = dict(keys=keys, non_persistent_buffers=non_persistent)
    blocks = swin_block_layout(model)
    if blocks:
        out["swin_blocks"] = blocks
    return out


def swin_block_layout(model) -> list[dict[str, Any]]:
    """Per Swin block: feature size, (clipped) window, shift and whether it has an attention mask."""
    return [
        dict(
            block=n,
            input_resolution=list(b.input_resolution),
            window_size=list(b.window_size),
            shift_size=list(b.shift_size),
            has_attn_mask=b.attn_mask is not None,
            relative_position_bias_table=list(b.attn.relative_position_bias_table.shape),
        )
        for n, b in model.named_modules()
        if type(b).__name__ == "SwinTransformerBlock"
    ]


def count(model) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    sd = model.state_dict()
    pnames = {n for n, _ in model.named_parameters()}
    persistent_buffers = sum(v.numel() for k, v in sd.items() if k not in pnames)
    return dict(
        total=trainable + frozen,
        trainable=trainable,
        frozen=frozen,
        persistent_buffer_elements=persistent_buffers,
        state_dict_elements=sum(v.numel() for v in sd.values()),
        state_dict_keys=len(sd),
    )


def make_counts(torch, timm, models_mae, out_dir: Path, meta: dict[str, Any]) -> list[Path]:
    counts: dict[str, Any] = {
        "_meta": dict(
            versions=meta["mae_versions"] if models_mae is not None else meta["versions"],
            note="timm.create_model(name, pretrained=False) with default kwargs (num_classes=1000); "
            "official MAE named constructors. 'trainable' = requires_grad parameters; 'frozen' = "
            "MAE's fixed sin-cos pos_embed + decoder_pos_embed (nn.Parameter, requires_grad=False).",
        )
    }
    written = []
    layouts = {}
    for name in TIMM_COUNT_MODELS:
        torch.manual_seed(MODEL_SEED)
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        c = count(model)
        c["family"] = "vit" if name.startswith("vit") else "swin"
        counts[name] = c
        if name in KEY_LAYOUT_MODELS:
            layouts[name] = describe_state_dict(model)
        del model
        print(f"  {name}: {c['trainable']:,}", flush=True)
    if models_mae is not None:
        for name in MAE_COUNT_MODELS:
            torch.manual_seed(MODEL_SEED)
            model = getattr(models_mae, name)()
            c = count(model)
            c["family"] = "mae"
            c["fixed_pos_embed_elements"] = c["frozen"]
            c["encoder_trainable"] = sum(
                p.numel()
                for n, p in model.named_parameters()
                if p.requires_grad and not n.startswith(("decoder_", "mask_token"))
            )
            counts[name] = c
            if name in KEY_LAYOUT_MODELS:
                layouts[name] = describe_state_dict(model)
            del model
            print(f"  {name}: {c['trainable']:,} (+{c['frozen']:,} fixed)", flush=True)
    p = out_dir / "param_counts.json"
    write_json(p, counts)
    written.append(p)
    for name, layout in layouts.items():
        layout = dict(
            model=name,
            versions=meta["mae_versions" if name.startswith("mae") else "versions"],
            builder=("official models_mae." + name + "()")
            if name.startswith("mae")
            else f"timm.create_model({name!r}, pretrained=False)",
            **layout,
        )
        p = out_dir / "state_dict_keys" / f"{name}.json"
        write_json(p, layout)
        written.append(p)
    return written


# ----------------------------------------------------------------------------------------------
# pretrained preprocessing and predict (timm's resolve_data_config + create_transform)
# ----------------------------------------------------------------------------------------------

# the registered ViT / Swin names whose timm pretrained_cfg (default tag) goes to pretrained_cfgs.json
PRETRAINED_CFG_MODELS = TIMM_COUNT_MODELS + [
    "vit_tiny_patch16_384",
    "vit_small_patch16_384",
    "vit_large_patch16_384",
    "swin_large_patch4_window12_384",
]
# (label, model whose pretrained_cfg is used, data-config overrides): small crops keep the file small;
# the transform's steps are the same at 224
TRANSFORM_CASES = [
    ("vit", "vit_tiny_patch16_224", {"input_size": (3, 32, 32)}),
    ("vit_384", "vit_tiny_patch16_384", {"input_size": (3, 32, 32)}),
    ("swin", "swin_tiny_patch4_window7_224", {"input_size": (3, 32, 32)}),
    ("swin_bilinear", "swin_tiny_patch4_window7_224", {"input_size": (3, 24, 24), "interpolation": "bilinear"}),
    ("mae_squash", "swin_tiny_patch4_window7_224", {"input_size": (3, 32, 32), "crop_pct": 1.0, "crop_mode": "squash"}),
]
TRANSFORM_IMAGE_SIZES = [(48, 40), (37, 90), (20, 25), (33, 33)]  # (H, W): portrait, wide, smaller than the crop, odd
PREDICT_MODELS = {  # timm-initialised tiny classifiers with ImageNet's 1000 classes
    "vit": ("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)),
    "swin": (
        "swin_tiny_patch4_window7_224",
        dict(img_size=32, patch_size=4, window_size=4, embed_dim=8, depths=(1, 1), num_heads=(1, 2)),
    ),
}


def photo_like(height: int, width: int, gen) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients plus noise, so resizing filters have edges and texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + 2 * y) / 5)], axis=-1) * 200
    return np.clip(base + gen.integers(0, 56, size=(height, width, 3)), 0, 255).astype(np.uint8)


def make_pretrained_fixtures(torch, timm, out_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """pretrained_cfgs.json (the data config and hub file of each registered name's default weights),
    pretrained_transforms.npz (create_transform's output on fixed images) and predict/ (tiny
    timm-initialised classifiers as model.safetensors, a PNG, and timm's probabilities)."""
    from PIL import Image
    from safetensors.torch import save_file
    from timm.data import create_transform, resolve_data_config

    cfgs = {}
    for name in PRETRAINED_CFG_MODELS:
        pretrained_cfg = timm.models.get_pretrained_cfg(name).to_dict()
        config = resolve_data_config({}, pretrained_cfg=pretrained_cfg)
        cfgs[name] = {
            "hf_hub_id": pretrained_cfg["hf_hub_id"],
            "num_classes": pretrained_cfg["num_classes"],
            **torch_free(config),
        }
    written = [out_dir / "pretrained_cfgs.json"]
    write_json(written[-1], {"versions": meta["versions"], "models": cfgs})

    gen = np.random.default_rng(DATA_SEED)
    arrays: dict[str, np.ndarray] = {}
    cases = []
    for index, (height, width) in enumerate(TRANSFORM_IMAGE_SIZES):
        arrays[f"image/{index}"] = photo_like(height, width, gen)
    for label, model_name, overrides in TRANSFORM_CASES:
        config = resolve_data_config(overrides, pretrained_cfg=timm.models.get_pretrained_cfg(model_name).to_dict())
        transform = create_transform(**config)
        for index in range(len(TRANSFORM_IMAGE_SIZES)):
            arrays[f"{label}/{index}"] = to_np(transform(Image.fromarray(arrays[f"image/{index}"])))
        cases.append({"label": label, "config": torch_free(config)})
    arrays["config"] = np.array(json.dumps({"cases": cases, "versions": meta["versions"]}))
    written.append(out_dir / "pretrained_transforms.npz")
    write_npz(written[-1], arrays)

    predict_dir = out_dir / "predict"
    predict_dir.mkdir(parents=True, exist_ok=True)
    photo = predict_dir / "photo.png"
    Image.fromarray(photo_like(60, 44, gen)).save(photo, optimize=False)
    written.append(photo)
    references: dict[str, np.ndarray] = {}
    models = {}
    for label, (model_name, kwargs) in PREDICT_MODELS.items():
        torch.manual_seed(MODEL_SEED)
        model = timm.create_model(model_name, pretrained=False, **kwargs).eval()
        config = resolve_data_config({"input_size": (3, kwargs["img_size"], kwargs["img_size"])}, model=model)
        image = create_transform(**config)(Image.open(photo).convert("RGB"))
        with torch.no_grad():
            probabilities = model(image[None]).softmax(dim=-1)
        references[f"{label}/input"] = to_np(image)
        references[f"{label}/probabilities"] = to_np(probabilities[0])
        weights = predict_dir / f"{label}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights), metadata={"format": "pt"})
        written.append(weights)
        models[label] = {"model_name": model_name, "kwargs": torch_free(kwargs), "file": weights.name}
    references["config"] = np.array(json.dumps({"models": models, "versions": meta["versions"]}))
    written.append(predict_dir / "references.npz")
    write_npz(written[-1], references)
    return written


def torch_free(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Tuples -> lists, for JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--mae-src",
        type=Path,
        default=None,
        help="directory holding the official MAE models_mae.py and util/pos_embed.py "
        "(see tools/README.md); without it the MAE fixtures are skipped",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (tests/golden)")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="fixture names to make (default: all); 'counts', 'pos_embed_resample' and 'pretrained' name the "
        "non-model outputs",
    )
    ap.add_argument(
        "--no-verify",
        action="store_true",
        help="skip re-deriving every fixture with the NumPy reference (tools/golden/numpy_reference.py)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: reproducible)")
    args = ap.parse_args(argv)

    import timm
    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    models_mae, mae_commit = (None, None)
    if args.mae_src is not None:
        models_mae, mae_commit = import_mae(args.mae_src.resolve(), torch)
    else:
        print("warning: --mae-src not given, MAE fixtures and counts are skipped", file=sys.stderr)
    meta = dict(versions=versions(torch, timm, None), mae_versions=versions(torch, timm, mae_commit))

    want = set(args.only) if args.only else None
    out_dir = args.out
    written: list[Path] = []
    for cfg in vit_configs() + swin_configs():
        if want is None or cfg["name"] in want:
            written.append(make_classifier_fixture(cfg, torch, timm, out_dir, meta))
            print(f"wrote {written[-1]}", flush=True)
    if models_mae is not None:
        for cfg in mae_configs():
            if want is None or cfg["name"] in want:
                written.append(make_mae_fixture(cfg, torch, models_mae, out_dir, meta))
                print(f"wrote {written[-1]}", flush=True)
    if want is None or "pos_embed_resample" in want:
        written.append(make_resample_fixture(torch, out_dir, meta))
        print(f"wrote {written[-1]}", flush=True)
    if want is None or "pretrained" in want:
        written += make_pretrained_fixtures(torch, timm, out_dir, meta)
    if want is None or "counts" in want:
        torch.use_deterministic_algorithms(False)
        written += make_counts(torch, timm, models_mae, out_dir, meta)

    total = 0
    for p in written:
        size = p.stat().st_size
        total += size
        print(f"{size / 1024:9.1f} KiB  {p.relative_to(out_dir) if p.is_relative_to(out_dir) else p}")
    print(f"{total / 1024:9.1f} KiB  total")
    if not args.no_verify:
        print("NumPy reference check (tools/golden/numpy_reference.py):")
        print("\n".join("  " + line for line in verify(out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
