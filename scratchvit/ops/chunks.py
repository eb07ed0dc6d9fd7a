"""Elementwise kernels over large NumPy arrays, one cache-sized chunk at a time.

A chain of NumPy ufuncs over whole arrays makes one pass over main memory per step. Cutting the
flat arrays into chunks of CHUNK_SIZE elements and running the whole chain on one chunk before
the next keeps the intermediate values in cache.

A kernel's work arrays ("scratch") are allocated once and reused chunk after chunk: a fresh
temporary of a few hundred KiB is handed out by the C allocator as new pages, and the page
faults of touching them cost more than the arithmetic done in them.

One thread: the kernels are chains of about thirty ufunc calls per chunk, and every call takes
and releases the GIL. Spread over a thread pool, the threads spent more time handing the GIL
to each other than they saved; on a 2-core machine GELU's forward went from 55 ms (one thread)
to 70 ms (two) alone, and to about 125 ms inside a training step, where the BLAS threads wait
spinning for the next GEMM. CuPy arrays run the kernel in one call on whole arrays (its memory
pool reuses device memory by itself).
"""

from __future__ import annotations

import numpy as np

from ..backend import xp_of

CHUNK_SIZE = 1 << 15  # elements: 128 KiB of float32, 256 KiB of float64 per array
_scratch_buffers: dict = {}  # (slot, dtype) -> a reusable work array of CHUNK_SIZE elements


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
    for start in range(0, size, CHUNK_SIZE):
        part = slice(start, min(start + CHUNK_SIZE, size))
        work = _scratch(scratch, part.stop - part.start)
        kernel(*(a[part] for a in flat_inputs), *(o[part] for o in flat_outputs), *work)


def _scratch(dtypes: tuple, length: int) -> list:
    """The reusable work arrays, one per dtype in `dtypes`, cut to `length` elements."""
    work = []
    for slot, dtype in enumerate(dtypes):
        key = (slot, np.dtype(dtype))
        if key not in _scratch_buffers:
            _scratch_buffers[key] = np.empty(CHUNK_SIZE, dtype)
        work.append(_scratch_buffers[key][:length])
    return work
