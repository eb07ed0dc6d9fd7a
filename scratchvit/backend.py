"""Which array library does the math: NumPy on the CPU, CuPy on a CUDA GPU.

This is the only module that imports CuPy, and it does so lazily, the first time a CUDA
device is asked for, so the package imports, trains and tests with NumPy alone.

Everything else asks this module: `xp_of(array)` for the array module of an array,
`get_device(name)` to parse "cpu" / "cuda" / "cuda:N", `to_device` to move an array,
`on_device(device)` to make a GPU current while its arrays are made and computed, and
`host_rng()` / `device_rng(device)` for random numbers (`manual_seed` seeds both).
"""

from __future__ import annotations

import contextlib
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
    """Make `device` the default for new tensors and modules; for "cuda:N", also the current
    CUDA device of this thread, so that CuPy's kernels and new arrays run there."""
    global _default_device
    _default_device = get_device(device)
    if _default_device.kind == "cuda":
        _cupy().cuda.Device(_default_device.index).use()


_NO_DEVICE_SCOPE = contextlib.nullcontext()


def on_device(device: Device):
    """A context in which `device` is CuPy's current device (nothing to do for the CPU).

    CuPy makes new arrays on the current device and runs a kernel only there, so every op, every
    factory and every optimizer step on "cuda:N" runs inside `with on_device(cuda:N)`."""
    if device.kind == "cpu":
        return _NO_DEVICE_SCOPE
    return _cupy().cuda.Device(device.index)


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
# Checks computed on a GPU. Reading their result at once would make the host wait for the
# device at every call; instead they are read with the next value the host reads, as CUDA
# reports a failed device-side assertion at the next synchronisation.
# ---------------------------------------------------------------------------------------
_pending_checks: dict[str, list] = {}  # message -> 0-d bool device arrays, True where the check passed


def check_on_device(passed, message: str) -> None:
    """Raise ValueError(message) unless `passed` (a 0-d bool array) is true: at once for a NumPy
    array; for a GPU array at the next `read_scalar` (nothing waits for the device here)."""
    if backend_name(passed) == "numpy":
        if not bool(passed):
            raise ValueError(message)
        return
    waiting = _pending_checks.setdefault(message, [])
    waiting.append(passed)
    if len(waiting) > 64:  # a long run between reads: keep one flag per message
        _pending_checks[message] = [xp_of(passed).stack(waiting).all()]


def read_scalar(array):
    """`array.item()` for a one-element array, the way a value comes to the host (see read_values)."""
    return read_values(array)[0]


def read_values(*values) -> list:
    """Python numbers of one-element arrays (and of plain numbers, as they are), in one copy per
    GPU. Checks waiting on that GPU (check_on_device) travel in the same copy, and the first that
    failed raises ValueError."""
    result = [value.item() if backend_name(value) == "numpy" and hasattr(value, "item") else value for value in values]
    on_gpu = [i for i, value in enumerate(values) if backend_name(value) == "cupy"]
    if not on_gpu:
        return result
    xp, device = xp_of(values[on_gpu[0]]), device_of(values[on_gpu[0]])
    if any(device_of(values[i]) != device for i in on_gpu):
        raise ValueError(
            f"read_values: the values are on several devices ({sorted({str(device_of(values[i])) for i in on_gpu})})"
        )
    messages = [m for m, flags in _pending_checks.items() if all(device_of(flag) == device for flag in flags)]
    flags = [xp.stack(_pending_checks.pop(message)).all() for message in messages]
    parts = [values[i].reshape(()).astype(np.float64) for i in on_gpu] + [flag.astype(np.float64) for flag in flags]
    copied = xp.stack(parts).get()
    for message, passed in zip(messages, copied[len(on_gpu) :], strict=True):
        if not passed:
            _pending_checks.clear()
            raise ValueError(message)
    for position, i in enumerate(on_gpu):
        result[i] = values[i].dtype.type(copied[position]).item()
    return result


