"""cupy.random of the stand-in: Generators over NumPy's bit generators, drawing on their device.

A bit generator belongs to the device that was current when it was made, and refuses to draw on
another (CuPy: "This Generator state is allocated in a different device").
"""

from __future__ import annotations

import numpy

from .. import stand_in
from .._array import wrap


class BitGenerator:
    _numpy_kind = numpy.random.PCG64

    def __init__(self, seed=None, *, size: int = -1):
        self._numpy = self._numpy_kind(seed)
        self._device = stand_in.current_device()

    def _check_device(self) -> None:
        if stand_in.current_device() != self._device:
            raise RuntimeError("This Generator state is allocated in a different device")


class XORWOW(BitGenerator):
    pass


class MRG32k3a(BitGenerator):
    pass


class Philox4x3210(BitGenerator):
    _numpy_kind = numpy.random.Philox


class Generator:
    """Draws on the bit generator's device; results are device arrays."""

    def __init__(self, bit_generator: BitGenerator):
        if not isinstance(bit_generator, BitGenerator):
            raise TypeError(f"bit_generator must be a cupy.random BitGenerator, got {type(bit_generator)}")
        self.bit_generator = bit_generator
        self._numpy = numpy.random.Generator(bit_generator._numpy)

    def _draw(self, name: str, *args, **kwargs):
        self.bit_generator._check_device()
        return wrap(getattr(self._numpy, name)(*args, **kwargs), self.bit_generator._device)

    def random(self, size=None, dtype=numpy.float64, out=None):
        return self._draw("random", size, dtype=dtype)

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        return self._draw("standard_normal", size, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        return self._draw("uniform", low, high, size).astype(dtype, copy=False)

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        return self._draw("integers", low, high, size, dtype=dtype, endpoint=endpoint)


def default_rng(seed=None) -> Generator:
    return Generator(XORWOW(seed))
