"""JAX / Flax ViT checkpoints (.npz) mapped to timm's ViT state_dict keys, as timm's `_load_weights`
(timm/models/vision_transformer.py) reads them.

Two layouts, each optionally under a prefix ('opt/target/', 'params/', 'params/img/'):

- the original ViT and AugReg release (google-research/vision_transformer): `embedding/kernel`
  (P, P, C, D), `cls` (1, 1, D), `Transformer/posembed_input/pos_embedding` (1, N, D), blocks
  `Transformer/encoderblock_{i}/` with LayerNorm_0, MultiHeadDotProductAttention_1, LayerNorm_2,
  MlpBlock_3, then `Transformer/encoder_norm`, `head`, and in some a `pre_logits` layer;
- big_vision (google-research/big_vision): a top-level `pos_embedding` that covers the patches only
  (a timm model with no_embed_class=True), blocks with LayerNorm_0, MultiHeadDotProductAttention_0,
  LayerNorm_1, MlpBlock_0, either one per `encoderblock_{i}` or all in one scanned
  `Transformer/encoderblock/` whose arrays carry the depth as their first axis.

Flax stores a Dense kernel as (in, out), PyTorch a Linear weight as (out, in); attention kernels keep
the heads apart: query/key/value (D, heads, head_dim), out (heads, head_dim, D). So:

    patch_embed.proj.weight = embedding/kernel transposed (3, 2, 0, 1)      (D, C, P, P)
    blocks.i.attn.qkv.weight = [query; key; value] each reshaped to (D, D) and transposed
    blocks.i.attn.proj.weight = out/kernel reshaped to (D, D) and transposed
    blocks.i.mlp.fcK.weight = Dense_{K-1}/kernel transposed

`pre_logits` (the ViT paper's representation layer before the head) is dropped, as timm does. Any
other entry under the prefix that this map has no place for (a hybrid ResNet stem, a MAP head, ...)
is an error; entries outside it (an optimizer's state, another tower) are ignored (timm ignores every
entry it does not read).
"""

from __future__ import annotations

import numpy as np

from .errors import CheckpointError

__all__ = ["big_vision_prefix", "big_vision_to_timm"]

_PREFIXES = ("", "opt/target/", "params/", "params/img/")


def big_vision_prefix(names) -> str | None:
    """The prefix under which `names` (an .npz's array names) hold a JAX ViT; None if they do not."""
    names = set(names)
    return next((prefix for prefix in _PREFIXES if f"{prefix}embedding/kernel" in names), None)


def big_vision_to_timm(arrays: dict, path) -> dict:
    """JAX ViT arrays (name -> array, as in the .npz) -> timm VisionTransformer state_dict."""
    prefix = big_vision_prefix(arrays)
    if prefix is None:
        raise CheckpointError(f"{path}: not a JAX ViT checkpoint: it has no embedding/kernel")
    try:
        return _convert(arrays, prefix, path)
    except CheckpointError:
        raise
    except (ValueError, IndexError) as error:  # an array of another rank or size than the layout's
        raise CheckpointError(f"{path}: a JAX ViT checkpoint with arrays of unexpected shapes ({error})") from error


