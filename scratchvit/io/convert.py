"""Foreign weights into scratchvit models: read any supported file, map its keys to the model's family,
resample what depends on the image or window size, and load strictly. And the way back out: a
checkpoint converted to a timm-keyed safetensors file.

Formats are told apart by their bytes, never by the file's name:
    zip with <folder>/data.pkl   a torch.save checkpoint (.pth/.pt/.bin), torch_zip.py
    zip of .npy members          scratchvit's own checkpoint (checkpoint.py) when it holds __scratchvit__,
                                 a JAX ViT (big_vision.py) when it holds embedding/kernel,
                                 else arrays named by state_dict keys (np.savez(path, **state_dict))
    8-byte length + "{"          safetensors (safetensors_file.py); scratchvit's own when its metadata says so
    a pickle                     refused: legacy (torch < 1.6) checkpoints and plain pickles can run code

Unwrapping (torch files): the state_dict is the dict whose entries are all tensors; around it, the
first of WRAPPER_KEYS that holds a dict is taken, again and again: {'model': ...} (official MAE, Swin,
DeiT), {'state_dict': ..., 'state_dict_ema': ...} (timm's training checkpoints: the plain weights,
not the EMA ones). A 'module.' prefix on every key (DataParallel) is removed.

Key maps, by the family of the model loaded into:
    VisionTransformer   timm's keys. The official MAE pre-training checkpoint: its encoder keys are
                        timm's; decoder_* and mask_token are dropped. The official MAE fine-tuned
                        classifier (models_vit.py, global_pool=True) has timm's keys with fc_norm and
                        no norm: timm's global_pool='avg' layout. pre_logits.* is dropped, as timm does.
    SwinTransformer     timm >= 0.9 keys. The official layout (microsoft/Swin-Transformer), detected
                        as timm does by layers.0.downsample.reduction.weight: patch merging closes
                        stage i there and opens stage i + 1 in timm (layers.i.downsample ->
                        layers.{i+1}.downsample), head.* -> head.fc.*. The relative_position_index and
                        attn_mask buffers are dropped (rebuilt from the sizes). PatchMerging's norm and
                        reduction keep their names, and both concatenate the 2x2 neighbours in the same
                        order (x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]), so no
                        weight is permuted.
    MaskedAutoencoderViT the official MAE keys, as they are.

Resampling on load, as each format's reference loader does:
    ViT pos_embed, when the checkpoint has another number of positions: the class (prefix) rows kept,
        the square grid resampled to the model's. torch / safetensors / own / plain .npz follow timm's
        checkpoint_filter_fn (bicubic, antialiased); JAX .npz timm's _load_weights (bilinear, not
        antialiased); an MAE pre-training checkpoint the official interpolate_pos_embed (bicubic, not
        antialiased). The position grid of a checkpoint is assumed square, as timm assumes.
    Swin relative_position_bias_table, when the window differs: timm's resize_rel_pos_bias_table,
        which is BEiT's: the source's relative offsets are spread out on a geometric progression that
        reaches the new table's edge, and the new table is read off that grid by linear interpolation
        (timm's default; its TIMM_USE_SCIPY_INTERP=1 path, scipy's cubic interp2d, is not followed).
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np

from .. import backend
from ..models.pos_embed import interpolation_matrix
from ..models.registry import create_model
from ..models.swin import SwinTransformer, WindowAttention
from ..models.vit import VisionTransformer
from .big_vision import big_vision_prefix, big_vision_to_timm
from .checkpoint import METADATA_KEY, SAFETENSORS_METADATA_KEY, read_checkpoint, read_head
from .errors import CheckpointError
from .safetensors_file import read_safetensors, read_safetensors_header, require_safetensors, write_safetensors
from .torch_zip import is_legacy_torch, read_torch_zip

__all__ = [
    "WRAPPER_KEYS", "adapt_state_dict", "convert_checkpoint", "load_pretrained", "read_state_dict",
    "resample_pos_embed", "resize_relative_position_bias_table", "unwrap_state_dict",
]  # fmt: skip

# the dict entries that hold a state_dict, in the order they are looked for (plain weights before EMA)
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats


# ---- reading ------------------------------------------------------------------------------------
def read_state_dict(path) -> tuple:
    """(state_dict: name -> NumPy array, format) from a weights file of any supported format.

    format: "torch", "safetensors", "big_vision" (a JAX ViT .npz, keys already mapped to timm's),
    "npz" (plain arrays) or "scratchvit" (our own checkpoint: its model weights).
    Raises CheckpointError naming the file and what is wrong with it.
    """
    path = Path(path)
    _, head = read_head(path, 16, "weights")
    if head.startswith(b"PK"):
        return _read_zip(path)
    if head[8:9] == b"{":
        _, metadata, _, _ = read_safetensors_header(path)
        if SAFETENSORS_METADATA_KEY in metadata:
            return read_checkpoint(path).state_dict, "scratchvit"
        return _checked(read_safetensors(path), path), "safetensors"
    if is_legacy_torch(head):
        raise CheckpointError(
            f"{path}: a torch checkpoint in the legacy format (torch < 1.6, not a zip), which scratchvit does not "
            "read: re-save it with a recent torch, torch.save(torch.load(old_path), new_path)"
        )
    if head.startswith(b"\x80"):
        raise CheckpointError(f"{path}: a plain pickle, which scratchvit does not load (unpickling it could run code)")
    raise CheckpointError(
        f"{path}: not a weights file scratchvit reads (it starts with {head[:8]!r}): expected a torch.save zip "
        "(.pth/.pt/.bin), a safetensors file or an .npz"
    )


def _read_zip(path: Path) -> tuple:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: a truncated or damaged zip archive ({error})") from error
    if f"{METADATA_KEY}.npy" in names:
        return read_checkpoint(path).state_dict, "scratchvit"
    if names and all(name.endswith(".npy") for name in names):
        arrays = _read_npz(path)
        if big_vision_prefix(arrays) is not None:
            return big_vision_to_timm(arrays, path), "big_vision"
        return arrays, "npz"
    # a torch.save archive, or the reader's error saying what else the zip is
    return unwrap_state_dict(read_torch_zip(path), path), "torch"


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # zipfile, zlib and numpy's format checks raise many kinds
        raise CheckpointError(
            f"{path}: cannot read it as .npz, truncated or damaged ({type(error).__name__}: {error})"
        ) from error
    return _checked(arrays, path)


def _checked(arrays: dict, path) -> dict:
    for name, array in arrays.items():
        if array.dtype.kind not in _ARRAY_KINDS:
            raise CheckpointError(
                f"{path}: entry {name!r} has the unsupported dtype {array.dtype} (expected float, int or bool)"
            )
    return arrays


def unwrap_state_dict(content, path) -> dict:
    """The state_dict inside what a torch checkpoint holds (see WRAPPER_KEYS); CheckpointError if none."""
    while isinstance(content, dict) and not (content and all(isinstance(v, np.ndarray) for v in content.values())):
        key = next((key for key in WRAPPER_KEYS if isinstance(content.get(key), dict)), None)
        if key is None:
            others = (f"{k!r} is a {type(v).__name__}" for k, v in content.items() if not isinstance(v, np.ndarray))
            other = next(others, "it is empty")
            raise CheckpointError(
                f"{path}: no state_dict found: the dict is not all tensors ({other}) and none of "
                f"{', '.join(WRAPPER_KEYS)} holds one"
            )
        content = content[key]
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, not a state_dict (a dict of tensors)")
    if all(isinstance(name, str) and name.startswith("module.") for name in content):  # saved from DataParallel
        content = {name[len("module.") :]: array for name, array in content.items()}
    return _checked(dict(content), path)


# ---- key maps and resampling ---------------------------------------------------------------------
def adapt_state_dict(state: dict, model, source: str = "torch", path="state_dict") -> dict:
    """`state` with the key map of `model`'s family applied and its position tables resampled to the
    model's sizes (see the module's docstring). source: the format read_state_dict named."""
    if isinstance(model, SwinTransformer):
        return _adapt_swin(state, model, path)
    if isinstance(model, VisionTransformer):
        return _adapt_vit(state, model, source, path)
    return dict(state)


def _is_mae_pretraining(state: dict) -> bool:
    return "mask_token" in state or any(name.startswith("decoder_") for name in state)


def _adapt_vit(state: dict, model: VisionTransformer, source: str, path) -> dict:
    mae = _is_mae_pretraining(state)
    dropped = ("decoder_", "mask_token", "pre_logits.") if mae else ("pre_logits.",)
    state = {name: array for name, array in state.items() if not name.startswith(dropped)}
    pos_embed, target = state.get("pos_embed"), model.pos_embed
    if (pos_embed is not None and target is not None and pos_embed.ndim == 3
            and pos_embed.shape[1] != target.shape[1] and pos_embed.shape[2] == target.shape[2]):  # fmt: skip
        if source == "big_vision":
            interpolation, antialias = "bilinear", False  # timm's _load_weights
        else:  # timm's checkpoint_filter_fn; the official MAE interpolate_pos_embed is not antialiased
            interpolation, antialias = "bicubic", not mae
        prefix = 0 if model.no_embed_class else model.num_prefix_tokens
        try:
            state["pos_embed"] = resample_pos_embed(pos_embed, model.patch_embed.grid_size, prefix, interpolation,
                                                    antialias)  # fmt: skip
        except ValueError as error:
            raise CheckpointError(f"{path}: cannot resample pos_embed {pos_embed.shape}: {error}") from error
    return state


def _adapt_swin(state: dict, model: SwinTransformer, path) -> dict:
    official = "layers.0.downsample.reduction.weight" in state  # timm's test: timm's stage 0 never merges
    out = {}
    for name, array in state.items():
        if name.endswith(("relative_position_index", "attn_mask")):
            continue  # buffers, rebuilt from the window and image sizes
        if official:
            name = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", name)
            name = re.sub(r"^head\.", "head.fc.", name)
        out[name] = array
    for module_name, module in model.named_modules():
        if not isinstance(module, WindowAttention):
            continue
        name = f"{module_name}.relative_position_bias_table"
        table, target = out.get(name), module.relative_position_bias_table
        if table is not None and table.ndim == 2 and table.shape[1] == target.shape[1] and table.shape != target.shape:
            try:
                out[name] = resize_relative_position_bias_table(table, module.window_size)
            except ValueError as error:
                raise CheckpointError(f"{path}: cannot resize {name} {table.shape}: {error}") from error
    return out


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) weights of PyTorch's 1-D bilinear resize (align_corners=False, no antialias):
    src = max((i + 0.5) * in/out - 0.5, 0) between its two neighbours, the upper one clamped."""
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    fraction = source - lower
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, lower), 1.0 - fraction)
    np.add.at(matrix, (rows, upper), fraction)
    return matrix


