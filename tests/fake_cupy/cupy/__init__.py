"""A strict stand-in for CuPy, backed by NumPy, so scratchvit's CUDA path is tested without a GPU.

tests/conftest.py puts the folder above this package first on the path when SCRATCHVIT_FAKE_CUPY=1.
Then `backend.get_device("cuda")` finds "CuPy" with `stand_in.DEVICE_COUNT` devices, and every test
parametrized over the device runs its cuda case here. The stand-in is stricter than a convenience
wrapper would be, so that code which runs here also runs on CuPy (see `_array` for the rules it
enforces); tests/cuda/test_stand_in_contract.py holds the same rules against real CuPy on a GPU.

Any NumPy function or ufunc is available under its CuPy name and runs on the current device's
arrays. `fuse` runs its Python body as written (CuPy compiles it into one kernel); hand-written
CUDA kernels (ElementwiseKernel, ReductionKernel, RawKernel) cannot run here.
"""

from __future__ import annotations

import functools

import numpy

from . import cuda, random, stand_in
from ._array import call_ufunc, host_to_device, ndarray, unwrap, unwrap_out, wrap

__version__ = "13.6.0+stand-in"
__all__ = ["asarray", "array", "asnumpy", "cuda", "fuse", "get_array_module", "ndarray", "random", "stand_in"]

# Names that are the same objects in CuPy as in NumPy: dtypes and constants.
_SHARED_OBJECTS = (numpy.dtype, type)


def asarray(value, dtype=None, order=None):
    return host_to_device(value, dtype=dtype)


def array(value, dtype=None, copy=True, order="K", ndmin=0):
    made = host_to_device(value, dtype=dtype, copy=copy)
    return made if made.ndim >= ndmin else made.reshape((1,) * (ndmin - made.ndim) + made.shape)


asanyarray = asarray


def asnumpy(value, stream=None, order="C", out=None):
    if isinstance(value, ndarray):
        return value.get(order=order, out=out)
    return numpy.asarray(value, order=order)


def get_array_module(*values):
    return __import__(__name__) if any(isinstance(value, ndarray) for value in values) else numpy


class _Ufunc:
    """A CuPy ufunc: NumPy's of the same name, refusing NumPy operands."""

    def __init__(self, numpy_ufunc):
        self._ufunc = numpy_ufunc
        self.__name__ = numpy_ufunc.__name__
        self.nin, self.nout = numpy_ufunc.nin, numpy_ufunc.nout

    def __call__(self, *inputs, **kwargs):
        return call_ufunc(self._ufunc, "__call__", inputs, kwargs)

    def reduce(self, *inputs, **kwargs):
        return call_ufunc(self._ufunc, "reduce", inputs[:1], dict(kwargs, **_positional(inputs[1:], "axis", "dtype")))

    def accumulate(self, *inputs, **kwargs):
        return call_ufunc(self._ufunc, "accumulate", inputs[:1], dict(kwargs, **_positional(inputs[1:], "axis")))

    def outer(self, *inputs, **kwargs):
        return call_ufunc(self._ufunc, "outer", inputs, kwargs)

    def at(self, *inputs):
        return call_ufunc(self._ufunc, "at", inputs, {})


def _positional(values, *names) -> dict:
    return dict(zip(names, values, strict=False))  # the positional arguments given


def _on_device(function):
    """A NumPy function run on the current device's arrays; its array results stay there."""

    @functools.wraps(function)
    def on_device(*args, **kwargs):
        kwargs, out = unwrap_out(kwargs)
        result = function(*unwrap(args), **{name: unwrap(value) for name, value in kwargs.items()})
        return out if out is not None else wrap(result, stand_in.current_device())

    return on_device


class _Submodule:
    """cupy.linalg, cupy.fft: NumPy's submodule of the same name, on the device."""

    def __init__(self, numpy_module):
        self._module = numpy_module

    def __getattr__(self, name: str):
        return _on_device(getattr(self._module, name))


linalg = _Submodule(numpy.linalg)
fft = _Submodule(numpy.fft)


def fuse(*args, **kwargs):
    """`@cupy.fuse()` or `@cupy.fuse`: here the body runs as written, one operation at a time."""

    def decorate(function):
        return functools.wraps(function)(lambda *inputs: function(*inputs))

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


class _NeedsAGPU:
    """ElementwiseKernel, ReductionKernel, RawKernel: CUDA source that only a GPU compiles."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}: hand-written CUDA kernels need a real GPU")


ElementwiseKernel = type("ElementwiseKernel", (_NeedsAGPU,), {})
ReductionKernel = type("ReductionKernel", (_NeedsAGPU,), {})
RawKernel = type("RawKernel", (_NeedsAGPU,), {})


@functools.cache
def __getattr__(name: str):
    found = getattr(numpy, name)  # AttributeError for what NumPy lacks too
    if isinstance(found, numpy.ufunc):
        return _Ufunc(found)
    if isinstance(found, _SHARED_OBJECTS) or not callable(found):
        return found
    return _on_device(found)
