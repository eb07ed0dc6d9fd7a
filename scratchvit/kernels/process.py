"""The process-wide settings the fast tier runs best with, made and undone by one call each.

`import scratchvit` changes nothing outside the package. These settings change the whole
process, every library in it included, so they are made only on request:

    >>> sv.kernels.tune_process()      # the `scratchvit` command calls it at start
    {'malloc': True, 'threads': True}
    >>> sv.kernels.restore_process()   # undoes both

- malloc (glibc only; SCRATCHVIT_MALLOC=system leaves it alone): freed memory stays mapped for
  the next step (cpu/allocator.py).
- threads (NumPy on OpenBLAS, more than one core): at the first large product, attention or
  chunked kernel, OpenBLAS is set to one thread and such work is cut over scratchvit's own
  threads, one per core (cpu/threads.py). Without this call those kernels run on the calling
  thread, and OpenBLAS keeps its threads.
"""

from __future__ import annotations

from .cpu import allocator, threads


def tune_process() -> dict:
    """Make both settings; returns which took effect, {"malloc": bool, "threads": bool}."""
    return {"malloc": allocator.configure_from_environment(), "threads": threads.allow_take_over()}


def restore_process() -> None:
    """Undo tune_process: OpenBLAS gets its threads back, malloc its default thresholds."""
    threads.restore_blas_threads()
    allocator.restore_default_malloc()
