"""Where the time goes: seconds per op, forward and backward, grouped by op family.

    >>> from scratchvit.check.profile import profile_ops
    >>> with profile_ops() as profile:
    ...     loss = F.cross_entropy(model(images), labels)
    ...     loss.backward()
    >>> print(profile.table())

Inside the block every Function subclass's `forward` and `backward` is wrapped by a timer; on
leaving it the original methods are put back, so code outside a block runs exactly as it would
without this module. An op's family is the module its textbook Function lives in (elementwise,
products, activation, norm, attention, shape, reduce, vision, loss, random: one file per family
in ops/), its name the textbook Function's class, and "ran" says which implementation ran: the
textbook op itself, or the kernel that ran in its place (scratchvit.kernels). A call made while
another op is being timed (a Function that calls another's forward) counts towards the outer
one only, so nothing is counted twice.

On a GPU the device is synchronised before and after every timed call, so each op is charged
for its own kernels (and the run is slower than without profiling). What the ops do not cover,
Python around them, building the graph, the optimizer, is the step's time minus the ops' total.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

from .. import backend
from ..autograd import Function

PHASES = ("forward", "backward")


def synchronize(device) -> None:
    """Wait until `device` has finished its queued work (a no-op on the CPU)."""
    device = backend.get_device(device)
    if device.kind == "cuda":
        device.xp.cuda.runtime.deviceSynchronize()


def _device_of_arrays(values):
    """The device of the first array among `values` (arrays, tuples of arrays, other things), or None."""
    for value in values:
        if isinstance(value, (tuple, list)):
            found = _device_of_arrays(value)
            if found is not None:
                return found
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            return backend.device_of(value)
    return None


class OpProfile:
    """Seconds and calls per (family, op, phase), filled by `profile_ops()`."""

    def __init__(self):
        self.seconds = defaultdict(float)  # (family, op, phase) -> seconds
        self.calls = defaultdict(int)  # (family, op, phase) -> number of calls
        self.ran = defaultdict(set)  # (family, op) -> names of the implementations that ran
        self._depth = 0  # > 0 while an op is being timed

    def add(self, function_class, phase: str, seconds: float) -> None:
        op = getattr(function_class, "textbook_op", function_class)
        family, name = op.__module__.rsplit(".", 1)[-1], op.__name__
        key = (family, name, phase)
        self.seconds[key] += seconds
        self.calls[key] += 1
        self.ran[family, name].add("textbook" if function_class is op else function_class.__name__)

    def total(self, phase: str | None = None) -> float:
        """Seconds inside ops, in one phase or in both."""
        return sum(seconds for (_, _, key_phase), seconds in self.seconds.items() if phase in (None, key_phase))

    def by_family(self) -> dict:
        """{family: {"forward": s, "backward": s}}, the family with the most time first."""
        return self._grouped(lambda family, op: family)

    def by_op(self) -> dict:
        """{"family.Op": {"forward": s, "backward": s, "calls": forward calls, "ran": "Kernel" or
        "textbook"}}, the most time first."""
        grouped = self._grouped(lambda family, op: f"{family}.{op}")
        for name, times in grouped.items():
            family, op = name.split(".", 1)
            times["calls"] = self.calls.get((family, op, "forward"), 0)
            times["ran"] = "+".join(sorted(self.ran[family, op]))
        return grouped

    def _grouped(self, name_of) -> dict:
        grouped = defaultdict(lambda: dict.fromkeys(PHASES, 0.0))
        for (family, op, phase), seconds in self.seconds.items():
            grouped[name_of(family, op)][phase] += seconds
        return dict(sorted(grouped.items(), key=lambda item: -(item[1]["forward"] + item[1]["backward"])))

    def table(self, step_seconds: float | None = None, top: int = 12) -> str:
        """The families, then the `top` ops, in milliseconds and shares of the ops' total; with
        step_seconds, a last line for the time outside the ops."""
        total = self.total()
        lines = [f"{'op family':<34} {'forward ms':>11} {'backward ms':>12} {'total ms':>10} {'share':>6}"]
        for family, times in self.by_family().items():
            lines.append(self._row(family, times, total))
        all_ops = {phase: self.total(phase) for phase in PHASES}
        lines.append(self._row("all ops", all_ops, total))
        if step_seconds is not None:
            outside = max(step_seconds - total, 0.0)
            lines.append(f"{'outside ops':<34} {'':>11} {'':>12} {1e3 * outside:>10.2f}   (Python, graph, optimizer)")
            lines.append(f"{'step':<34} {'':>11} {'':>12} {1e3 * step_seconds:>10.2f}")
        lines.append("")
        lines.append(
            f"{'op':<34} {'forward ms':>11} {'backward ms':>12} {'total ms':>10} {'share':>6} {'calls':>6}  ran"
        )
        for op, times in list(self.by_op().items())[:top]:
            lines.append(f"{self._row(op, times, total)} {times['calls']:>6}  {times['ran']}")
        return "\n".join(lines)

    @staticmethod
    def _row(name: str, times: dict, total: float) -> str:
        both = times["forward"] + times["backward"]
        share = 100.0 * both / total if total > 0 else 0.0
        return (
            f"{name:<34} {1e3 * times['forward']:>11.2f} {1e3 * times['backward']:>12.2f} {1e3 * both:>10.2f} "
            f"{share:>5.1f}%"
        )


def _timed(method, phase: str, profile: OpProfile):
    """`method` (a Function's forward or backward) with its seconds added to `profile`."""

    def timed(self, *args, **kwargs):
        if profile._depth:  # called from inside another timed op: the outer one counts it
            return method(self, *args, **kwargs)
        device = _device_of_arrays(args)
        on_gpu = device is not None and device.kind == "cuda"
        profile._depth += 1
        try:
            if on_gpu:
                synchronize(device)
            start = time.perf_counter()
            result = method(self, *args, **kwargs)
            if on_gpu:
                synchronize(device)
            profile.add(type(self), phase, time.perf_counter() - start)
        finally:
            profile._depth -= 1
        return result

    timed.__name__, timed.__doc__, timed.__wrapped__ = method.__name__, method.__doc__, method
    return timed


def _function_classes() -> list:
    """Every subclass of Function defined so far (all the ops once scratchvit.ops is imported)."""
    from .. import ops  # noqa: F401 - importing the op modules defines their Functions

    found, stack = [], [Function]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if subclass not in found:
                found.append(subclass)
                stack.append(subclass)
    return found


_active = False


@contextlib.contextmanager
def profile_ops():
    """Time every op's forward and backward inside the block; yields the OpProfile it fills."""
    global _active
    if _active:
        raise RuntimeError("profile_ops() is already active: profiles do not nest")
    profile = OpProfile()
    originals = []  # (class, method name, the function in its __dict__)
    for function_class in _function_classes():
        for phase in PHASES:
            method = function_class.__dict__.get(phase)  # only methods the class itself defines
            if method is not None:
                originals.append((function_class, phase, method))
                setattr(function_class, phase, _timed(method, phase, profile))
    _active = True
    try:
        yield profile
    finally:
        for function_class, phase, method in originals:
            setattr(function_class, phase, method)
        _active = False
