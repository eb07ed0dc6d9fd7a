"""Elementwise kernels over large NumPy arrays, one cache-sized chunk at a time, on every core.

A chain of NumPy ufuncs makes one pass over memory per step, each on one core. Cutting the flat
arrays into chunks that fit in the L2 cache and giving the chunks to one thread per core keeps
the intermediate values in cache and every core busy (NumPy's ufunc loops release the GIL).

A kernel's work arrays ("scratch") are allocated once per thread and reused chunk after chunk:
a fresh temporary of a few hundred KiB is handed out by the C allocator as new pages, and the
page faults of touching them cost more than the arithmetic done in them. CuPy arrays run the
kernel in one call on whole arrays (its memory pool reuses device memory by itself).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..backend import xp_of

CHUNK_SIZE = 1 << 15  # elements: 128 KiB of float32, 256 KiB of float64 per array; a few fit in L2
PARALLEL_MIN_SIZE = 1 << 16


def _thread_count() -> int:
    """As many threads as the BLAS is told to use (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, as a
    benchmark or an MPI rank pinned to one core sets them), else one per core this process may run on."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_THREADS = _thread_count()
_pool: ThreadPoolExecutor | None = None
_per_thread = threading.local()


def map_chunks(kernel, inputs: tuple, outputs: tuple, scratch: tuple = ()) -> None:
    """kernel(*input_chunks, *output_chunks, *scratch_chunks) over matching chunks of same-sized arrays.

    inputs: arrays of one size (any shape; non-contiguous ones are copied). outputs: contiguous
    arrays of that size, written by the kernel through its output chunks. scratch: one dtype per
    work array the kernel needs; it gets an uninitialised array of that dtype per chunk. NumPy
    chunks are flat (1-D) views; CuPy arrays come whole, in their shapes.
    """
    size = outputs[0].size
    if not isinstance(outputs[0], np.ndarray):
        xp = xp_of(outputs[0])
        kernel(*inputs, *outputs, *(xp.empty(outputs[0].shape, dtype) for dtype in scratch))
        return
    flat_inputs = [np.ascontiguousarray(a).reshape(-1) for a in inputs]
    flat_outputs = [o.reshape(-1) for o in outputs]

    def run(start: int) -> None:
        part = slice(start, min(start + CHUNK_SIZE, size))
        work = _scratch(scratch, part.stop - part.start)
        kernel(*(a[part] for a in flat_inputs), *(o[part] for o in flat_outputs), *work)

    starts = range(0, size, CHUNK_SIZE)
    if size < PARALLEL_MIN_SIZE or _THREADS == 1:
        for start in starts:
            run(start)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="scratchvit-chunks")
    for _ in _pool.map(run, starts):
        pass


def _scratch(dtypes: tuple, length: int) -> list:
    """This thread's work arrays, one per dtype in `dtypes`, cut to `length` elements."""
    buffers = getattr(_per_thread, "buffers", None)
    if buffers is None:
        buffers = _per_thread.buffers = {}
    work = []
    for slot, dtype in enumerate(dtypes):
        key = (slot, np.dtype(dtype))
        if key not in buffers:
            buffers[key] = np.empty(CHUNK_SIZE, dtype)
        work.append(buffers[key][:length])
    return work
