"""A forward-only NumPy (float64) reading of the semantics in tests/golden/README.md.

DEV-ONLY, like the rest of tools/. It re-derives every fixture's forward outputs from the stored
parameters with NumPy alone, so it checks both the fixtures and the written notes: if a note in the
README is wrong, this file disagrees with timm / the official MAE code. It is no part of the
scratchvit package and is not meant to be fast.

    python tools/golden/numpy_reference.py [tests/golden]
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

_erf = np.vectorize(math.erf)


# -- position embeddings ----------------------------------------------------------------------


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution kernel with parameter a."""
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def resample_matrix(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out_size, in_size) weights of torch's 1-D bicubic resampling, align_corners=False.

    antialias=True : PIL-style separable filter, Keys cubic with a = -0.5, support 2*max(scale, 1),
                     taps at input pixels j with weight cubic((j - center + 0.5) / max(scale, 1)),
                     center = scale * (i + 0.5), taps cut to [0, in_size), weights renormalised to
                     sum 1 per output pixel.
    antialias=False: classic bicubic convolution, a = -0.75, 4 taps around
                     src = scale * (i + 0.5) - 0.5, indices clamped to the border (replicate).
    scale = in_size / out_size in both cases. 2-D resampling is separable: out = A_h X A_w^T.
    """
    scale = in_size / out_size
    weights = np.zeros((out_size, in_size), np.float64)
    if antialias:
        support = 2.0 * scale if scale >= 1.0 else 2.0
        invscale = 1.0 / scale if scale >= 1.0 else 1.0
        for i in range(out_size):
            center = scale * (i + 0.5)
            lo = max(int(center - support + 0.5), 0)
            hi = min(int(center + support + 0.5), in_size)
            taps = np.arange(lo, hi)
            w = _cubic((taps - center + 0.5) * invscale, -0.5)
            total = w.sum()
            weights[i, lo:hi] = w / total if total != 0 else w
    else:
        for i in range(out_size):
            src = scale * (i + 0.5) - 0.5
            x0 = math.floor(src)
            t = src - x0
            for k in range(-1, 3):
                weights[i, min(max(x0 + k, 0), in_size - 1)] += _cubic(np.array(t - k), -0.75)
    return weights


def mae_sincos_pos_embed(embed_dim: int, grid: int) -> np.ndarray:
    """Official MAE get_2d_sincos_pos_embed(embed_dim, grid, cls_token=True), as float32 (1, 1+G*G, D).

    Computed in float64 and cast once. Channels [0, D/2) encode the COLUMN (w) index, [D/2, D) the
    ROW (h) index; each half is [sin(pos * omega), cos(pos * omega)] with
    omega_k = 10000 ** (-k / (D/4)), k = 0 .. D/4 - 1. Row 0 (class token) is zeros.
    """

    def one(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.outer(pos, omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    emb = np.concatenate(
        [one(embed_dim // 2, cols.ravel().astype(np.float64)), one(embed_dim // 2, rows.ravel().astype(np.float64))],
        axis=1,
    )
    return np.concatenate([np.zeros((1, embed_dim)), emb])[None].astype(np.float32)


# -- layers -----------------------------------------------------------------------------------


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased variance
    return (x - mean) / np.sqrt(var + eps) * w + b


def linear(x, P, key):
    y = x @ P[key + ".weight"].T
    return y + P[key + ".bias"] if key + ".bias" in P else y


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))  # exact (erf) GELU


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def patch_embed(x, weight, bias):
    """Conv2d(kernel=stride=P) as one matmul: (B, C, H, W) -> (B, H/P, W/P, D). Patch vector in (C, P, P) order."""
    B, C, H, W = x.shape
    D, _, p, q = weight.shape
    patches = x.reshape(B, C, H // p, p, W // q, q).transpose(0, 2, 4, 1, 3, 5).reshape(B, H // p, W // q, -1)
    return patches @ weight.reshape(D, -1).T + bias


def attention(x, P, key, heads, bias=None):
    """qkv rows are [q | k | v], each split into heads contiguously. bias: additive, broadcast to logits."""
    B, N, _ = x.shape
    q, k, v = linear(x, P, key + ".qkv").reshape(B, N, 3, heads, -1).transpose(2, 0, 3, 1, 4)
    logits = (q * q.shape[-1] ** -0.5) @ k.swapaxes(-1, -2)
    if bias is not None:
        logits = logits + bias
    out = softmax(logits) @ v
    return linear(out.transpose(0, 2, 1, 3).reshape(B, N, -1), P, key + ".proj")


def mlp(x, P, key):
    return linear(gelu(linear(x, P, key + ".fc1")), P, key + ".fc2")


def vit_block(x, P, key, heads, eps):
    x = x + attention(layer_norm(x, P[key + ".norm1.weight"], P[key + ".norm1.bias"], eps), P, key + ".attn", heads)
    return x + mlp(layer_norm(x, P[key + ".norm2.weight"], P[key + ".norm2.bias"], eps), P, key + ".mlp")


# -- models -----------------------------------------------------------------------------------


def vit(z, P, cfg):
    kw, eps = cfg["kwargs"], 1e-6
    x = patch_embed(z["input"].astype(np.float64), P["patch_embed.proj.weight"], P["patch_embed.proj.bias"])
    B, gh, gw, D = x.shape
    prefix = 1 if kw["class_token"] else 0
    img = kw["img_size"] if isinstance(kw["img_size"], list) else [kw["img_size"]] * 2
    old = (img[0] // kw["patch_size"], img[1] // kw["patch_size"])
    pos = P["pos_embed"]
    if (gh, gw) != old:  # dynamic_img_size: bicubic, antialias=True, class-token row untouched
        grid = pos[0, prefix:].reshape(old[0], old[1], D)
        grid = np.einsum("ih,jw,hwd->ijd", resample_matrix(old[0], gh, True), resample_matrix(old[1], gw, True), grid)
        pos = np.concatenate([pos[:, :prefix], grid.reshape(1, -1, D)], axis=1)
    x = x.reshape(B, -1, D)
    if prefix:
        x = np.concatenate([np.broadcast_to(P["cls_token"], (B, 1, D)), x], axis=1)
    x = x + pos  # concat class token, then add
    for i in range(kw["depth"]):
        x = vit_block(x, P, f"blocks.{i}", kw["num_heads"], eps)
    if "norm.weight" in P:
        x = layer_norm(x, P["norm.weight"], P["norm.bias"], eps)
    features = x
    pooled = x[:, 0] if kw["global_pool"] == "token" else x[:, prefix:].mean(1)
    if "fc_norm.weight" in P:
        pooled = layer_norm(pooled, P["fc_norm.weight"], P["fc_norm.bias"], eps)
    return dict(features=features, pre_logits=pooled, output=linear(pooled, P, "head"))


def relative_position_index(wh, ww):
    coords = np.stack(np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")).reshape(2, -1)
    rel = coords[:, :, None] - coords[:, None, :]
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def window_partition(x, wh, ww):
    """(B, H, W, C) -> (B * nW, wh*ww, C); windows in row-major order, batch outermost."""
    B, H, W, C = x.shape
    return x.reshape(B, H // wh, wh, W // ww, ww, C).transpose(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, C)


def window_reverse(windows, wh, ww, H, W):
    C = windows.shape[-1]
    return windows.reshape(-1, H // wh, W // ww, wh, ww, C).transpose(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def shift_mask(Hp, Wp, wh, ww, sh, sw):
    """(nW, N, N) with 0 where two tokens share a region of the shifted grid, -100 elsewhere."""

    def regions(n, w, s):
        r = np.zeros(n, int)
        if s:  # an axis with shift 0 is not split
            r[n - w : n - s] = 1
            r[n - s :] = 2
        return r

    ids = regions(Hp, wh, sh)[:, None] * 3 + regions(Wp, ww, sw)[None, :]
    win = window_partition(ids[None, :, :, None].astype(np.float64), wh, ww)[..., 0]
    return np.where(win[:, None, :] != win[:, :, None], -100.0, 0.0)


def swin(z, P, cfg):
    kw, eps = cfg["kwargs"], 1e-5
    x = patch_embed(z["input"].astype(np.float64), P["patch_embed.proj.weight"], P["patch_embed.proj.bias"])
    x = layer_norm(x, P["patch_embed.norm.weight"], P["patch_embed.norm.bias"], eps)
    window = kw["window_size"]
    for s, (depth, heads) in enumerate(zip(kw["depths"], kw["num_heads"], strict=True)):
        if s > 0:  # PatchMerging at the START of stages 1..
            B, H, W, C = x.shape
            x = np.pad(x, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)))
            H, W = x.shape[1:3]
            # channel blocks: (h0,w0), (h1,w0), (h0,w1), (h1,w1)
            x = x.reshape(B, H // 2, 2, W // 2, 2, C).transpose(0, 1, 3, 4, 2, 5).reshape(B, H // 2, W // 2, 4 * C)
            key = f"layers.{s}.downsample"
            x = layer_norm(x, P[key + ".norm.weight"], P[key + ".norm.bias"], eps) @ P[key + ".reduction.weight"].T
        B, H, W, C = x.shape
        for i in range(depth):
            key = f"layers.{s}.blocks.{i}"
            wh, ww = min(H, window), min(W, window)
            sh = 0 if (i % 2 == 0 or H <= window) else window // 2
            sw = 0 if (i % 2 == 0 or W <= window) else window // 2
            h = layer_norm(x, P[key + ".norm1.weight"], P[key + ".norm1.bias"], eps)
            h = np.roll(h, (-sh, -sw), axis=(1, 2))
            ph, pw = (-H) % wh, (-W) % ww
            h = np.pad(h, ((0, 0), (0, ph), (0, pw), (0, 0)))  # zeros, after roll, not masked
            Hp, Wp = H + ph, W + pw
            windows = window_partition(h, wh, ww)
            N = wh * ww
            table = P[key + ".attn.relative_position_bias_table"]
            bias = table[relative_position_index(wh, ww).reshape(-1)].reshape(N, N, heads).transpose(2, 0, 1)
            bias = np.broadcast_to(bias[None], (windows.shape[0], heads, N, N))
            if sh or sw:
                mask = shift_mask(Hp, Wp, wh, ww, sh, sw)
                if f"buffer/{key}.attn_mask" in z.files:
                    assert np.array_equal(mask, z[f"buffer/{key}.attn_mask"]), key
                bias = (bias.reshape(B, -1, heads, N, N) + mask[None, :, None]).reshape(-1, heads, N, N)
            if f"buffer/{key}.attn.relative_position_index" in z.files:
                assert np.array_equal(
                    relative_position_index(wh, ww), z[f"buffer/{key}.attn.relative_position_index"]
                ), key
            out = window_reverse(attention(windows, P, key + ".attn", heads, bias), wh, ww, Hp, Wp)[:, :H, :W]
            x = x + np.roll(out, (sh, sw), axis=(1, 2))
            x = x + mlp(layer_norm(x, P[key + ".norm2.weight"], P[key + ".norm2.bias"], eps), P, key + ".mlp")
    features = layer_norm(x, P["norm.weight"], P["norm.bias"], eps)
    pooled = features.mean((1, 2))
    return dict(features=features, pre_logits=pooled, output=linear(pooled, P, "head.fc"))


def mae(z, P, cfg):
    kw, eps = cfg["kwargs"], 1e-6
    imgs = z["input"].astype(np.float64)
    p, B = kw["patch_size"], imgs.shape[0]
    G = kw["img_size"] // p
    L = G * G
    assert np.array_equal(mae_sincos_pos_embed(kw["embed_dim"], G), z["param/pos_embed"])
    assert np.array_equal(mae_sincos_pos_embed(kw["decoder_embed_dim"], G), z["param/decoder_pos_embed"])
    x = patch_embed(imgs, P["patch_embed.proj.weight"], P["patch_embed.proj.bias"]).reshape(B, L, -1)
    x = x + P["pos_embed"][:, 1:]
    keep = int(L * (1 - float(z["mask_ratio"])))
    ids_shuffle = np.argsort(z["noise"], axis=1, kind="stable")  # ascending: small noise is kept
    ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
    x = np.take_along_axis(x, ids_shuffle[:, :keep, None], axis=1)
    mask = np.ones((B, L))
    mask[:, :keep] = 0
    mask = np.take_along_axis(mask, ids_restore, axis=1)  # 0 keep, 1 removed
    cls = P["cls_token"] + P["pos_embed"][:, :1]
    x = np.concatenate([np.broadcast_to(cls, (B, 1, x.shape[-1])), x], axis=1)
    for i in range(kw["depth"]):
        x = vit_block(x, P, f"blocks.{i}", kw["num_heads"], eps)
    latent = layer_norm(x, P["norm.weight"], P["norm.bias"], eps)
    y = linear(latent, P, "decoder_embed")
    rest = np.concatenate([y[:, 1:], np.broadcast_to(P["mask_token"], (B, L - keep, y.shape[-1]))], axis=1)
    rest = np.take_along_axis(rest, ids_restore[:, :, None], axis=1)
    y = np.concatenate([y[:, :1], rest], axis=1) + P["decoder_pos_embed"]
    for i in range(kw["decoder_depth"]):
        y = vit_block(y, P, f"decoder_blocks.{i}", kw["decoder_num_heads"], eps)
    y = layer_norm(y, P["decoder_norm.weight"], P["decoder_norm.bias"], eps)
    pred = linear(y, P, "decoder_pred")[:, 1:]
    # patchify: 'nchpwq->nhwpqc', patch vector in (p, q, c) order
    target = imgs.reshape(B, 3, G, p, G, p).transpose(0, 2, 4, 3, 5, 1).reshape(B, L, p * p * 3)
    if kw["norm_pix_loss"]:
        var = target.var(-1, ddof=1, keepdims=True)  # unbiased
        target = (target - target.mean(-1, keepdims=True)) / np.sqrt(var + 1e-6)
    loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    return dict(ids_restore=ids_restore, mask=mask, latent=latent, target=target, pred=pred, loss=np.array(loss))


FAMILIES: dict[str, Callable] = dict(vit=vit, swin=swin, mae=mae)


def check_resample(z) -> float:
    cfg = json.loads(str(z["config"]))
    worst = 0.0
    for case in cfg["cases"]:
        name, old, new = case["name"], case["old_size"], case["new_size"]
        grid = z[f"{name}/input"][0, 1:].astype(np.float64).reshape(old[0], old[1], -1)
        for tag, aa in (("aa", True), ("noaa", False)):
            out = np.einsum(
                "ih,jw,hwd->ijd", resample_matrix(old[0], new[0], aa), resample_matrix(old[1], new[1], aa), grid
            ).reshape(-1, grid.shape[-1])
            ref = z[f"{name}/{tag}"][0, 1:]
            worst = max(worst, float(np.abs(out - ref).max() / np.abs(ref).max()))
    return worst


def verify(golden_dir: Path, tol: float = 1e-5) -> list[str]:
    """Return one line per checked quantity; raise AssertionError if any is off by more than tol."""
    lines, bad = [], []
    for path in sorted(golden_dir.glob("*.npz")):
        z = np.load(path, allow_pickle=False)
        if path.stem == "pos_embed_resample":
            err = check_resample(z)
            lines.append(f"{path.stem:24s} {'all cases':12s} rel err {err:.1e}")
            bad += [path.stem] if err > tol else []
            continue
        cfg = json.loads(str(z["config"]))
        P = {k[len("param/") :]: z[k].astype(np.float64) for k in z.files if k.startswith("param/")}
        for key, ours in FAMILIES[cfg["family"]](z, P, cfg).items():
            ref = z[key]
            err = float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12))
            lines.append(f"{path.stem:24s} {key:12s} rel err {err:.1e}")
            if err > tol:
                bad.append(f"{path.stem}:{key}")
    if bad:
        raise AssertionError("NumPy reference disagrees with the fixtures: " + ", ".join(bad))
    return lines


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests" / "golden"
    print("\n".join(verify(target)))
