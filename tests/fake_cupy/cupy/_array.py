"""The stand-in's ndarray: a NumPy array plus the device it lives on, refusing what CuPy refuses.

- `numpy.asarray(a)` raises TypeError (`__array__`), as CuPy does: host copies are explicit, `.get()`.
- An operation mixing in a NumPy array raises TypeError ("Unsupported type"), as CuPy's kernels do;
  Python and NumPy scalars are accepted.
- An operation on an array that is not on the current device raises ValueError, as CuPy's kernels do.
- `out=` must be a device array.
- Reductions return 0-d device arrays, never host scalars.
- Every copy to the host, and every host copy to a device, is counted in `stand_in.counts`.
"""

from __future__ import annotations

import numbers
import sys

import numpy

from . import stand_in

# Methods that make a view or read metadata: CuPy runs no kernel, so it does not check the device.
_VIEW_METHODS = frozenset({"reshape", "view", "transpose", "swapaxes", "squeeze", "ravel"})


def _is_scalar(value) -> bool:
    return isinstance(value, (numbers.Number, numpy.generic)) and not isinstance(value, numpy.ndarray)


def unwrap(value, what: str = "argument"):
    """The NumPy array behind a device array (on the current device); NumPy arrays are refused.

    Lists and tuples are unwrapped item by item, so `concatenate([a, b])` works as in CuPy.
    """
    if isinstance(value, ndarray):
        current = stand_in.current_device()
        if value._device != current:
            raise ValueError(
                f"The device where the array resides ({value._device}) is different from the current "
                f"device ({current}). Peer access is unavailable between these devices."
            )
        return value._array
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(unwrap(item, what) for item in value)
    return value


def unwrap_operand(value):
    """An operand of a ufunc: a device array or a scalar; lists and NumPy arrays are refused."""
    if isinstance(value, ndarray) or _is_scalar(value) or value is None:
        return unwrap(value)
    raise TypeError(f"Unsupported type {type(value)}")


