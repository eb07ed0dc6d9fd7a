"""PyTorch checkpoints (.pth, .pt, .bin) read without torch and without running any code from the file.

torch.save (torch >= 1.6) writes a zip archive under one top folder (its name varies: the file's
stem, "archive", ...):

    <root>/data.pkl        a pickle of the saved object (a state_dict, or a dict holding one)
    <root>/data/<key>      the raw bytes of each storage, in <root>/byteorder order ("little" if absent)
    <root>/version, <root>/.data/serialization_id, ...

In data.pkl every tensor is `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks)`, and each storage a persistent id ('storage', torch.FloatStorage,
key, location, numel) that points at <root>/data/<key>. A tensor is a view into its storage: element
(i, j, ...) sits at storage_offset + i * stride[0] + j * stride[1] + ... (in elements), so views,
transposes and tensors sharing a storage are rebuilt exactly.

A pickle can call any function while it loads, so the unpickler here resolves a short allow-list of
globals to functions of its own (nothing from torch is imported or called) and refuses every other
global before it can run: a file asking for os.system, builtins.exec or a model class stops the load
with a CheckpointError naming the file and the global.

The archive is read within the file's DecodeBudget (files.py): data.pkl and each storage spend their
declared sizes before they are decompressed, and each tensor its bytes before it is copied out of
its storage, so neither a zip bomb nor a stride-0 view of one element as a huge tensor gets far.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import CheckpointError
from .files import DecodeBudget, array_nbytes, open_regular
from .safetensors import bfloat16_to_float32

__all__ = ["is_legacy_torch", "read_torch_zip", "torch_zip_root"]

# torch's legacy storage classes (dtype markers in the persistent ids) -> the stored NumPy dtype.
# BFloat16 is read as raw uint16 bits and widened; Half is widened to float32 too.
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("f8"),
    "FloatStorage": np.dtype("f4"),
    "HalfStorage": np.dtype("f2"),
    "BFloat16Storage": np.dtype("u2"),
    "LongStorage": np.dtype("i8"),
    "IntStorage": np.dtype("i4"),
    "ShortStorage": np.dtype("i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
# the legacy (torch < 1.6) format: a pickle whose first object is this magic number (a LONG1 opcode)
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


class _StorageType(NamedTuple):
    """What the unpickler hands out for `torch.FloatStorage` etc.: a name and a dtype, immutable."""

    name: str
    dtype: np.dtype


class _Storage(NamedTuple):
    """One storage of the archive: its type and its elements as a flat read-only array."""

    type: _StorageType
    elements: np.ndarray


def is_legacy_torch(head: bytes) -> bool:
    """True when the bytes start a torch checkpoint of the legacy (pre-1.6, non-zip) format."""
    return head.startswith(_LEGACY_MAGIC)


def torch_zip_root(names) -> str | None:
    """The top folder of a torch.save archive, given the archive's member names; None if it is not one."""
    roots = [name[: -len("/data.pkl")] for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    return roots[0] if len(roots) == 1 else None


class _TorchUnpickler(pickle.Unpickler):
    """Rebuilds tensors as NumPy arrays from a torch.save archive; refuses any global it does not know.

    Allowed: collections.OrderedDict; torch._utils._rebuild_tensor_v2, _rebuild_parameter and
    _rebuild_parameter_with_state (answered by this class's methods); torch.<Type>Storage for the
    types in _STORAGE_DTYPES (answered by immutable markers). Everything else raises CheckpointError.
    """

    def __init__(self, file, archive: zipfile.ZipFile, root: str, byteorder: str, budget: DecodeBudget):
        super().__init__(file)
        self.archive, self.root, self.byteorder, self.budget = archive, root, byteorder, budget
        self.path = budget.path
        self.storages: dict = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if (module, name) in (
            ("torch._utils", "_rebuild_parameter"),
            ("torch._utils", "_rebuild_parameter_with_state"),
        ):
            return self.rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name].newbyteorder("<" if self.byteorder == "little" else ">"))
        if module == "torch" and name.endswith("Storage"):
            raise CheckpointError(
                f"{self.path}: holds a tensor of the unsupported dtype torch.{name} "
                f"(scratchvit reads {', '.join(sorted(_STORAGE_DTYPES))})"
            )
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            raise CheckpointError(
                f"{self.path}: holds a tensor of a dtype that torch saves with _rebuild_tensor_v3 "
                "(uint16/32/64, float8, ...), which scratchvit does not read"
            )
        raise CheckpointError(
            f"{self.path}: refused to load the global {module}.{name}: a weights file may hold only tensors, "
            "dicts, lists, strings and numbers (save model.state_dict(), not the model; or the file was tampered with)"
        )

    def persistent_load(self, pid):
        """('storage', storage type, key, location, numel) -> the _Storage read from <root>/data/<key>."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: unknown persistent id {pid!r}")
        _, storage_type, key, _, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: bad storage record {pid!r}")
        key = str(key)
        if key not in self.storages:
            try:
                info = self.archive.getinfo(f"{self.root}/data/{key}")
            except KeyError:
                raise CheckpointError(f"{self.path}: damaged torch checkpoint: storage data/{key} is missing") from None
            self.budget.take(info.file_size, f"storage data/{key}")
            data = self.archive.read(info)
            needed = numel * storage_type.dtype.itemsize
            if len(data) < needed:
                raise CheckpointError(
                    f"{self.path}: truncated torch checkpoint: storage data/{key} has {len(data)} bytes, "
                    f"its {numel} x {storage_type.name} need {needed}"
                )
            self.storages[key] = _Storage(storage_type, np.frombuffer(data, storage_type.dtype, count=numel))
        storage = self.storages[key]
        if storage.type != storage_type:
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: storage {key} read as two dtypes")
        return storage

    def rebuild_tensor(
        self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
    ) -> np.ndarray:
        """torch._utils._rebuild_tensor_v2 -> a C-contiguous NumPy copy of the view; float16 and
        bfloat16 widened to float32. requires_grad, hooks and metadata carry nothing we keep."""
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: a tensor without a storage")
        what = f"a tensor of size {size!r}, stride {stride!r}, offset {storage_offset!r}"
        valid = isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
        if not (valid and all(type(n) is int and n >= 0 for n in (storage_offset, *size, *stride))):
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: {what}")
        dtype = storage.type.dtype
        widened = storage.type.name in ("BFloat16Storage", "HalfStorage")  # to float32, 4 bytes each
        self.budget.take(array_nbytes(self.path, size, 4 if widened else dtype.itemsize, what), what)
        if 0 in size:
            array = np.zeros(size, dtype)
        else:
            # the view's last element, in elements from the storage's start
            last = storage_offset + sum((n - 1) * step for n, step in zip(size, stride, strict=True))
            if last >= storage.elements.size:
                raise CheckpointError(
                    f"{self.path}: damaged torch checkpoint: a tensor of size {size}, stride {stride} at offset "
                    f"{storage_offset} reaches element {last} of a storage of {storage.elements.size}"
                )
            view = np.lib.stride_tricks.as_strided(
                storage.elements[storage_offset:],
                shape=size,
                strides=[step * dtype.itemsize for step in stride],
                writeable=False,
            )
            array = np.array(view, dtype=dtype.newbyteorder("="), order="C")  # a C-contiguous copy, native order
        if storage.type.name == "BFloat16Storage":
            return bfloat16_to_float32(array)
        if storage.type.name == "HalfStorage":
            return array.astype(np.float32)
        return array

    def rebuild_parameter(self, data, requires_grad=True, backward_hooks=None, state=None) -> np.ndarray:
        """torch._utils._rebuild_parameter(_with_state): a Parameter is its data."""
        if not isinstance(data, np.ndarray):
            raise CheckpointError(f"{self.path}: damaged torch checkpoint: a Parameter whose data is not a tensor")
        return data


def read_torch_zip(path):
    """The object a torch.save zip archive holds (usually a dict), with every tensor a NumPy array.

    Raises CheckpointError naming the file when it is not a regular file or not such an archive (also
    for TorchScript archives), is truncated or damaged, holds a tensor of an unsupported dtype, decodes
    to more than its budget, or asks for any global outside the allow-list (nothing from the file is run).
    """
    path = Path(path)
    with open_regular(path, "torch checkpoint") as file:
        budget = DecodeBudget(path, os.fstat(file.fileno()).st_size)
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable zip archive, truncated or damaged ({error})") from error
        with archive:
            return _read_archive(archive, budget)


def _read_archive(archive: zipfile.ZipFile, budget: DecodeBudget):
    path = budget.path
    names = archive.namelist()
    root = torch_zip_root(names)
    if any(name.endswith("/constants.pkl") for name in names):  # its data.pkl pickles TorchScript classes
        raise CheckpointError(
            f"{path}: a TorchScript archive (torch.jit.save), not a checkpoint: save model.state_dict() "
            "with torch.save instead"
        )
    if root is None:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{path}: a zip archive that is not a torch checkpoint: no <folder>/data.pkl "
            f"(it holds: {shown or 'nothing'})"
        )
    try:
        byteorder = _byteorder(archive, root, path)
        pickle_info = archive.getinfo(f"{root}/data.pkl")
        budget.take(pickle_info.file_size, "data.pkl")
        with archive.open(pickle_info) as file:
            return _TorchUnpickler(file, archive, root, byteorder, budget).load()
    except CheckpointError:
        raise
    except Exception as error:  # a broken pickle or zip raises many kinds: EOFError, UnpicklingError, ...
        raise CheckpointError(
            f"{path}: damaged torch checkpoint: cannot read data.pkl ({type(error).__name__}: {error})"
        ) from error


def _byteorder(archive: zipfile.ZipFile, root: str, path: Path) -> str:
    """<root>/byteorder: "little" or "big" ("little" when absent, as torch < 1.10 wrote no record)."""
    if f"{root}/byteorder" not in archive.namelist():
        return "little"
    with archive.open(f"{root}/byteorder") as record:
        raw = record.read(16)  # "little" or "big" and maybe a newline; anything longer is wrong anyway
    if raw.strip() not in (b"little", b"big"):
        raise CheckpointError(f"{path}: damaged torch checkpoint: its byteorder record is {raw!r}, not little or big")
    return raw.strip().decode("ascii")
