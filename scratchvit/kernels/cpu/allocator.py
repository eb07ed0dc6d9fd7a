"""Keep freed memory for reuse: the C allocator's settings for an engine of large temporaries.

Every op returns fresh arrays of a few MiB, and backward frees them again. glibc's malloc serves
blocks above its mmap threshold (128 KiB at first, growing to at most 32 MiB) with fresh pages
from the kernel, and gives the top of its heap back once more than the trim threshold is free.
Either way the next array of that size starts on new pages, and the kernel's page fault on the
first touch of each 4 KiB page can cost as much as several passes of arithmetic over it. PyTorch
sidesteps most of it by allocating fewer temporaries; on the GPU, CuPy's memory pool already
reuses device memory.

`retain_freed_memory` sets the mmap threshold to its maximum and the trim threshold to 1 GiB,
so freed blocks stay in the heap and the next step reuses the pages already mapped. The peak
memory is unchanged; the process just does not shrink between steps. It is a setting of the
whole process, so only scratchvit.kernels.tune_process() makes it (unless SCRATCHVIT_MALLOC=system),
and `restore_default_malloc` puts glibc's defaults back. Both work on glibc (Linux) and do
nothing elsewhere.
"""

from __future__ import annotations

import ctypes
import os

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
DEFAULT_THRESHOLD = 128 << 10  # glibc's documented default for both


def _mallopt():
    """glibc's mallopt, or None where the C library has none (macOS, musl, Windows)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # TypeError: Windows' CDLL takes no None
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds as above; True when the C library took both."""
    return _set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def restore_default_malloc() -> bool:
    """Put glibc's default mmap and trim thresholds (128 KiB) back; True when it took both."""
    return _set_thresholds(DEFAULT_THRESHOLD, DEFAULT_THRESHOLD)


def configure_from_environment() -> bool:
    """retain_freed_memory(), unless SCRATCHVIT_MALLOC=system asks to leave malloc as it is."""
    setting = os.environ.get("SCRATCHVIT_MALLOC", "retain")
    if setting not in ("retain", "system"):
        raise ValueError(f"SCRATCHVIT_MALLOC must be 'retain' or 'system', got {setting!r}")
    return setting == "retain" and retain_freed_memory()