# ---------------------------------------------------------------------------------------
# Random numbers. Parameters are drawn on the host generator and then moved, so a seed
# gives the same model on CPU and GPU; dropout masks and MAE noise use the device's own.
# ---------------------------------------------------------------------------------------
_seed: int | None = None
_host_rng = np.random.default_rng()
_device_rngs: dict = {}
_saved_device_states: dict[str, dict] = {}  # states restored before their device's generator exists


class CudaGenerator:
    """The random generator of one GPU, with its whole state on the host, so a checkpoint holds it.

    CuPy's generators keep their state in device memory, with no public way to read or restore
    it. Here a NumPy generator on the host draws one 63-bit key per call, and that call's numbers
    come from a Philox generator on the device made with that key (Philox is counter-based: making
    one is a single small kernel). `bit_generator.state` is the host generator's, as for the CPU.
    """

    def __init__(self, seed, device: Device):
        self.device = device
        self._keys = np.random.default_rng(seed)

    @property
    def bit_generator(self):
        return self._keys.bit_generator

    def _on_device(self):
        cupy = _cupy()
        key = int(self._keys.integers(2**63))
        return cupy.random.Generator(cupy.random.Philox4x3210(key))

    def random(self, shape, dtype=np.float64):
        """Uniform samples in [0, 1) of `shape`, on this generator's GPU."""
        with on_device(self.device):
            return self._on_device().random(shape, dtype=dtype)

    def standard_normal(self, shape, dtype=np.float64):
        """Standard normal samples of `shape`, on this generator's GPU."""
        with on_device(self.device):
            return self._on_device().standard_normal(shape, dtype=dtype)


def manual_seed(seed: int) -> None:
    """Seed the host generator and every device generator."""
    global _seed, _host_rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    _seed = int(seed)
    _host_rng = np.random.default_rng(_seed)
    _device_rngs.clear()
    _saved_device_states.clear()
    _device_rngs[CPU] = np.random.default_rng(_seed + 1)


def host_rng() -> np.random.Generator:
    """The NumPy generator used for parameter initialisation."""
    return _host_rng


def device_rng(device: Device):
    """The generator for random numbers drawn on `device` (dropout, MAE noise): a NumPy
    Generator for the CPU, a CudaGenerator for a GPU."""
    if device not in _device_rngs:
        seed = None if _seed is None else _seed + 1
        generator = np.random.default_rng(seed) if device.kind == "cpu" else CudaGenerator(seed, device)
        if str(device) in _saved_device_states:
            generator.bit_generator.state = _saved_device_states.pop(str(device))
        _device_rngs[device] = generator
    return _device_rngs[device]


@contextlib.contextmanager
def fixed_device_rng(device: Device, seed: int):
    """Inside the block, draw on `device` from a generator seeded with `seed`; the device's own
    generator is put back afterwards, untouched (gradient checks draw one dropout mask many times)."""
    saved = _device_rngs.get(device)
    _device_rngs[device] = np.random.default_rng(seed) if device.kind == "cpu" else CudaGenerator(seed, device)
    try:
        yield
    finally:
        if saved is None:
            _device_rngs.pop(device, None)
        else:
            _device_rngs[device] = saved


def get_rng_state() -> dict:
    """Every generator's state, to store in a checkpoint: the host generator's, and each device
    generator's under its device name ("cpu", "cuda:0", ...)."""
    state = {"host": _host_rng.bit_generator.state, "seed": _seed}
    state.update(_saved_device_states)
    for device, generator in _device_rngs.items():
        state[str(device)] = generator.bit_generator.state
    return state


def set_rng_state(state: dict) -> None:
    """Restore what get_rng_state() returned. A GPU's generator state is applied when that GPU's
    generator is first used, so restoring a GPU run's state on the CPU needs no CuPy."""
    global _seed
    _seed = state.get("seed")
    _host_rng.bit_generator.state = state["host"]
    _device_rngs.clear()
    _saved_device_states.clear()
    for name, device_state in state.items():
        if name not in ("host", "seed"):
            _saved_device_states[name] = device_state
    if "cpu" in state:
        device_rng(CPU)
