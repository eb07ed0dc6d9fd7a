"""Which array library does the math: NumPy on the CPU, CuPy on a CUDA GPU.

This is the only module that imports CuPy, and it does so lazily, the first time a CUDA
device is asked for, so the package imports, trains and tests with NumPy alone.

Everything else asks this module: `xp_of(array)` for the array module of an array,
`get_device(name)` to parse "cpu" / "cuda" / "cuda:N", `to_device` to move an array, and
`host_rng()` / `device_rng(device)` for random numbers (`manual_seed` seeds both).
"""

from __future__ import annotations

import importlib
import os

import numpy as np

DEFAULT_DTYPE = np.float32
FLOAT_DTYPES = (np.float32, np.float64)

_CUPY_INSTALL_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install 'scratchvit[cuda12]'` "
    "(cupy-cuda12x) or `pip install 'scratchvit[cuda13]'` (cupy-cuda13x), on a machine with an NVIDIA GPU"
)


class Device:
    """A place where arrays live: `Device("cpu")` or `Device("cuda", 0)`."""

    def __init__(self, kind: str, index: int | None = None):
        self.kind = kind
        self.index = index

    @property
    def xp(self):
        """The array module for this device: numpy or cupy."""
        return np if self.kind == "cpu" else _cupy()

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


CPU = Device("cpu")
_cupy_module = None


def _cupy():
    """Import CuPy on first use; raise a clear error saying how to get it otherwise."""
    global _cupy_module
    if _cupy_module is None:
        try:
            import cupy
        except ImportError as error:
            raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed: {_CUPY_INSTALL_HINT}") from error
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:  # CUDARuntimeError when the driver or GPU is missing
            raise RuntimeError(f"device 'cuda' needs a CUDA GPU, but CuPy found none ({error})") from error
        if count == 0:
            raise RuntimeError("device 'cuda' needs a CUDA GPU, but CuPy found none")
        _cupy_module = cupy
    return _cupy_module


def cupy_module(name: str):
    """A part of CuPy that `import cupy` does not load, e.g. "cupy.cuda.nccl" (the NCCL bindings
    distributed.py all-reduces GPU arrays with) or "cupyx.scipy.special" (erf). CuPy itself is
    checked first, as for a CUDA device; ImportError when that part is missing."""
    _cupy()
    return importlib.import_module(name)


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _cupy()
    except RuntimeError:
        return False
    return True


def get_device(device: str | Device | None = None) -> Device:
    """Parse a device name: None (the default device), "cpu", "cuda" or "cuda:N"."""
    if device is None:
        return default_device()
    if isinstance(device, Device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str like 'cpu' or 'cuda:0', got {type(device).__name__}")
    name = device.strip().lower()
    if name == "cpu":
        return CPU
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name[5:] or "0"
        if not index_text.isdigit():
            raise ValueError(f"device {device!r} is not valid: expected 'cuda' or 'cuda:N' with N an integer")
        index = int(index_text)
        count = _cupy().cuda.runtime.getDeviceCount()
        if index >= count:
            raise ValueError(f"device {device!r} does not exist: CuPy sees {count} GPU(s)")
        return Device("cuda", index)
    raise ValueError(f"device {device!r} is not known: expected 'cpu', 'cuda' or 'cuda:N'")


_default_device: Device | None = None


def default_device() -> Device:
    """The device new tensors go to: set_default_device(), else $SCRATCHVIT_DEVICE, else cpu."""
    global _default_device
    if _default_device is None:
        _default_device = get_device(os.environ.get("SCRATCHVIT_DEVICE", "cpu") or "cpu")
    return _default_device


def set_default_device(device: str | Device) -> None:
    """Make `device` the default for new tensors and modules."""
    global _default_device
    _default_device = get_device(device)


def xp_of(array):
    """The array module (numpy or cupy) that owns `array`."""
    if backend_name(array) == "cupy":
        return _cupy()
    return np


def backend_name(array) -> str:
    """ "numpy" or "cupy": the array module that owns `array`, by name (CuPy is not imported)."""
    return "cupy" if type(array).__module__.startswith("cupy") else "numpy"


def device_of(array) -> Device:
    """The Device an array lives on."""
    if backend_name(array) == "cupy":
        return Device("cuda", array.device.id)
    return CPU


def to_device(array, device: Device):
    """`array` on `device`: the same object when already there, else a copy."""
    if device.kind == "cpu":
        return to_numpy(array)
    cupy = _cupy()
    with cupy.cuda.Device(device.index):
        if isinstance(array, cupy.ndarray) and array.device.id == device.index:
            return array
        return cupy.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy array of a numpy or cupy array (the array itself when it is already NumPy)."""
    if isinstance(array, np.ndarray):
        return array
    if type(array).__module__.startswith("cupy"):
        return array.get()
    return np.asarray(array)


# ---------------------------------------------------------------------------------------
# Random numbers. Parameters are drawn on the host generator and then moved, so a seed
# gives the same model on CPU and GPU; dropout masks and MAE noise use the device's own.
# ---------------------------------------------------------------------------------------
_seed: int | None = None
_host_rng = np.random.default_rng()
_device_rngs: dict[Device, object] = {}


def manual_seed(seed: int) -> None:
    """Seed the host generator and every device generator."""
    global _seed, _host_rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    _seed = int(seed)
    _host_rng = np.random.default_rng(_seed)
    _device_rngs.clear()
    _device_rngs[CPU] = np.random.default_rng(_seed + 1)


def host_rng() -> np.random.Generator:
    """The NumPy generator used for parameter initialisation."""
    return _host_rng


def device_rng(device: Device):
    """The generator for random numbers drawn on `device` (dropout, MAE noise)."""
    if device not in _device_rngs:
        seed = None if _seed is None else _seed + 1
        if device.kind == "cpu":
            _device_rngs[device] = np.random.default_rng(seed)
        else:
            cupy = _cupy()
            with cupy.cuda.Device(device.index):
                _device_rngs[device] = cupy.random.default_rng(seed)
    return _device_rngs[device]


def get_rng_state() -> dict:
    """The generators' states, to store in a checkpoint (host and CPU device generator)."""
    state = {"host": _host_rng.bit_generator.state, "seed": _seed}
    if CPU in _device_rngs:
        state["cpu"] = _device_rngs[CPU].bit_generator.state
    return state


def set_rng_state(state: dict) -> None:
    """Restore what get_rng_state() returned."""
    global _seed
    _seed = state.get("seed")
    _host_rng.bit_generator.state = state["host"]
    if "cpu" in state:
        device_rng(CPU).bit_generator.state = state["cpu"]
