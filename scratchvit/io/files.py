"""What every reader and writer in scratchvit.io shares: the first bytes of a file, to tell its format
by, and atomic writes.

Files are written atomically: a temporary file in the same folder, flushed and fsynced, renamed over
the target with os.replace, and the folder fsynced; a crash leaves the old file or the new one, never
half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import CheckpointError

__all__ = ["read_head", "write_atomically"]


def read_head(path: Path, count: int, kind: str) -> tuple:
    """(size in bytes, the first `count` bytes) of a file, to tell its format by; CheckpointError
    naming the file when it is missing, unreadable or empty. kind: what the file should be."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(count)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {kind} file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read it: {error}") from error
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes): no {kind} in it")
    return size, head


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
