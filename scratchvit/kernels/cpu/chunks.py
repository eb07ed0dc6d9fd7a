"""Elementwise kernels over large NumPy arrays, one cache-sized chunk at a time, on every core.

A chain of NumPy ufuncs over whole arrays makes one pass over main memory per step. Cutting the
flat arrays into chunks of CHUNK_SIZE elements and running the whole chain on one chunk before
the next keeps the intermediate values in cache.

A kernel's work arrays ("scratch") are allocated once per thread and reused chunk after chunk: a
fresh temporary of a few hundred KiB is handed out by the C allocator as new pages, and the page
faults of touching them cost more than the arithmetic done in them.

Once threads.allow_take_over() has run, arrays of at least MIN_PARALLEL_ELEMENTS are cut into
one part per core (threads.py), each part's chunks on its own thread. Every ufunc call takes and
releases the GIL, so the threads hand it to each other at every step of a chunk: the gain is
well short of the core count, and smaller arrays stay on the calling thread, since a thread
takes a while to wake. The kernels here are for NumPy arrays only.
"""

from __future__ import annotations

import threading

import numpy as np

from . import threads

CHUNK_SIZE = 1 << 15  # elements: 128 KiB of float32, 256 KiB of float64 per array
MIN_PARALLEL_ELEMENTS = 1 << 20  # below this a thread's wake-up costs more than it saves
_scratch_buffers: dict = {}  # (thread, slot, dtype) -> a reusable work array of CHUNK_SIZE elements


def min_parallel_row_elements() -> int:
    """The fewest elements worth cutting for a row kernel (layer norm, softmax): a quarter of
    MIN_PARALLEL_ELEMENTS, since it does several passes over each row, each direction."""
    return MIN_PARALLEL_ELEMENTS // 4


def map_chunks(kernel, inputs: tuple, outputs: tuple, scratch: tuple = ()) -> None:
    """kernel(*input_chunks, *output_chunks, *scratch_chunks) over matching chunks of same-sized arrays.

    inputs: arrays of one size (any shape; non-contiguous ones are copied). outputs: contiguous
    arrays of that size, written by the kernel through its output chunks. scratch: one dtype per
    work array the kernel needs; it gets an uninitialised array of that dtype per chunk. Chunks
    are flat (1-D) views.
    """
    size = outputs[0].size
    flat_inputs = [np.ascontiguousarray(a).reshape(-1) for a in inputs]
    flat_outputs = [o.reshape(-1) for o in outputs]

    def run(first: int, last: int) -> None:
        """The kernel over chunks first, first + 1, ..., last - 1."""
        for start in range(first * CHUNK_SIZE, min(last * CHUNK_SIZE, size), CHUNK_SIZE):
            part = slice(start, min(start + CHUNK_SIZE, size))
            work = _scratch(scratch, part.stop - part.start)
            kernel(*(a[part] for a in flat_inputs), *(o[part] for o in flat_outputs), *work)

    chunk_count = -(-size // CHUNK_SIZE)
    parts = threads.parts_for(size, minimum=MIN_PARALLEL_ELEMENTS)
    threads.run_parts(run, threads.bounds(chunk_count, min(parts, chunk_count)))


def _scratch(dtypes: tuple, length: int) -> list:
    """This thread's reusable work arrays, one per dtype in `dtypes`, cut to `length` elements."""
    work = []
    for slot, dtype in enumerate(dtypes):
        key = (threading.get_ident(), slot, np.dtype(dtype))
        if key not in _scratch_buffers:
            _scratch_buffers[key] = np.empty(CHUNK_SIZE, dtype)
        work.append(_scratch_buffers[key][:length])
    return work
