"""`.npz` archives (np.savez, np.savez_compressed: a zip of .npy members) read within bounds and
without running code.

The .npy format (numpy.lib.format): the magic b"\\x93NUMPY", a version, a header (a dict literal of
descr, fortran_order and shape), then the data, prod(shape) * itemsize bytes. Each member must be
.npy data of version 1.0 or 2.0 (what np.save writes); its declared size is spent from the file's
DecodeBudget (files.py) before it is decompressed, and its header's shape and dtype must account
for exactly that size before the array is allocated: a member that would inflate a few kilobytes
into gigabytes, or whose header claims more than it holds, is refused. Object arrays (pickles) are
refused, as np.load(allow_pickle=False) refuses them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .errors import CheckpointError
from .files import DecodeBudget, array_nbytes, open_regular

__all__ = ["read_npz", "zip_member_names"]

_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def zip_member_names(path) -> list:
    """The member names of the zip archive at `path` (a regular file); CheckpointError naming the file
    when it is not a readable zip."""
    path = Path(path)
    with open_regular(path, "zip") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                return archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: a truncated or damaged zip archive ({error})") from error


def read_npz(path) -> dict:
    """name -> NumPy array (the member's name without .npy), in the archive's order.

    Raises CheckpointError naming the file and the member when the file is not a regular file or not
    a zip, a member is not .npy data, appears twice, holds objects, is truncated, or decodes to more
    than the file's budget.
    """
    path = Path(path)
    with open_regular(path, "npz") as file:
        budget = DecodeBudget(path, os.fstat(file.fileno()).st_size)
        try:
            with zipfile.ZipFile(file) as archive:
                return _read_members(archive, budget)
        except CheckpointError:
            raise
        except Exception as error:  # zipfile, zlib, lzma and numpy's header checks raise many kinds
            raise CheckpointError(
                f"{path}: cannot read it as .npz, truncated or damaged ({type(error).__name__}: {error})"
            ) from error


def _read_members(archive: zipfile.ZipFile, budget: DecodeBudget) -> dict:
    arrays = {}
    for info in archive.infolist():
        name, what = info.filename, f"member {info.filename!r}"
        if not name.endswith(".npy"):
            raise CheckpointError(f"{budget.path}: {what} is not .npy data (an .npz holds only .npy members)")
        if name[: -len(".npy")] in arrays:
            raise CheckpointError(f"{budget.path}: {what} appears twice in the archive")
        budget.take(info.file_size, what)
        with archive.open(info) as member:
            arrays[name[: -len(".npy")]] = _read_npy(member, info, budget.path)
    return arrays


def _read_npy(member, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One .npy member, its header checked against the member's declared size before allocating."""
    what = f"member {info.filename!r}"
    if member.read(len(npy_format.MAGIC_PREFIX)) != npy_format.MAGIC_PREFIX:
        raise CheckpointError(f"{path}: {what} is not .npy data (it lacks NumPy's magic number)")
    version = tuple(member.read(2))
    if version not in _HEADER_READERS:
        raise CheckpointError(f"{path}: {what} is .npy data of version {version}; scratchvit reads 1.0 and 2.0")
    shape, fortran_order, dtype = _HEADER_READERS[version](member)
    if dtype.hasobject:
        raise CheckpointError(f"{path}: cannot read it as .npz: {what} holds Python objects (a pickle, never loaded)")
    nbytes = array_nbytes(path, shape, dtype.itemsize, what)
    held = info.file_size - member.tell()
    if nbytes != held:
        raise CheckpointError(
            f"{path}: damaged {what}: its header says shape {shape} of {dtype} ({nbytes:,} bytes), "
            f"the member holds {held:,} bytes of data"
        )
    data = bytearray(nbytes)
    if member.readinto(data) != nbytes:
        raise CheckpointError(f"{path}: truncated {what}: fewer than the {nbytes:,} bytes its header says")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
