"""scratchvit's own checkpoints: one file holding everything a run needs to go on.

A checkpoint holds the model's state_dict, the model's registry name and constructor keywords
(so `load_checkpoint(path)` rebuilds the model alone), the optimizer's state, the schedule's
position, the epoch and step, the random generators' states, and any extra JSON the caller adds.

Two container formats, picked by the file name's suffix on save and sniffed from the bytes on load:

- `.safetensors` (safetensors.py, NumPy alone): the arrays as tensors, everything else as one JSON
  string in the header's `__metadata__` under "scratchvit". float16 arrays come back as float16.
- `.npz` (NumPy alone): the arrays as .npy members of a zip, everything else as one JSON string
  in the member `__scratchvit__`; read with allow_pickle=False, so loading runs no code.

A path without a suffix gets `.safetensors`.
In the JSON, each array stands as {"__array__": name}, its name the dotted path where it sat
("model.blocks.0.attn.qkv.weight", "optimizer.state.3.exp_avg").

Files are written atomically (files.write_atomically): a crash leaves the old file or the new one,
never half of one. They are read within bounds (files.py, npz.py): regular files only, within a
budget of decoded bytes, the metadata nested at most 64 levels deep; and the stored model keywords
never make a loader open another file (pretrained= is refused) nor build a model larger than the
file's weights (no number in them may exceed the count of numbers the weights hold).

Putting a checkpoint back into a model, optimizer and schedule (and rebuilding the model from its
name) is `scratchvit.models.load_checkpoint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import backend
from .errors import CheckpointError
from .files import load_json, read_head, write_atomically
from .npz import read_npz, zip_member_names
from .safetensors import dump_safetensors, read_safetensors, read_safetensors_header

FORMAT_NAME = "scratchvit-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "__scratchvit__"  # the npz member holding the JSON
SAFETENSORS_METADATA_KEY = "scratchvit"  # the key in the safetensors header's __metadata__
SUFFIXES = (".safetensors", ".npz")
_ARRAY_DTYPE_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_MAX_METADATA_DEPTH = 64
# create_model's keywords that load weights rather than shape the model: never taken from a file
_LOADING_KEYWORDS = ("pretrained",)


@dataclass
class Checkpoint:
    """What a checkpoint file holds. `model` is set by load_checkpoint (the model it loaded into
    or rebuilt); read_checkpoint leaves it None."""

    path: Path
    state_dict: dict
    model_name: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    model_class: str | None = None
    optimizer: dict | None = None
    schedule: dict | None = None
    epoch: int | None = None
    step: int | None = None
    rng_state: dict | None = None
    extra: dict = field(default_factory=dict)
    model: object = None


def _resolve_save_path(path) -> Path:
    path = Path(path)
    if path.suffix == "":
        return path.with_name(path.name + ".safetensors")
    if path.suffix not in SUFFIXES:
        raise ValueError(
            f"checkpoint path {str(path)!r} must end in .safetensors or .npz (or have no suffix), got {path.suffix!r}"
        )
    return path


# ---- JSON with arrays set aside --------------------------------------------------------------
def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or type(value).__module__.startswith("cupy")


def _split_arrays(value, name: str, arrays: dict):
    """`value` with every array replaced by {"__array__": name}; the arrays go into `arrays`."""
    if isinstance(value, np.generic):
        return value.item()
    if _is_array(value):
        array = np.require(backend.to_numpy(value), requirements="C")  # ascontiguousarray would make 0-d 1-d
        if array.dtype.kind not in _ARRAY_DTYPE_KINDS:
            raise TypeError(f"cannot save array {name!r} of dtype {array.dtype}: only bool, integer and float arrays")
        if name in arrays:
            raise ValueError(f"two arrays would be saved under the name {name!r}")
        arrays[name] = array
        return {"__array__": name}
    if isinstance(value, dict):
        return {str(key): _split_arrays(item, f"{name}.{key}", arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(item, f"{name}.{index}", arrays) for index, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"cannot save {name!r}: a {type(value).__name__} is neither an array nor JSON (number, str, list, dict)"
    )


def _join_arrays(value, arrays: dict, path: Path, depth: int = 0):
    """`value` with every {"__array__": name} replaced by arrays[name]; CheckpointError for a name the
    file lacks, or metadata nested deeper than _MAX_METADATA_DEPTH (ours nests about 5 levels)."""
    if depth > _MAX_METADATA_DEPTH:
        raise CheckpointError(
            f"{path}: damaged checkpoint: its metadata nests deeper than {_MAX_METADATA_DEPTH} levels"
        )
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            if value["__array__"] not in arrays:
                raise CheckpointError(
                    f"{path}: damaged checkpoint: its metadata names the array {value['__array__']!r}, "
                    "which the file lacks"
                )
            return arrays[value["__array__"]]
        return {key: _join_arrays(item, arrays, path, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_join_arrays(item, arrays, path, depth + 1) for item in value]
    return value


# ---- writing ---------------------------------------------------------------------------------
def _write_npz(file, arrays: dict, metadata_json: str) -> None:
    np.savez(file, **arrays, **{METADATA_KEY: np.array(metadata_json)})


def _write_safetensors(file, arrays: dict, metadata_json: str) -> None:
    dump_safetensors(file, arrays, metadata={SAFETENSORS_METADATA_KEY: metadata_json})


def save_checkpoint(
    path,
    model,
    optimizer=None,
    schedule=None,
    *,
    epoch: int | None = None,
    step: int | None = None,
    rng_state: bool = True,
    extra: dict | None = None,
) -> Path:
    """Write one checkpoint file, atomically; returns its path (a suffix is added when missing).

    model: a Module (its state_dict; its model_name / model_kwargs when made by create_model).
    optimizer, schedule: anything with state_dict(); rng_state: store backend.get_rng_state().
    extra: JSON-able values of the caller's (e.g. a training history).
    """
    path = _resolve_save_path(path)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model_name": getattr(model, "model_name", None),
        "model_kwargs": getattr(model, "model_kwargs", {}),
        "model_class": type(model).__name__,
        "model": dict(model.state_dict()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "schedule": None if schedule is None else schedule.state_dict(),
        "epoch": epoch,
        "step": step,
        "rng_state": backend.get_rng_state() if rng_state else None,
        "extra": extra or {},
    }
    arrays = {}
    metadata = {key: _split_arrays(value, key, arrays) for key, value in payload.items()}
    metadata_json = json.dumps(metadata, allow_nan=False)
    writer = _write_safetensors if path.suffix == ".safetensors" else _write_npz
    write_atomically(path, lambda file: writer(file, arrays, metadata_json))
    return path


# ---- reading ---------------------------------------------------------------------------------
def _sniff(path: Path) -> str:
    """ "npz" or "safetensors", from the first bytes; CheckpointError otherwise."""
    size, head = read_head(path, 9, "checkpoint")
    if head.startswith(b"PK"):
        return "npz"
    if len(head) == 9 and head[8:9] == b"{":
        header_length = int.from_bytes(head[:8], "little")
        if header_length + 8 > size:
            raise CheckpointError(
                f"{path}: truncated safetensors file: its header says {header_length} bytes, the file has {size}"
            )
        return "safetensors"
    raise CheckpointError(
        f"{path}: not a checkpoint: neither an .npz (zip) nor a safetensors file (it starts with {head[:8]!r})"
    )


def _read_npz(path: Path) -> tuple:
    names = zip_member_names(path)
    if f"{METADATA_KEY}.npy" not in names:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise CheckpointError(
            f"{path}: not a scratchvit checkpoint: the archive has no {METADATA_KEY!r} entry "
            f"(it holds: {shown or 'nothing'})"
        )
    arrays = read_npz(path)
    metadata = arrays.pop(METADATA_KEY)
    if metadata.dtype.kind != "U" or metadata.shape != ():
        raise CheckpointError(
            f"{path}: damaged checkpoint: its {METADATA_KEY!r} entry is a {metadata.dtype} array of shape "
            f"{metadata.shape}, not a string"
        )
    return str(metadata), arrays


def _read_safetensors(path: Path) -> tuple:
    _, metadata, _, _ = read_safetensors_header(path)
    if SAFETENSORS_METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path}: not a scratchvit checkpoint: a safetensors file without {SAFETENSORS_METADATA_KEY!r} "
            "in its metadata (plain weights? load them with create_model(..., pretrained=path))"
        )
    return metadata[SAFETENSORS_METADATA_KEY], read_safetensors(path, widen_half=False)


def read_checkpoint(path) -> Checkpoint:
    """Read a checkpoint file into a Checkpoint (arrays as NumPy); builds no model, touches no state.

    Raises CheckpointError naming the file for an empty, truncated, damaged or foreign file, or
    an array of a dtype other than bool, integer or float.
    """
    path = Path(path)
    metadata_json, arrays = (_read_npz if _sniff(path) == "npz" else _read_safetensors)(path)
    for name, array in arrays.items():
        if array.dtype.kind not in _ARRAY_DTYPE_KINDS:
            raise CheckpointError(
                f"{path}: array {name!r} has the unknown dtype {array.dtype} (expected bool, integer or float)"
            )
    metadata = load_json(metadata_json, path, "damaged checkpoint: its metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a scratchvit checkpoint: its metadata has no format {FORMAT_NAME!r}")
    if not isinstance(metadata.get("version"), int) or metadata["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {metadata.get('version')!r}; "
            f"this scratchvit reads versions up to {FORMAT_VERSION}"
        )
    content = _join_arrays(metadata, arrays, path)
    state_dict = content.get("model")
    if not (isinstance(state_dict, dict) and all(isinstance(array, np.ndarray) for array in state_dict.values())):
        raise CheckpointError(f"{path}: damaged checkpoint: it holds no model state_dict (a map of arrays)")
    return Checkpoint(
        path=path,
        state_dict=state_dict,
        model_name=_checked_model_name(content.get("model_name"), path),
        model_kwargs=_checked_model_kwargs(content.get("model_kwargs"), state_dict, path),
        model_class=content.get("model_class"),
        optimizer=content.get("optimizer"),
        schedule=content.get("schedule"),
        epoch=content.get("epoch"),
        step=content.get("step"),
        rng_state=content.get("rng_state"),
        extra=content.get("extra") or {},
    )


def _checked_model_name(name, path: Path):
    if name is not None and not isinstance(name, str):
        raise CheckpointError(f"{path}: damaged checkpoint: its model name is a {type(name).__name__}, not a string")
    return name


def _checked_model_kwargs(kwargs, state_dict: dict, path: Path) -> dict:
    """The stored model keywords, refused when they could make a loader open a file or allocate more than
    the file holds: create_model's loading keywords (pretrained=...), and any number larger than the
    count of numbers in the model's weights (a model with embed_dim D has at least D weights)."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(
            f"{path}: damaged checkpoint: its model keywords are a {type(kwargs).__name__}, not a map"
        )
    for key in _LOADING_KEYWORDS:
        if key in kwargs:
            raise CheckpointError(
                f"{path}: refused: its metadata gives the model keyword {key}={kwargs[key]!r}, which would load "
                "another file; a checkpoint's keywords may only shape the model"
            )
    weights = sum(array.size for array in state_dict.values())
    for key, value in kwargs.items():
        for number in _numbers(value):
            if abs(number) > weights:
                raise CheckpointError(
                    f"{path}: refused: its metadata asks for the model keyword {key}={value!r}, larger than the "
                    f"{weights:,} numbers its model weights hold: no such model fits this file (damaged or tampered)"
                )
    return kwargs


def _numbers(value) -> list:
    """The ints and floats in a keyword's value (a number, or a list of them, nested)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    return []
