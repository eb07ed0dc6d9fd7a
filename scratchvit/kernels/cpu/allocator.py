"""Keep freed memory for reuse: the C allocator's settings for an engine of large temporaries.

Every op returns fresh arrays of a few MiB, and backward frees them again. glibc's malloc serves
blocks above its mmap threshold (128 KiB at first, growing to at most 32 MiB) with fresh pages
from the kernel, and gives the top of its heap back once more than the trim threshold is free.
Either way the next array of that size starts on new pages, and the kernel's page fault on the
first touch of each 4 KiB costs about 2 us here: a 25 MiB array costs some 13 ms before any
arithmetic, several passes' worth. PyTorch sidesteps most of it by allocating fewer temporaries;
on the GPU, CuPy's memory pool already reuses device memory.

`retain_freed_memory` sets the mmap threshold to its maximum and the trim threshold to 1 GiB,
so freed blocks stay in the heap and the next step reuses the pages already mapped. The peak
memory is unchanged; the process just does not shrink between steps. `import scratchvit` calls
it, unless SCRATCHVIT_MALLOC=system. It works on glibc (Linux) and does nothing elsewhere.
"""

from __future__ import annotations

import ctypes
import os

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds as above; True when the C library took both."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure_from_environment() -> bool:
    """retain_freed_memory(), unless SCRATCHVIT_MALLOC=system asks to leave malloc as it is."""
    setting = os.environ.get("SCRATCHVIT_MALLOC", "retain")
    if setting not in ("retain", "system"):
        raise ValueError(f"SCRATCHVIT_MALLOC must be 'retain' or 'system', got {setting!r}")
    return setting == "retain" and retain_freed_memory()
