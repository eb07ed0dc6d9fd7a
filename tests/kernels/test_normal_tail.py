"""The normal density and tail of normal_tail.py (GELU's float32 path) against math.erfc / math.exp."""

from __future__ import annotations

import math

import numpy as np
from strategies import host

from scratchvit.kernels.cpu.normal_tail import MILLS_CLIP, normal_density_and_tail


def density_and_tail(device, values, dtype):
    x = device.xp.asarray(values, dtype=dtype)
    magnitude, density, tail, work = (device.xp.empty_like(x) for _ in range(4))
    normal_density_and_tail(x, magnitude, density, tail, work)
    return host(magnitude), host(density), host(tail)


def exact_tail(u):
    return np.array([0.5 * math.erfc(v / math.sqrt(2)) for v in u])


def test_the_fit_has_its_relative_error_in_float64(device):
    """Evaluated in float64 the rational Mills ratio keeps the fitted 6.3e-9 (tools/fit_mills_ratio.py)
    relative to Phi(-u) itself, however small: at u = 14, Phi(-u) = 7.8e-45."""
    u = np.linspace(0, 14, 100_001)
    _, density, tail = density_and_tail(device, u, np.float64)
    np.testing.assert_allclose(density, np.exp(-u * u / 2) / math.sqrt(2 * math.pi), rtol=1e-14)
    assert np.max(np.abs(tail / exact_tail(u) - 1)) < 6.5e-9


def test_float32_tail_is_accurate_relative_to_itself(device):
    """In float32 the relative error grows with u^2 / 2 float32 units of exp's argument: under 1e-6
    to u = 5.3; 4.5e-6 at u = 12, where Phi(-u) = 1.8e-33 is still a normal float32 number."""
    grid = np.linspace(-12, 12, 200_001).astype(np.float32)
    magnitude, density, tail = density_and_tail(device, grid, np.float32)
    u = np.abs(grid.astype(np.float64))
    np.testing.assert_array_equal(magnitude, np.abs(grid))
    relative_error = np.abs(tail / exact_tail(u) - 1)
    assert np.max(relative_error[u <= 5.3]) < 1e-6
    assert np.max(relative_error) < 6e-6
    assert np.max(np.abs(density / (np.exp(-u * u / 2) / math.sqrt(2 * math.pi)) - 1)) < 6e-6
    assert np.all(np.diff(tail[grid >= 0]) <= 0)  # falls as u grows


def test_clip_and_edges(device):
    values = [0.0, -0.0, 16.0, -1e30, np.inf, -np.inf, np.nan]
    magnitude, density, tail = density_and_tail(device, values, np.float32)
    np.testing.assert_array_equal(magnitude[:6], [0.0, 0.0, MILLS_CLIP, MILLS_CLIP, MILLS_CLIP, MILLS_CLIP])
    assert tail[0] == tail[1] == np.float32(0.5)  # Phi(0) = 1/2 to the last bit
    assert np.all(density[2:6] == 0) and np.all(tail[2:6] == 0)  # phi(15) underflows float32
    assert np.isnan(magnitude[6]) and np.isnan(density[6]) and np.isnan(tail[6])
