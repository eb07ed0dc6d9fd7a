"""Weights files of any supported format read into one state_dict (name -> NumPy array): the format
told apart by the file's bytes, and the state_dict unwrapped from what a training script saved around
it. Mapping the keys to a model family and loading them is `scratchvit.models.pretrained`.

Formats are told apart by their bytes, never by the file's name:
    zip with <folder>/data.pkl   a torch.save checkpoint (.pth/.pt/.bin), torch_zip.py
    zip of .npy members          scratchvit's own checkpoint (checkpoint.py) when it holds __scratchvit__,
                                 a JAX ViT (big_vision.py) when it holds embedding/kernel,
                                 else arrays named by state_dict keys (np.savez(path, **state_dict))
    8-byte length + "{"          safetensors (safetensors.py); scratchvit's own when its metadata says so
    a pickle                     refused: legacy (torch < 1.6) checkpoints and plain pickles can run code

Unwrapping (torch files): the state_dict is the dict whose entries are all tensors; around it, the
first of WRAPPER_KEYS that holds a dict is taken, again and again: {'model': ...} (official MAE, Swin,
DeiT), {'state_dict': ..., 'state_dict_ema': ...} (timm's training checkpoints: the plain weights,
not the EMA ones). A 'module.' prefix on every key (DataParallel) is removed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .big_vision import big_vision_prefix, big_vision_to_timm
from .checkpoint import METADATA_KEY, SAFETENSORS_METADATA_KEY, read_checkpoint
from .errors import CheckpointError
from .files import read_head
from .npz import read_npz, zip_member_names
from .safetensors import read_safetensors, read_safetensors_header
from .torch_zip import is_legacy_torch, read_torch_zip

__all__ = ["WRAPPER_KEYS", "read_state_dict", "unwrap_state_dict"]

# the dict entries that hold a state_dict, in the order they are looked for (plain weights before EMA)
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats


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
    names = zip_member_names(path)
    if f"{METADATA_KEY}.npy" in names:
        return read_checkpoint(path).state_dict, "scratchvit"
    if names and all(name.endswith(".npy") for name in names):
        arrays = _checked(read_npz(path), path)
        if big_vision_prefix(arrays) is not None:
            return big_vision_to_timm(arrays, path), "big_vision"
        return arrays, "npz"
    # a torch.save archive, or the reader's error saying what else the zip is
    return unwrap_state_dict(read_torch_zip(path), path), "torch"


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