def resample_pos_embed(pos_embed: np.ndarray, new_size, num_prefix_tokens: int, interpolation: str = "bicubic",
                       antialias: bool = True) -> np.ndarray:  # fmt: skip
    """(1, prefix + g*g, D) -> (1, prefix + h*w, D): the prefix (class token) rows kept, the square g x g
    grid resized to new_size = (h, w) as torch's F.interpolate(mode=interpolation, align_corners=False,
    antialias=antialias) would (bicubic: models.pos_embed.interpolation_matrix). ValueError if the
    grid is not square."""
    _, tokens, dim = pos_embed.shape
    side = math.isqrt(max(tokens - num_prefix_tokens, 0))
    if side == 0 or side * side != tokens - num_prefix_tokens:
        raise ValueError(f"its {tokens} rows less {num_prefix_tokens} prefix rows are not a square grid")
    new_h, new_w = new_size
    if interpolation == "bilinear":
        rows, columns = _bilinear_matrix(side, new_h), _bilinear_matrix(side, new_w)
    elif interpolation == "bicubic":
        rows, columns = interpolation_matrix(side, new_h, antialias), interpolation_matrix(side, new_w, antialias)
    else:
        raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}")
    grid = pos_embed[0, num_prefix_tokens:].reshape(side, side, dim).astype(np.float64)
    grid = np.einsum("ih,hwd,jw->ijd", rows, grid, columns).reshape(1, new_h * new_w, dim)
    return np.concatenate([pos_embed[:, :num_prefix_tokens], grid.astype(pos_embed.dtype)], axis=1)


