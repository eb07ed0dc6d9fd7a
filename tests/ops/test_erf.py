"""The own erfs against math.erf: the rational one for float32 (tools/fit_erf.py), and the
Maclaurin series / continued fraction one for float64 without SciPy."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from strategies import finite_floats, host

from scratchvit.ops import chunks
from scratchvit.ops.erf import ERF_CLIP, erf, erf_rational, erf_series


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


def test_erf_keeps_float32(device):
    x = device.xp.asarray(np.linspace(-4, 4, 17), dtype=np.float32)
    for function in (erf_series, erf):
        out = function(x)
        assert out.dtype == np.float32, function.__name__
        np.testing.assert_allclose(host(out), [math.erf(v) for v in host(x)], atol=1e-6)


def test_erf_series_keeps_shape(device):
    x = device.xp.zeros((2, 3, 1))
    assert erf_series(x).shape == (2, 3, 1)


def test_rational_erf_in_float32_is_within_rounding_on_a_dense_grid(device):
    """float32 in and out: the fit's 1.4e-9 plus float32 rounding (up to 2.98e-8 below 1)."""
    grid = np.linspace(-5, 5, 400_001).astype(np.float32)
    values = host(erf(device.xp.asarray(grid)))
    expected = np.array([math.erf(v) for v in grid.astype(np.float64)])
    assert values.dtype == np.float32
    assert np.max(np.abs(values - expected)) < 3.2e-8


def test_rational_erf_in_float64_has_the_fitted_error(device):
    """The fit itself, evaluated in float64 without the float32 rounding (tools/fit_erf.py: 1.38e-9)."""
    grid = np.linspace(-ERF_CLIP, ERF_CLIP, 200_001)
    out = erf_rational(device.xp.asarray(grid), [device.xp.empty(grid.shape) for _ in range(4)])
    expected = np.array([math.erf(v) for v in grid])
    assert np.max(np.abs(host(out) - expected)) < 1.4e-9


def test_rational_erf_at_the_edges(device):
    tiny, subnormal, largest = 1e-30, np.float32(1e-45), np.finfo(np.float32).max
    edges = np.array([0.0, tiny, subnormal, 3.9, ERF_CLIP, 3.93, 10.0, 1e4, largest, np.inf], dtype=np.float32)
    both = np.concatenate([edges, -edges, [np.nan]]).astype(np.float32)
    values = host(erf(device.xp.asarray(both)))
    expected = np.array([math.erf(v) for v in both[:-1].astype(np.float64)])
    np.testing.assert_allclose(values[:-1], expected, rtol=1e-7, atol=3e-8)
    # 0 keeps its sign; erf(x) ~ 2x / sqrt(pi) to float32's relative precision for tiny x; +-1 far out
    assert values[0] == 0.0 and np.signbit(values[edges.size])
    assert abs(float(values[1]) / (2 / math.sqrt(math.pi) * float(both[1])) - 1) < 2**-23
    assert values[2] == subnormal  # 2 / sqrt(pi) * 1.4e-45 rounds to the smallest subnormal
    assert np.all(values[5 : edges.size] == 1.0) and np.all(values[edges.size + 5 : -1] == -1.0)
    assert np.isnan(values[-1])
    np.testing.assert_array_equal(values[edges.size : -1], -values[: edges.size])


def test_rational_erf_in_chunks_equals_one_pass():
    """Large arrays go through chunks.map_chunks (reused work arrays); a strided input
    and a size that is not a multiple of the chunk give what one whole-array pass gives."""
    values = 3 * np.random.default_rng(0).standard_normal((3, 2 * chunks.CHUNK_SIZE + 7)).astype(np.float32)
    x = values[:, ::2]
    expected = erf_rational(x, [np.empty(x.shape) for _ in range(4)]).astype(np.float32)
    np.testing.assert_array_equal(erf(x), expected)
    assert erf(x).shape == x.shape
