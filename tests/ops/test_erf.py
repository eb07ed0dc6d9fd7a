"""The own float64 erf for machines without SciPy (Maclaurin series / continued fraction) against
math.erf, and the library-or-own choice of erf."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from strategies import finite_floats, host

from scratchvit.ops.erf import erf, erf_series


def test_erf_series_matches_math_erf_on_a_grid(device):
    grid = np.concatenate(
        [np.linspace(-10, 10, 20001), [0.0, 3.0, -3.0, np.nextafter(3.0, 4.0), np.nextafter(-3.0, -4.0), 1e-300]]
    )
    values = host(erf_series(device.xp.asarray(grid)))
    expected = np.array([math.erf(v) for v in grid])
    assert np.max(np.abs(values - expected)) < 1e-7
    assert values[np.flatnonzero(grid == 0.0)[0]] == 0.0


@given(value=finite_floats(-12, 12))
def test_erf_series_is_odd_and_accurate_anywhere(device, value):
    values = host(erf_series(device.xp.asarray([value, -value])))
    assert abs(values[0] - math.erf(value)) < 1e-7
    assert values[1] == -values[0]


def test_erf_series_keeps_float32(device):
    x = device.xp.asarray(np.linspace(-4, 4, 17), dtype=np.float32)
    out = erf_series(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(host(out), [math.erf(v) for v in host(x)], atol=1e-6)


def test_erf_without_the_library_is_the_series(device, monkeypatch):
    from scratchvit.ops import erf as erf_module

    x = device.xp.asarray(np.linspace(-6, 6, 101))
    np.testing.assert_allclose(host(erf(x)), [math.erf(v) for v in host(x)], rtol=0, atol=1e-13)
    monkeypatch.setattr(erf_module, "_library_erfs", {device.xp: None})
    np.testing.assert_array_equal(host(erf(x)), host(erf_series(x)))


def test_erf_series_keeps_shape(device):
    x = device.xp.zeros((2, 3, 1))
    assert erf_series(x).shape == (2, 3, 1)
