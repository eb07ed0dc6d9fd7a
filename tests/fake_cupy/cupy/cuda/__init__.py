"""cupy.cuda of the stand-in: devices (a current-device stack per thread), streams and the runtime."""

from __future__ import annotations

import types

from .. import stand_in


class Device:
    """`Device(i)`: as a context manager it makes device i current in this thread, then restores."""

    def __init__(self, device=None):
        self.id = stand_in.current_device() if device is None else stand_in.check_device_id(int(device))

    def __enter__(self):
        stand_in.push_device(self.id)
        return self

    def __exit__(self, *exc_info):
        stand_in.pop_device()

    def use(self) -> None:
        stand_in.use_device(self.id)

    def synchronize(self) -> None:
        stand_in.count_sync()

    compute_capability = "90"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __int__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


def get_device_id() -> int:
    return stand_in.current_device()


class Stream:
    """A CUDA stream: work on it runs in order; `synchronize` waits for it (counted)."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptr: int = 0):
        self.device_id = stand_in.current_device()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def use(self):
        return self

    def synchronize(self) -> None:
        stand_in.count_sync()


class Event:
    """A CUDA event: `record` marks a point on a stream, `synchronize` waits for it (counted)."""

    def __init__(self, block: bool = False, disable_timing: bool = False, interprocess: bool = False):
        self.done = False

    def record(self, stream=None) -> None:
        self.done = True

    def synchronize(self) -> None:
        stand_in.count_sync()


Stream.null = Stream(null=True)


def get_current_stream() -> Stream:
    return Stream.null


def _set_device(index: int) -> None:
    stand_in.use_device(index)


def _device_synchronize() -> None:
    stand_in.count_sync()


runtime = types.SimpleNamespace(
    getDeviceCount=lambda: stand_in.DEVICE_COUNT,
    getDevice=stand_in.current_device,
    setDevice=_set_device,
    deviceSynchronize=_device_synchronize,
    is_hip=False,
)
