"""The float32 GELU kernel (kernels/cpu/gelu.py): chunk by chunk on one or several threads equal to
one whole-array pass, accurate to float32 far into the negative tail, exact at the edges."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from strategies import cut_in_parts

import scratchvit as sv
from scratchvit import ops as F
from scratchvit.kernels.cpu import chunks, gelu


def kernel_gelu(values, requires_grad=True):
    x = sv.Tensor(np.asarray(values, dtype=np.float32), requires_grad=requires_grad)
    out = F.gelu(x)
    assert type(out.creator if requires_grad else None) in (gelu.GELUFromNormalTail, type(None))
    return x, out


@pytest.mark.parametrize("parts", [1, 3])
def test_gelu_on_large_arrays_in_chunks_equals_one_pass(parts):
    """The forward runs chunk by chunk, reusing its work arrays, its chunks cut into `parts` runs
    on as many threads; a strided input and a size that is not a multiple of the chunk must give
    what one whole-array pass gives."""
    values = np.random.default_rng(0).standard_normal((3, 2 * chunks.CHUNK_SIZE + 7)).astype(np.float32)
    x = values[:, ::2]  # strided, 3 * (CHUNK_SIZE + 4) elements: three chunks and a bit
    upstream = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    with cut_in_parts(parts) if parts > 1 else contextlib.nullcontext():
        function = gelu.GELUFromNormalTail()
        function.recording = True
        out = function.forward(x)
        grad = function.backward(upstream)
        out_without_slope = gelu.GELUFromNormalTail().forward(x)
    expected_out, slope = np.empty_like(x), np.empty_like(x)
    work = [np.empty_like(x) for _ in range(4)]
    gelu.gelu_and_slope_chunk(x, expected_out, slope, *work)
    assert out.dtype == grad.dtype == np.float32
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(grad, upstream * slope)
    np.testing.assert_array_equal(out_without_slope, expected_out)
    with cut_in_parts(parts) if parts > 1 else contextlib.nullcontext():  # no chunks at all
        empty, out = kernel_gelu(np.zeros((0, 3)))
        out.backward(np.zeros((0, 3), np.float32))
    assert empty.grad.shape == (0, 3)


def test_gelu_float32_is_accurate_to_float32():
    """The forward (tail Phi(-|x|) through the Mills ratio) and slope against float64 math, on a dense grid."""
    grid = np.linspace(-12, 12, 240_001)
    x, out = kernel_gelu(grid)
    out.backward(np.ones(grid.shape, dtype=np.float32))
    x64 = x.numpy().astype(np.float64)
    cdf = 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in x64])  # erfc: no cancellation for x < 0
    expected_out = x64 * cdf
    expected_slope = cdf + x64 * np.exp(-x64 * x64 / 2) / math.sqrt(2 * math.pi)
    assert out.dtype == x.grad.dtype == np.float32
    relative_error = np.abs(out.numpy() - expected_out) / np.maximum(np.abs(expected_out), 1e-300)
    # a few float32 units down to x = -5.3, where GELU(x) = -3e-7; further out, float32's rounding
    # of x^2 inside exp(-x^2 / 2) grows with x^2, while an erf form gives 0 there
    # (1 + erf(x / sqrt 2) rounds to 0 below x = -5.5)
    assert np.max(relative_error[x64 >= -5.3]) < 1e-6
    assert np.max(relative_error[x64 != 0]) < 6e-6
    # |slope| reaches 1.13: about one float32 unit
    assert np.max(np.abs(x.grad - expected_slope)) < 2e-7


def test_gelu_float32_at_the_edges():
    far = [-np.inf, -1e30, -1000.0, -0.0, 0.0, 1e-40, 1000.0, 1e30, np.inf, np.nan]
    with sv.no_grad():
        _, out = kernel_gelu(far, requires_grad=False)
    # Phi is exactly 0 or 1 out there, 1/2 at +-0; a subnormal x gives x / 2, nan stays nan
    expected = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 5e-41, 1000.0, 1e30, np.inf, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(out.numpy(), expected)
    x, out = kernel_gelu(far[1:-2])  # finite: no inf * 0 in x * phi(x)
    out.backward(np.ones(x.shape, dtype=np.float32))
    np.testing.assert_array_equal(x.grad, np.array([0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0], dtype=np.float32))
