"""The CuPy stand-in (tests/fake_cupy) refuses what CuPy refuses and accepts what CuPy accepts:
each case runs on real CuPy and on the stand-in, and the two must end alike (the same exception
type, or results of the same kind). On a GPU machine only: under the stand-in there is no CuPy to
hold it to, and without a GPU no CuPy at all."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchvit import backend

pytestmark = pytest.mark.cuda
STAND_IN = Path(__file__).resolve().parent.parent / "fake_cupy" / "cupy"

CASES = {
    "numpy.asarray of a device array": lambda xp: np.asarray(xp.arange(3)),
    "a device array plus a NumPy array": lambda xp: xp.arange(3) + np.arange(3),
    "a NumPy array plus a device array": lambda xp: np.arange(3) + xp.arange(3),
    "a NumPy out= buffer": lambda xp: xp.add(xp.arange(3.0), 1.0, out=np.zeros(3)),
    "a NumPy condition of where": lambda xp: xp.where(np.array([True, False]), xp.zeros(2), xp.ones(2)),
    "concatenate with a NumPy array": lambda xp: xp.concatenate([xp.zeros(2), np.zeros(2)]),
    "a list as a ufunc operand": lambda xp: xp.add(xp.zeros(2), [1.0, 2.0]),
    "a NumPy scalar operand": lambda xp: xp.arange(3.0) * np.float32(2),
    "a Python scalar operand": lambda xp: 2.0 * xp.arange(3.0),
    "a NumPy ufunc on a device array": lambda xp: np.exp(xp.arange(3.0)),
    "a NumPy function on device arrays": lambda xp: np.concatenate([xp.zeros(2), xp.ones(2)]),
    "a reduction": lambda xp: xp.arange(3.0).sum(),
    "float() of a 0-d array": lambda xp: float(xp.arange(3.0).sum()),
    "a NumPy index array": lambda xp: xp.arange(5)[np.array([0, 2])],
    "asarray of host data": lambda xp: xp.asarray(np.arange(3)),
    ".get() of a device array": lambda xp: xp.arange(3).get(),
    "setting a NumPy array into a device array": lambda xp: xp.zeros(3).__setitem__(slice(None), np.ones(3)),
}


def load_stand_in():
    """The stand-in package under another name, beside the real CuPy."""
    spec = importlib.util.spec_from_file_location(
        "cupy_stand_in", STAND_IN / "__init__.py", submodule_search_locations=[str(STAND_IN)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["cupy_stand_in"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cupy_and_stand_in():
    real = sys.modules.get("cupy")
    if real is not None and real.__file__ and Path(real.__file__).parent == STAND_IN:
        pytest.skip("the stand-in is what `import cupy` gives here: there is no real CuPy to hold it to")
    if not backend.cuda_is_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    import cupy

    return cupy, load_stand_in()


def outcome(case, xp) -> tuple:
    """("raises", exception type) or ("returns", the kind of result)."""
    try:
        result = case(xp)
    except Exception as error:  # the contract is which ones raise, and what
        return "raises", type(error).__name__
    if isinstance(result, xp.ndarray):
        return "returns", f"device array of {result.ndim} dims"
    return "returns", type(result).__name__


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_stand_in_ends_as_cupy_does(cupy_and_stand_in, name):
    cupy, stand_in = cupy_and_stand_in
    assert outcome(CASES[name], stand_in) == outcome(CASES[name], cupy)