def wrap(value, device: int):
    """Device arrays for NumPy results: arrays and NumPy scalars (as 0-d arrays, as CuPy returns)."""
    if isinstance(value, numpy.ndarray):
        return ndarray._of(value, device)
    if isinstance(value, numpy.generic):
        return ndarray._of(numpy.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(wrap(item, device) for item in value)
    if isinstance(value, list):
        return [wrap(item, device) for item in value]
    return value


def unwrap_out(kwargs: dict) -> tuple:
    """kwargs with `out` unwrapped, and the device arrays it named (returned instead of NumPy's)."""
    out = kwargs.get("out")
    if out is None:
        return kwargs, None
    outs = out if isinstance(out, tuple) else (out,)
    for target in outs:
        if not isinstance(target, ndarray):
            raise TypeError(f"output must be a cupy.ndarray, got {type(target)}")
    raw = tuple(unwrap(target) for target in outs)
    return dict(kwargs, out=raw if isinstance(out, tuple) else raw[0]), out


def host_to_device(value, dtype=None, copy: bool | None = None):
    """`cupy.asarray` / `cupy.array`: host data copied to the current device (counted)."""
    device = stand_in.current_device()
    if isinstance(value, ndarray):
        if value._device == device and copy is not True and (dtype is None or numpy.dtype(dtype) == value.dtype):
            return value
        return ndarray._of(numpy.array(value._array, dtype=dtype), device)  # a copy between devices
    if _contains_device_array(value):
        raise TypeError("cannot make an array of a list that holds device arrays; use cupy.stack")
    stand_in.count_host_to_device()
    return ndarray._of(numpy.array(value, dtype=dtype), device)


def _contains_device_array(value) -> bool:
    if isinstance(value, ndarray):
        return True
    return isinstance(value, (list, tuple)) and any(_contains_device_array(item) for item in value)


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: NumPy memory tagged with the simulated device it lives on."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._array = numpy.empty(shape, dtype=dtype, order=order)
        self._device = stand_in.current_device()

    @classmethod
    def _of(cls, array: numpy.ndarray, device: int) -> ndarray:
        made = object.__new__(cls)
        made._array = array
        made._device = device
        return made

    # ---- metadata: no kernel, no device check --------------------------------------------------
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    strides = property(lambda self: self._array.strides)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: ndarray._of(self._array.T, self._device))

    @property
    def __cuda_array_interface__(self) -> dict:
        interface = self._array.__array_interface__
        return {key: interface[key] for key in ("shape", "typestr", "data", "strides")} | {"version": 3}

    @property
    def device(self):
        from .cuda import Device

        return Device(self._device)

    def __len__(self) -> int:
        return len(self._array)

    def __iter__(self):
        return (ndarray._of(row, self._device) for row in self._array)

    # ---- explicit copies between host and device -----------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def get(self, stream=None, order="C", out=None) -> numpy.ndarray:
        stand_in.count_device_to_host()
        if out is not None:
            out[...] = self._array
            return out
        return numpy.array(self._array, order=order)

    def set(self, array, stream=None) -> None:
        if not isinstance(array, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(array)}")
        stand_in.count_host_to_device()
        self._array[...] = array

    def item(self):
        stand_in.count_device_to_host()
        return self._array.item()

    def tolist(self):
        stand_in.count_device_to_host()
        return self._array.tolist()

    def tobytes(self, order="C") -> bytes:
        stand_in.count_device_to_host()
        return self._array.tobytes(order)

    def __float__(self) -> float:
        return float(self.get())

    def __int__(self) -> int:
        return int(self.get())

    def __bool__(self) -> bool:
        return bool(self.get())

    def __complex__(self) -> complex:
        return complex(self.get())

    def __repr__(self) -> str:
        return repr(self.get()).replace("array", "fake_cupy_array", 1)

    def __str__(self) -> str:
        return str(self.get())

    # ---- indexing -------------------------------------------------------------------------------
    def _index(self, key):
        """A key with device arrays unwrapped; host index arrays are copied over, as CuPy does."""
        if isinstance(key, tuple):
            return tuple(self._index(part) for part in key)
        if isinstance(key, ndarray):
            return unwrap(key)
        if isinstance(key, (numpy.ndarray, list)):
            stand_in.count_host_to_device()
        return key

    def __getitem__(self, key):
        return ndarray._of(self._array[self._index(key)], self._device)

    def __setitem__(self, key, value):
        if isinstance(value, ndarray):
            value = unwrap(value)
        elif not _is_scalar(value):
            stand_in.count_host_to_device()
        self._array[self._index(key)] = value

    # ---- NumPy's protocols: numpy.exp(a), numpy.concatenate([a, b]) run on the device ----------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return call_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        module = sys.modules[__package__]  # this stand-in, whatever name it was imported under
        for part in func.__module__.split(".")[1:]:
            module = getattr(module, part, None)
        implementation = getattr(module, func.__name__, None)
        if implementation is None or implementation is func:
            return NotImplemented
        return implementation(*args, **kwargs)

    # ---- every other method: NumPy's, on the device ---------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._array, name)
        if not callable(method):
            raise AttributeError(f"the stand-in's ndarray has no attribute {name!r}")
        device = self._device

        def on_device(*args, **kwargs):
            if name not in _VIEW_METHODS:
                unwrap(self)  # the device check a kernel launch makes
            kwargs, out = unwrap_out(kwargs)
            result = getattr(self._array, name)(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
            return out if out is not None else wrap(result, device)

        return on_device


def call_ufunc(ufunc, method: str, inputs: tuple, kwargs: dict):
    """A NumPy ufunc run on the device, as CuPy's ufunc of the same name (`method` as in
    `__array_ufunc__`: "__call__", "reduce", "accumulate", "outer", "at")."""
    kwargs, out = unwrap_out(kwargs)
    if method == "at":  # add.at(a, indices, values): the indices may be a host array, as in indexing
        target, indices, *values = inputs
        raw_values = [unwrap_operand(value) for value in values]
        ufunc.at(unwrap(target), target._index(indices), *raw_values)
        return None
    raw = [unwrap_operand(value) for value in inputs]
    result = getattr(ufunc, method)(*raw, **kwargs) if method != "__call__" else ufunc(*raw, **kwargs)
    if out is not None:
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return wrap(result, stand_in.current_device())


def _operator(ufunc_name: str, reflected: bool = False, inplace: bool = False):
    function = getattr(numpy, ufunc_name)

    def apply(self, other):
        if _defers_to(other):
            return NotImplemented  # Python then asks `other`'s reflected operator
        if inplace:
            return call_ufunc(function, "__call__", (self, other), {"out": (self,)})
        return call_ufunc(function, "__call__", (other, self) if reflected else (self, other), {})

    return apply


def _defers_to(other) -> bool:
    """CuPy leaves a binary operator to an operand of another type with a higher __array_priority__."""
    return not isinstance(other, ndarray) and getattr(other, "__array_priority__", 0) > ndarray.__array_priority__


def _unary(ufunc_name: str):
    function = getattr(numpy, ufunc_name)
    return lambda self: call_ufunc(function, "__call__", (self,), {})


_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "truediv": "true_divide",
    "floordiv": "floor_divide",
    "mod": "remainder",
    "pow": "power",
    "matmul": "matmul",
    "and": "bitwise_and",
    "or": "bitwise_or",
    "xor": "bitwise_xor",
    "lshift": "left_shift",
    "rshift": "right_shift",
}
for _name, _ufunc in _BINARY.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_name}__", _operator(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_name}__", _operator(_ufunc, inplace=True))
_COMPARISONS = {
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
    "eq": "equal",
    "ne": "not_equal",
}
for _name, _ufunc in _COMPARISONS.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
for _name, _ufunc in {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}.items():
    setattr(ndarray, f"__{_name}__", _unary(_ufunc))
