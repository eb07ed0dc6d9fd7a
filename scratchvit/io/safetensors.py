"""safetensors files, as timm and the Hugging Face hub publish weights, read and written with NumPy
alone (no package needed), and checked as strictly as the `safetensors` package checks them.

The format: 8 bytes, the little-endian length n of a JSON header; n bytes of JSON mapping each
tensor's name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (byte offsets into
the data that follows the header) plus an optional "__metadata__" of string -> string; then the
data, little-endian, C order. The tensors' byte ranges, in order of their offsets, tile the
data exactly: the first begins at 0, each begins where the previous one ends, the last ends at the
end of the file; each range holds prod(shape) * itemsize bytes.

The reader is written here rather than taken from `safetensors.numpy`, because that refuses bfloat16
(NumPy has no such dtype) and timm publishes bfloat16 weights. float16 and bfloat16 tensors come back
widened to float32 unless asked otherwise: bfloat16 is the top 16 bits of a float32, so widening it
is a shift. The writer pads the header with spaces to a multiple of 8 bytes, as the package does, so
the data starts aligned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .files import array_nbytes, load_json, open_regular, write_atomically

__all__ = [
    "bfloat16_to_float32",
    "dump_safetensors",
    "read_safetensors",
    "read_safetensors_header",
    "write_safetensors",
]

# the format's dtype names -> NumPy (little-endian); BF16 is read as its raw 16 bits
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# NumPy's dtypes -> the format's names, for writing (uint16 is U16: bfloat16 cannot be written)
_NAMES = {dtype.newbyteorder("="): name for name, dtype in _DTYPES.items() if name != "BF16"}
_MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors package sets


def bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """uint16 bit patterns of bfloat16 numbers -> float32 (exact: the bits become the top half)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


# ---- reading ---------------------------------------------------------------------------------------
def read_safetensors_header(path) -> tuple:
    """(tensor entries: {name: {"dtype", "shape", "data_offsets"}}, metadata: dict, data start, file size).

    Checks the header's structure and that the tensors' byte ranges tile the data (module docstring);
    raises CheckpointError naming the file otherwise, or when it is not a regular file.
    """
    path = Path(path)
    with open_regular(path, "safetensors") as file:
        return _read_header(file, path)


def _read_header(file, path: Path) -> tuple:
    size = os.fstat(file.fileno()).st_size
    prefix = file.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{path}: not a safetensors file: {size} bytes, shorter than the 8-byte header length")
    header_length = int.from_bytes(prefix, "little")
    if header_length > min(size - 8, _MAX_HEADER_BYTES):
        raise CheckpointError(
            f"{path}: truncated or not a safetensors file: the header length says {header_length} bytes, "
            f"the file has {size - 8} after it"
        )
    # UTF-8 only, as the format says (json.loads would also take UTF-16 and UTF-32 bytes)
    header = load_json(file.read(header_length), path, "damaged safetensors file: its header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: damaged safetensors file: its header is a {type(header).__name__}, not a map")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: damaged safetensors header: __metadata__ is a {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise CheckpointError(
                f"{path}: damaged safetensors header: __metadata__[{key!r}] is a {type(value).__name__}, not a string"
            )
    data_start = 8 + header_length
    for name, entry in header.items():
        _check_entry(path, name, entry, size - data_start)
    _check_tiling(path, header, size - data_start)
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
    if not isinstance(shape, list):
        raise CheckpointError(f"{path}: damaged safetensors header: tensor {name!r} has the shape {shape!r}")
    expected = array_nbytes(path, shape, _DTYPES[entry["dtype"]].itemsize, f"safetensors tensor {name!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise CheckpointError(f"{path}: damaged safetensors header: tensor {name!r} has data_offsets {offsets!r}")
    begin, end = offsets
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


def _check_tiling(path: Path, header: dict, data_size: int) -> None:
    """The byte ranges, sorted by their offsets, must follow one another from 0 to the end of the data."""
    position = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if begin != position:
            what = "overlaps the previous tensor's" if begin < position else f"leaves bytes {position}..{begin} unused"
            raise CheckpointError(
                f"{path}: damaged safetensors header: tensor {name!r} begins at byte {begin} of the data, which {what}"
            )
        position = end
    if position != data_size:
        raise CheckpointError(
            f"{path}: damaged safetensors file: the tensors hold {position} bytes of data, the file has {data_size}"
        )


def read_safetensors(path, widen_half: bool = True) -> dict:
    """name -> NumPy array, in the file's order; bfloat16 widened to float32, and float16 too unless
    widen_half is False.

    Needs no package. Raises CheckpointError naming the file if it is not a regular file, truncated or
    damaged, or holds a dtype other than the float, integer and bool ones (e.g. the float8 types).
    The tensors tile the file's data, so they decode to at most twice the file's size (widened halves).
    """
    path = Path(path)
    with open_regular(path, "safetensors") as file:
        header, _, data_start, size = _read_header(file, path)
        if size == data_start:  # nothing but a header (every tensor empty): np.memmap refuses empty files
            return {
                name: _widened(np.zeros(entry["shape"], _DTYPES[entry["dtype"]]), entry["dtype"], widen_half)
                for name, entry in header.items()
            }
        data = np.memmap(file, dtype=np.uint8, mode="r", offset=data_start)
        arrays = {}
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            raw = data[begin:end].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
            arrays[name] = _widened(raw, entry["dtype"], widen_half)
        del data  # every array is a copy, so the file closes
    return arrays


def _widened(raw: np.ndarray, dtype_name: str, widen_half: bool) -> np.ndarray:
    """A copy of `raw` in native byte order, bfloat16 (and float16 with widen_half) widened to float32."""
    if dtype_name == "BF16":
        return bfloat16_to_float32(raw)
    if dtype_name == "F16" and widen_half:
        return raw.astype(np.float32)
    return raw.astype(raw.dtype.newbyteorder("="))


# ---- writing ---------------------------------------------------------------------------------------
def dump_safetensors(file, arrays: dict, metadata: dict | None = None) -> None:
    """Write name -> NumPy array to the open binary `file` in the safetensors format, the tensors in
    the dict's order. metadata: str -> str, stored in the header's __metadata__.

    TypeError for a name or metadata entry that is not a string, or an array of a dtype the format
    has no name for (complex, object, strings).
    """
    header = {}
    if metadata:
        for key, value in metadata.items():
            if not (isinstance(key, str) and isinstance(value, str)):
                raise TypeError(f"safetensors metadata must map str to str, got {key!r}: {type(value).__name__}")
        header["__metadata__"] = dict(metadata)
    contiguous, offset = [], 0
    for name, array in arrays.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise TypeError(f"a safetensors tensor name must be a string other than '__metadata__', got {name!r}")
        array = np.asarray(array)
        dtype_name = _NAMES.get(array.dtype.newbyteorder("="))
        if dtype_name is None:
            raise TypeError(f"cannot write {name!r} of dtype {array.dtype} to safetensors: no such safetensors dtype")
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        header[name] = {
            "dtype": dtype_name,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + little.nbytes],
        }
        contiguous.append(little)
        offset += little.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts on an 8-byte boundary
    file.write(len(text).to_bytes(8, "little"))
    file.write(text)
    for little in contiguous:
        file.write(little.reshape(-1).view(np.uint8).data)


def write_safetensors(path, arrays: dict, metadata: dict | None = None) -> Path:
    """Write name -> array as a safetensors file, atomically (dump_safetensors). Returns the path."""
    path = Path(path)
    write_atomically(path, lambda file: dump_safetensors(file, arrays, metadata))
    return path
