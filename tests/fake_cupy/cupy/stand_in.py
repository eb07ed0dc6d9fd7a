"""What this stand-in keeps that CuPy keeps inside the driver: the current device of each thread,
and the count of every wait on the device.

`counts` holds three numbers the tests read (`main_thread_counts` the same, for the main thread
alone: the waits a training step makes, apart from a loader's background thread):
- "device_to_host": copies of device memory to the host (`.get()`, `asnumpy`, `.item()`, `float()`, ...);
- "host_to_device": copies of host memory to a device (`asarray` of host data, `.set()`, host values
  written into a device array);
- "syncs": every wait of the host on a device: each device-to-host copy and each explicit synchronize.

SCRATCHVIT_FAKE_CUPY_DEVICES sets how many devices are simulated (2 by default).
"""

from __future__ import annotations

import os
import threading

DEVICE_COUNT = int(os.environ.get("SCRATCHVIT_FAKE_CUPY_DEVICES", "2"))
counts = {"device_to_host": 0, "host_to_device": 0, "syncs": 0}
main_thread_counts = dict(counts)
_threads = threading.local()


def reset_counts() -> None:
    for name in counts:
        counts[name] = main_thread_counts[name] = 0


def _count(*names: str) -> None:
    on_main_thread = threading.current_thread() is threading.main_thread()
    for name in names:
        counts[name] += 1
        if on_main_thread:
            main_thread_counts[name] += 1


def count_device_to_host() -> None:
    _count("device_to_host", "syncs")


def count_host_to_device() -> None:
    _count("host_to_device")


def count_sync() -> None:
    _count("syncs")


def _stack() -> list:
    """This thread's current-device stack; as in CUDA, a new thread starts on device 0."""
    if not hasattr(_threads, "stack"):
        _threads.stack = [0]
    return _threads.stack


def current_device() -> int:
    return _stack()[-1]


def check_device_id(index: int) -> int:
    if not isinstance(index, int) or not 0 <= index < DEVICE_COUNT:
        raise ValueError(f"invalid device ordinal {index!r}: {DEVICE_COUNT} device(s) are simulated")
    return index


def push_device(index: int) -> None:
    _stack().append(check_device_id(index))


def pop_device() -> None:
    _stack().pop()


def use_device(index: int) -> None:
    """Make `index` the current device of this thread outside any `with Device(...)` block."""
    _stack()[0] = check_device_id(index)