def _geometric_offsets(source: int, target: int) -> np.ndarray:
    """BEiT's positions for the `source` relative offsets -(s//2)..s//2 of a table side: steps growing
    by a ratio q found by bisection so the outermost lands near target // 2 (timm's `_calc`)."""
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        ratio = (left + right) / 2.0
        if (1.0 - ratio ** (source // 2)) / (1.0 - ratio) > target // 2:  # 1 + q + ... + q^(n-1)
            right = ratio
        else:
            left = ratio
    steps = np.cumsum([1.0] + [ratio ** (i + 1) for i in range(source // 2 - 1)]) if source // 2 else np.zeros(0)
    return np.concatenate([-steps[::-1], [0.0], steps])


def _linear_matrix(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(targets), len(points)) weights of 1-D linear interpolation on sorted, unevenly spaced
    points, clamped outside them: timm's RegularGridInterpolator along one axis."""
    upper = np.minimum(np.searchsorted(points, targets, side="left"), len(points) - 1)
    lower = np.clip(upper - 1, 0, len(points) - 1)
    to_lower = np.maximum(targets - points[lower], 0.0)
    to_upper = np.maximum(points[upper] - targets, 0.0)
    both_zero = (to_lower == 0) & (to_upper == 0)  # on a point at the edge: half and half of one value
    to_lower[both_zero], to_upper[both_zero] = 1.0, 1.0
    matrix = np.zeros((len(targets), len(points)))
    rows = np.arange(len(targets))
    np.add.at(matrix, (rows, lower), to_upper / (to_lower + to_upper))
    np.add.at(matrix, (rows, upper), to_lower / (to_lower + to_upper))
    return matrix


def resize_relative_position_bias_table(table: np.ndarray, new_window_size) -> np.ndarray:
    """((2M-1)^2, heads) -> ((2Mh'-1)(2Mw'-1), heads), timm's resize_rel_pos_bias_table: each head's
    (2M-1) x (2M-1) table of relative offsets, its rows and columns placed by _geometric_offsets, read
    at the new integer offsets -(2Mh'-1)//2 .. (2Mh'-1)//2 by linear interpolation (separable).
    The source window is assumed square (ValueError otherwise), as timm assumes."""
    new_h, new_w = 2 * new_window_size[0] - 1, 2 * new_window_size[1] - 1
    length, heads = table.shape
    side = math.isqrt(length)
    if side * side != length:
        raise ValueError(f"{length} rows are not the table of a square window")
    if (side, side) == (new_h, new_w):
        return table
    rows = _linear_matrix(_geometric_offsets(side, new_h), np.arange(new_h, dtype=np.float64) - new_h // 2)
    columns = _linear_matrix(_geometric_offsets(side, new_w), np.arange(new_w, dtype=np.float64) - new_w // 2)
    grid = table.T.reshape(heads, side, side).astype(np.float64)  # [head, dy, dx]
    resized = np.einsum("ih,nhw,jw->nij", rows, grid, columns)
    return resized.reshape(heads, new_h * new_w).T.astype(table.dtype)


# ---- loading and converting ---------------------------------------------------------------------
def load_pretrained(model, path):
    """Load the weights file at `path` into `model` (strictly), whatever its format; returns the model.

    The format is sniffed from the bytes, the state_dict unwrapped, the key map of the model's family
    applied, position tables resampled to the model's sizes (module docstring). A checkpoint of
    another model raises CheckpointError naming the file and every missing, unexpected and wrongly
    shaped key, with a hint where the cause is a common one (num_classes, global_pool, MAE encoder).
    """
    path = Path(path)
    state, source = read_state_dict(path)
    state = adapt_state_dict(state, model, source, path)
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as error:
        hints = "".join(f"\n  hint: {hint}" for hint in _hints(state, model))
        raise CheckpointError(f"{path}: a {source} checkpoint that does not fit this model: {error}{hints}") from error
    return model


def _hints(state: dict, model) -> list:
    """Likely causes of a failed load, in words."""
    hints = []
    targets = model.state_dict()
    for name in ("head.weight", "head.fc.weight"):  # ViT's classifier, Swin's
        if name in targets and name not in state:
            hints.append("the checkpoint has no classifier (e.g. an MAE encoder): build the model with num_classes=0")
        elif name in targets and state[name].ndim and state[name].shape[0] != targets[name].shape[0]:
            classes = state[name].shape[0]
            hints.append(f"its classifier has {classes} classes: build the model with num_classes={classes} "
                         "(and replace the head afterwards)")  # fmt: skip
    if "fc_norm.weight" in state and "fc_norm.weight" not in targets:
        hints.append("it normalises after average pooling (fc_norm, as an MAE fine-tuned ViT): build the model "
                     "with global_pool='avg'")  # fmt: skip
    if "norm.weight" in state and "norm.weight" not in targets and "fc_norm.weight" in targets:
        hints.append("it normalises before pooling (norm): build the model with global_pool='token' or fc_norm=False")
    if "decoder_embed.weight" in targets and "decoder_embed.weight" not in state:
        hints.append("the checkpoint holds no MAE decoder (the released mae_pretrain_vit_*.pth hold the encoder "
                     "only): load it into a VisionTransformer with num_classes=0")  # fmt: skip
    return hints


def convert_checkpoint(src, dst, model_name: str, **model_kwargs) -> Path:
    """Read the weights file `src` (any format load_pretrained reads) into create_model(model_name,
    **model_kwargs) and write its state_dict, timm's keys, to the safetensors file `dst` (atomically,
    metadata {"format": "pt"} as timm / the Hugging Face hub write it). Returns dst as a Path.

    Needs the safetensors package (pip install 'scratchvit[io]'). E.g. an official Swin .pth, or an
    AugReg .npz, becomes a file timm's and scratchvit's `pretrained=` load as they are.
    """
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"dst must be a .safetensors path, got {str(dst)!r}")
    require_safetensors()  # before the (possibly long) load
    model = create_model(model_name, pretrained=src, **model_kwargs)
    state = {name: backend.to_numpy(array) for name, array in model.state_dict().items()}
    return write_safetensors(dst, state, metadata={"format": "pt"})
