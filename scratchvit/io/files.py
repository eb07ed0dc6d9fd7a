"""What every reader and writer in scratchvit.io shares: regular files opened without hanging, a budget
for the bytes a file decodes to, the first bytes of a file to tell its format by, and atomic writes.

Reading within bounds:
- Only regular files are read. A FIFO, a device or a folder is refused when it is opened (opened
  without blocking, so a FIFO with no writer never hangs the reader).
- What a file decodes to is budgeted before anything is allocated: a zip member's declared size, a
  tensor's prod(shape) * itemsize. The budget of a file of S bytes is max(64 MiB, 16 * S), which
  every honest file of the supported formats stays within (stored arrays decode to their own size,
  half floats widen 2x); a zip bomb or a stride-0 view that would expand a few bytes into gigabytes
  does not. The environment variable SCRATCHVIT_MAX_DECODED_BYTES sets the budget explicitly (bytes).

Files are written atomically: a temporary file in the same folder, flushed and fsynced, renamed over
the target with os.replace, and the folder fsynced; a crash leaves the old file or the new one, never
half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path

from .errors import CheckpointError

__all__ = [
    "MAX_DECODED_BYTES_VARIABLE",
    "DecodeBudget",
    "array_nbytes",
    "load_json",
    "open_regular",
    "read_head",
    "write_atomically",
]

MAX_DECODED_BYTES_VARIABLE = "SCRATCHVIT_MAX_DECODED_BYTES"
_MIN_BUDGET = 64 * 2**20  # bytes: every file may decode to this much
_BUDGET_PER_FILE_BYTE = 16  # and to this many times its own size
_MAX_INTP = 2**63 - 1  # the largest array size, in bytes, and extent NumPy represents (64-bit)
_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: Path, kind: str):
    """`path` opened for binary reading, after checking that it is a regular file; CheckpointError
    naming the file when it is missing, unreadable or anything else (a FIFO, a device, a folder).

    The file is opened without blocking and checked by its descriptor, so a FIFO with no writer is
    refused at once, and what is checked is what is read. kind: what the file should be."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {kind} file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot open it: {error.strerror or error}") from error
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        what = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise CheckpointError(f"{path}: {what}, not a regular {kind} file (scratchvit reads only regular files)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def read_head(path: Path, count: int, kind: str) -> tuple:
    """(size in bytes, the first `count` bytes) of a regular file, to tell its format by;
    CheckpointError naming the file when it is missing, unreadable, not a regular file or empty."""
    with open_regular(path, kind) as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(count)
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes): no {kind} in it")
    return size, head


def load_json(text, path: Path, what: str):
    """json.loads(text); CheckpointError "{path}: {what} is not valid JSON (why)" for text that is not
    UTF-8 JSON, nests deeper than Python's recursion limit, or holds an integer of 4,300+ digits."""
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError:
        reason = "it nests too deeply"
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error)
    except ValueError:  # int() of a number with too many digits
        reason = "it holds a number too long to read"
    raise CheckpointError(f"{path}: {what} is not valid JSON ({reason})")


def array_nbytes(path: Path, shape, itemsize: int, what: str) -> int:
    """prod(shape) * itemsize, after checking that `shape` is a tuple or list of non-negative integers
    that NumPy can represent (no extent, and no product of the non-zero ones, beyond 2**63 bytes);
    CheckpointError naming the file and `what` (e.g. "tensor 'head.weight'") otherwise."""
    if not (isinstance(shape, (tuple, list)) and all(type(extent) is int and extent >= 0 for extent in shape)):
        raise CheckpointError(f"{path}: {what} has the shape {shape!r}, not a list of non-negative integers")
    nonzero = itemsize * math.prod(extent for extent in shape if extent)  # Python integers: no overflow
    if nonzero > _MAX_INTP or any(extent > _MAX_INTP for extent in shape):
        raise CheckpointError(f"{path}: {what} has the shape {tuple(shape)}, too large for any array (2**63 bytes)")
    return nonzero if all(shape) else 0


class DecodeBudget:
    """The bytes one file may decode to (module docstring), spent as its parts are decoded: take()
    each part's bytes before allocating it. CheckpointError naming the file and the part beyond it."""

    def __init__(self, path: Path, file_size: int):
        self.path, self.file_size = path, file_size
        self.limit = _budget_limit(file_size)
        self.spent = 0

    def take(self, nbytes: int, what: str) -> None:
        if self.spent + nbytes > self.limit:
            raise CheckpointError(
                f"{self.path}: {what} would decode to {nbytes:,} bytes, beyond the {self.limit:,} bytes this "
                f"{self.file_size:,}-byte file may decode to ({self.spent:,} spent already; the limit is 16 times "
                f"the file's size, at least 64 MiB, or ${MAX_DECODED_BYTES_VARIABLE}): a zip bomb or a tampered file"
            )
        self.spent += nbytes


def _budget_limit(file_size: int) -> int:
    text = os.environ.get(MAX_DECODED_BYTES_VARIABLE, "").strip()
    if not text:
        return max(_MIN_BUDGET, _BUDGET_PER_FILE_BYTE * file_size)
    if not text.isdigit():
        raise ValueError(f"${MAX_DECODED_BYTES_VARIABLE} must be a number of bytes, got {text!r}")
    return int(text)


def write_atomically(path, write) -> None:
    """Call write(binary_file) on a temporary file beside `path`, make it durable, rename it over
    `path`, and fsync the folder. On any error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would hide the file from other users
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if os.name == "posix":  # make the rename itself durable
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