def _convert(arrays: dict, prefix: str, path) -> dict:
    """The map itself; every array it takes is marked used, and any left over is an error."""
    used = set()

    def take(name: str, index: int | None = None) -> np.ndarray:
        key = prefix + name
        if key not in arrays:
            raise CheckpointError(f"{path}: incomplete JAX ViT checkpoint: it lacks {key!r}")
        used.add(key)
        return arrays[key] if index is None else arrays[key][index]

    big_vision = (
        prefix.startswith("params/")
        or f"{prefix}pos_embedding" in arrays
        or f"{prefix}Transformer/encoderblock/LayerNorm_0/scale" in arrays
    )
    kernel = take("embedding/kernel")
    if kernel.ndim != 4:
        raise CheckpointError(f"{path}: embedding/kernel has shape {kernel.shape}; expected (P, P, C, D)")
    state = {"patch_embed.proj.weight": kernel.transpose(3, 2, 0, 1), "patch_embed.proj.bias": take("embedding/bias")}
    if prefix + "cls" in arrays:
        state["cls_token"] = take("cls")
    state["pos_embed"] = take("pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding")
    state.update(_blocks(arrays, prefix, big_vision, take))
    if f"{prefix}Transformer/encoder_norm/scale" in arrays:
        state["norm.weight"] = take("Transformer/encoder_norm/scale")
        state["norm.bias"] = take("Transformer/encoder_norm/bias")
    if f"{prefix}head/kernel" in arrays:  # headless (feature) checkpoints have none
        state["head.weight"], state["head.bias"] = take("head/kernel").T, take("head/bias")
    used.update(name for name in arrays if name.startswith(prefix + "pre_logits/"))

    # other trees (an optimizer's 'opt/...', a text tower's 'params/txt/...') are not the ViT's
    left = sorted(name for name in arrays if name.startswith(prefix) and name not in used)
    if left:
        shown = ", ".join(left[:8]) + (f", ... ({len(left)} in all)" if len(left) > 8 else "")
        raise CheckpointError(f"{path}: JAX ViT entries that scratchvit's VisionTransformer has no place for: {shown}")
    return {name: np.ascontiguousarray(array) for name, array in state.items()}


def _blocks(arrays: dict, prefix: str, big_vision: bool, take) -> dict:
    """The encoder blocks: blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}."""
    attention, mlp, norm2 = (
        ("MultiHeadDotProductAttention_0", "MlpBlock_0", "LayerNorm_1")
        if big_vision
        else ("MultiHeadDotProductAttention_1", "MlpBlock_3", "LayerNorm_2")
    )
    scanned = f"{prefix}Transformer/encoderblock/LayerNorm_0/scale" in arrays
    if scanned:  # one set of arrays, the depth first
        depth = arrays[f"{prefix}Transformer/encoderblock/LayerNorm_0/scale"].shape[0]
    else:
        depth = 0
        while f"{prefix}Transformer/encoderblock_{depth}/LayerNorm_0/scale" in arrays:
            depth += 1
    state = {}
    for i in range(depth):
        block, index = ("Transformer/encoderblock/", i) if scanned else (f"Transformer/encoderblock_{i}/", None)

        def get(name: str, block=block, index=index) -> np.ndarray:
            return take(block + name, index)

        out = f"blocks.{i}."
        state[out + "norm1.weight"], state[out + "norm1.bias"] = get("LayerNorm_0/scale"), get("LayerNorm_0/bias")
        # query/key/value kernels (D, heads, head_dim) -> (D_in, D_out) -> transposed, stacked as q, k, v
        parts = ("query", "key", "value")
        state[out + "attn.qkv.weight"] = np.concatenate(
            [_flatten_from(get(f"{attention}/{part}/kernel"), 1).T for part in parts]
        )
        state[out + "attn.qkv.bias"] = np.concatenate([get(f"{attention}/{part}/bias").reshape(-1) for part in parts])
        # out kernel (heads, head_dim, D) -> (D, heads * head_dim): the output side first
        state[out + "attn.proj.weight"] = _flatten_from(get(f"{attention}/out/kernel").transpose(2, 0, 1), 1)
        state[out + "attn.proj.bias"] = get(f"{attention}/out/bias")
        state[out + "norm2.weight"], state[out + "norm2.bias"] = get(f"{norm2}/scale"), get(f"{norm2}/bias")
        for k in range(2):
            state[out + f"mlp.fc{k + 1}.weight"] = get(f"{mlp}/Dense_{k}/kernel").T
            state[out + f"mlp.fc{k + 1}.bias"] = get(f"{mlp}/Dense_{k}/bias")
    return state


def _flatten_from(array: np.ndarray, axis: int) -> np.ndarray:
    """Merge the axes from `axis` on into one (torch's flatten(axis))."""
    return array.reshape(*array.shape[:axis], -1)
