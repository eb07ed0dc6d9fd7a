"""The fast tier: faster implementations of textbook ops, registered per backend and dtype.

Each kernel is a subclass of a textbook op in scratchvit.ops that computes the same function
and gradient faster; `Function.apply` runs it while the fast tier is on (the default) and the
inputs' backend and dtype match its registration. A property test holds each one equal to its
textbook op (tests/kernels/test_kernels_equal_textbook.py).

    >>> sv.kernels.registered_kernels()            # what is registered ("scratchvit info" lists it)
    >>> with sv.kernels.tier("textbook"): ...      # every op as written in scratchvit.ops
    >>> sv.kernels.tune_process()                  # process-wide settings (process.py), undone by
    >>> sv.kernels.restore_process()
"""

from . import cpu, cuda
from .process import restore_process, tune_process
from .registry import (
    TIERS,
    KernelEntry,
    configure_from_environment,
    current_tier,
    register_kernel,
    register_update_kernel,
    registered_kernels,
    set_tier,
    tier,
    update_kernel,
)

configure_from_environment()  # the tier SCRATCHVIT_KERNELS names: "fast" (default) or "textbook"

__all__ = [
    "TIERS",
    "KernelEntry",
    "cpu",
    "cuda",
    "current_tier",
    "register_kernel",
    "register_update_kernel",
    "registered_kernels",
    "restore_process",
    "set_tier",
    "tier",
    "tune_process",
    "update_kernel",
]
