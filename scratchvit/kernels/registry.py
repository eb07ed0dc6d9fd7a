"""The kernel registry and the tier switch.

A kernel is a subclass of a textbook op (a `Function` in scratchvit.ops) that computes the same
forward and backward faster on one backend ("numpy" or "cupy") and some dtypes. It registers
itself with `@register_kernel(TextbookOp, "numpy", (np.float32,))`; from then on
`TextbookOp.apply` runs the kernel for inputs of that backend and dtype while the fast tier is on.
The textbook op never refers to its kernels.

An optimizer's update rule is not an op of the graph but is as much work per step: a kernel for
it registers with `@register_update_kernel("adamw", "cupy", dtypes)`, and the optimizer asks
`update_kernel("adamw", param)` for it before running its own textbook update.

The tier: "fast" (the default) or "textbook", which runs every op as written in scratchvit.ops.
Set it for the process with SCRATCHVIT_KERNELS=textbook, or for a block of code:

    >>> with sv.kernels.tier("textbook"):
    ...     loss = model(images).sum()          # every op on the textbook tier
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from ..autograd import KERNELS, Function, _KernelTier
from ..backend import backend_name

TIERS = ("fast", "textbook")
BACKENDS = ("numpy", "cupy")


def register_kernel(op: type, backend: str, dtypes: tuple):
    """Class decorator: run the decorated subclass of `op` in its place for `backend` arrays of `dtypes`."""
    if backend not in BACKENDS:
        raise ValueError(f"register_kernel: backend must be one of {BACKENDS}, got {backend!r}")

    def decorate(kernel: type) -> type:
        if not (isinstance(op, type) and issubclass(op, Function)) or not issubclass(kernel, op):
            raise TypeError(f"register_kernel: {kernel.__name__} must subclass the textbook op {op!r}")
        table = KERNELS.setdefault(op, {})
        for dtype in dtypes:
            key = (backend, np.dtype(dtype))
            if key in table:
                raise ValueError(
                    f"register_kernel: {op.__name__} already has kernel {table[key].__name__} for {backend} {key[1]}"
                )
            table[key] = kernel
        kernel.textbook_op = op
        return kernel

    return decorate


UPDATE_KERNELS: dict = {}  # (update rule, backend, dtype) -> a function updating the arrays in place


def register_update_kernel(rule: str, backend: str, dtypes: tuple):
    """Function decorator: run the decorated function in place of the optimizer update `rule`
    ("adamw": train.optim.AdamW's) for `backend` arrays of `dtypes` while the fast tier is on."""
    if backend not in BACKENDS:
        raise ValueError(f"register_update_kernel: backend must be one of {BACKENDS}, got {backend!r}")

    def decorate(kernel):
        for dtype in dtypes:
            key = (rule, backend, np.dtype(dtype))
            if key in UPDATE_KERNELS:
                raise ValueError(f"register_update_kernel: {rule} already has a kernel for {backend} {key[2]}")
            UPDATE_KERNELS[key] = kernel
        return kernel

    return decorate


def update_kernel(rule: str, array):
    """The kernel registered for the update `rule` on `array`'s backend and dtype while the fast
    tier is on; None otherwise (the optimizer then runs its textbook update)."""
    if _KernelTier.name != "fast":
        return None
    return UPDATE_KERNELS.get((rule, backend_name(array), array.dtype))


@dataclass(frozen=True)
class KernelEntry:
    """One registration: `kernel` runs in place of `op` (a textbook op, or the name of an
    optimizer's update rule) for `backend` arrays of `dtype`."""

    op: type | str
    backend: str
    dtype: np.dtype
    kernel: object

    @property
    def op_name(self) -> str:
        """ "activation.GELUFn" for an op, "optim.adamw" for an update rule."""
        if isinstance(self.op, str):
            return f"optim.{self.op}"
        return f"{self.op.__module__.rsplit('.', 1)[-1]}.{self.op.__name__}"

    @property
    def summary(self) -> str:
        """The first line of the kernel's docstring."""
        return (self.kernel.__doc__ or "").strip().split("\n")[0]


def registered_kernels() -> list:
    """Every registration, ops' and update rules', sorted by op, backend and dtype."""
    entries = [
        KernelEntry(op, backend, dtype, kernel)
        for op, table in KERNELS.items()
        for (backend, dtype), kernel in table.items()
    ]
    entries += [KernelEntry(rule, backend, dtype, kernel) for (rule, backend, dtype), kernel in UPDATE_KERNELS.items()]
    return sorted(entries, key=lambda e: (e.op_name, e.backend, e.dtype.name))


def current_tier() -> str:
    return _KernelTier.name


def set_tier(name: str) -> None:
    """Run ops on the "fast" tier (kernels where registered) or the "textbook" tier from now on."""
    if name not in TIERS:
        raise ValueError(f"kernel tier must be one of {TIERS}, got {name!r}")
    _KernelTier.name = name


@contextlib.contextmanager
def tier(name: str):
    """Run the block on the "fast" or "textbook" tier, then restore the tier it found."""
    previous = current_tier()
    set_tier(name)
    try:
        yield
    finally:
        set_tier(previous)


def configure_from_environment() -> None:
    """The tier SCRATCHVIT_KERNELS names ("fast" when unset)."""
    setting = os.environ.get("SCRATCHVIT_KERNELS", "fast")
    if setting not in TIERS:
        raise ValueError(f"SCRATCHVIT_KERNELS must be one of {TIERS}, got {setting!r}")
    set_tier(setting)
