"""Elementwise kernels over large NumPy arrays, one cache-sized chunk at a time, on every core.

A chain of NumPy ufuncs makes one pass over memory per step, each on one core. Cutting the flat
arrays into chunks that fit in the L2 cache and giving the chunks to one thread per core keeps
the intermediate values in cache and every core busy (NumPy's and SciPy's ufunc loops release
the GIL). CuPy arrays, and arrays too small to pay for the threads, run the kernel in one call.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK_SIZE = 1 << 15  # elements: 128 KiB of float32 per array, a few arrays fit in L2
PARALLEL_MIN_SIZE = 1 << 16
_THREADS = os.cpu_count() or 1
_pool: ThreadPoolExecutor | None = None


def map_chunks(kernel, inputs: tuple, outputs: tuple) -> None:
    """kernel(*input_chunks, *output_chunks) over matching chunks of same-sized arrays.

    inputs: arrays of one size (any shape; non-contiguous ones are copied). outputs: contiguous
    arrays of that size, written by the kernel through its output chunks.
    """
    size = outputs[0].size
    if not isinstance(outputs[0], np.ndarray) or size < PARALLEL_MIN_SIZE or _THREADS == 1:
        kernel(*inputs, *outputs)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="scratchvit-chunks")
    flat_inputs = [np.ascontiguousarray(a).reshape(-1) for a in inputs]
    flat_outputs = [o.reshape(-1) for o in outputs]

    def run(start: int) -> None:
        part = slice(start, min(start + CHUNK_SIZE, size))
        kernel(*(a[part] for a in flat_inputs), *(o[part] for o in flat_outputs))

    for _ in _pool.map(run, range(0, size, CHUNK_SIZE)):
        pass
