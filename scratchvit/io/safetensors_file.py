"""safetensors files (https://github.com/huggingface/safetensors), as timm and the Hugging Face hub
publish weights: read with NumPy alone, written with the `safetensors` package.

The format: 8 bytes, the little-endian length n of a JSON header; n bytes of JSON mapping each
tensor's name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (byte offsets into
the data that follows the header) plus an optional "__metadata__" of strings; then the data,
little-endian, C order.

The reader is written here rather than taken from `safetensors.numpy`, because that refuses
bfloat16 (NumPy has no such dtype) and timm publishes bfloat16 weights. float16 and bfloat16 tensors
come back widened to float32: bfloat16 is the top 16 bits of a float32, so widening is a shift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import write_atomically
from .errors import CheckpointError

__all__ = [
    "bfloat16_to_float32",
    "read_safetensors",
    "read_safetensors_header",
    "require_safetensors",
    "write_safetensors",
]

# the format's dtype names -> NumPy (little-endian); BF16 is read as its raw 16 bits
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}  # fmt: skip
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors package sets
INSTALL_HINT = "pip install 'scratchvit[io]' (or pip install safetensors)"


def bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """uint16 bit patterns of bfloat16 numbers -> float32 (exact: the bits become the top half)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_safetensors_header(path) -> tuple:
    """(tensor entries: {name: {"dtype", "shape", "data_offsets"}}, metadata: dict, data start, file size).

    Checks the header's structure and that every tensor lies inside the file; raises CheckpointError
    naming the file otherwise.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such safetensors file") from None
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise CheckpointError(
                f"{path}: not a safetensors file: {size} bytes, shorter than the 8-byte header length"
            )
        header_length = int.from_bytes(prefix, "little")
        if header_length > min(size - 8, _MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{path}: truncated or not a safetensors file: the header length says {header_length} bytes, "
                f"the file has {size - 8} after it"
            )
        header_bytes = file.read(header_length)
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: damaged safetensors file: its header is not JSON ({error})") from error
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: damaged safetensors file: its header is a {type(header).__name__}, not a map")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: damaged safetensors header: __metadata__ is a {type(metadata).__name__}")
    data_start = 8 + header_length
    for name, entry in header.items():
        _check_entry(path, name, entry, size - data_start)
    return header, metadata, data_start, size


def _check_entry(path: Path, name: str, entry, data_size: int) -> None:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise CheckpointError(f"{path}: damaged safetensors header: tensor {name!r} lacks dtype, shape or data_offsets")
    if entry["dtype"] not in _DTYPES:
        raise CheckpointError(
            f"{path}: tensor {name!r} has the unsupported dtype {entry['dtype']} "
            f"(scratchvit reads {', '.join(_DTYPES)})"
        )
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise CheckpointError(f"{path}: damaged safetensors header: tensor {name!r} has the shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise CheckpointError(f"{path}: damaged safetensors header: tensor {name!r} has data_offsets {offsets!r}")
    begin, end = offsets
    expected = int(np.prod(shape, dtype=np.int64)) * _DTYPES[entry["dtype"]].itemsize
    if not 0 <= begin <= end or end - begin != expected:
        raise CheckpointError(
            f"{path}: damaged safetensors header: tensor {name!r} of shape {shape} {entry['dtype']} needs "
            f"{expected} bytes, its data_offsets {offsets} give {end - begin}"
        )
    if end > data_size:
        raise CheckpointError(
            f"{path}: truncated safetensors file: tensor {name!r} ends at byte {end} of the data, "
            f"which has {data_size} bytes"
        )


def read_safetensors(path) -> dict:
    """name -> NumPy array, in the file's order; float16 and bfloat16 widened to float32.

    Needs no package. Raises CheckpointError naming the file if it is truncated or damaged, or holds
    a dtype other than the float, integer and bool ones (e.g. the float8 types).
    """
    path = Path(path)
    header, _, data_start, size = read_safetensors_header(path)
    if size == data_start:  # nothing but a header (every tensor empty): np.memmap refuses empty files
        return {name: _widened(np.zeros(e["shape"], _DTYPES[e["dtype"]]), e["dtype"]) for name, e in header.items()}
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start)
    arrays = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arrays[name] = _widened(data[begin:end].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"]), entry["dtype"])
    del data  # every array is a copy, so the file closes
    return arrays


def _widened(raw: np.ndarray, dtype_name: str) -> np.ndarray:
    """A copy of `raw` in native byte order, float16 and bfloat16 widened to float32."""
    if dtype_name == "BF16":
        return bfloat16_to_float32(raw)
    if dtype_name == "F16":
        return raw.astype(np.float32)
    return raw.astype(raw.dtype.newbyteorder("="))


def require_safetensors():
    """The `safetensors` package's NumPy `save`; an ImportError saying how to install it when missing."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ImportError(f"writing safetensors files needs the safetensors package: {INSTALL_HINT}") from None
    return save


def write_safetensors(path, arrays: dict, metadata: dict | None = None) -> Path:
    """Write name -> array as a safetensors file, atomically, with the `safetensors` package.

    metadata: str -> str, stored in the header's __metadata__. Returns the path.
    """
    save = require_safetensors()
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    payload = save(contiguous, metadata=metadata)
    path = Path(path)
    write_atomically(path, lambda file: file.write(payload))
    return path
