"""The error function erf, for the exact GELU.

float32 (training): `erf_rational`, a rational function fitted to erf, about 3x faster than
SciPy's float32 erf and as accurate as float32 can hold. float64 (gradient checks): SciPy's erf
(CuPy's on the GPU) when installed, else `erf_series`, erf from its Maclaurin series for |x| <= 3
and from the continued fraction of erfc beyond, in float64 (absolute error below 1e-13), so NumPy
alone is enough.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import cupy_module, xp_of
from .chunks import map_chunks

# erf(x) ~ x P(x^2) / Q(x^2) for |x| <= ERF_CLIP, coefficients lowest degree first, fitted by
# tools/fit_erf.py (near-minimax, Loeb + Lawson). Max abs error on 4e6 points of [0, 3.92]:
# 1.4e-9 evaluated in float64; 3.1e-8 after rounding to float32, where rounding the true erf to
# float32 alone gives 3.0e-8. Beyond ERF_CLIP, 1 - |erf(x)| < 3e-8: the result is clipped to +-1.
ERF_P = (1.128379180818366, 0.18470033179109613, 0.054278506374259905, 0.003832379503538026,
         0.00038038258015554645, 4.718129818026288e-06, -1.3337627405012528e-08)  # fmt: skip
ERF_Q = (1.0, 0.49701993580200604, 0.11377547897177928, 0.015430987903028916, 0.001305044319798337,
         6.342209954467717e-05)  # fmt: skip
ERF_CLIP = 3.92

_SERIES_LIMIT = 3.0
_SERIES_TERMS = 60  # at |x| = 3 the terms fall below 1e-17 after about 50
_FRACTION_DEPTH = 60


def erf_rational(x, work, scale: float = 1.0):
    """erf(scale * x) = clip(z P(t) / Q(t), -1, 1), z = scale * x, t = min(z^2, ERF_CLIP^2), in float64.

    x: float32 or float64; work: four float64 arrays of x's size. Returns work[2], which holds
    the result. Evaluated in float64 (12 multiply-adds in float32 would lose 3-7 units of the
    last place) and only in ufuncs of one dtype (a ufunc that casts as it goes runs at half
    speed); meant for one chunk of chunks.map_chunks at a time, so it all stays in cache.
    Beyond ERF_CLIP, t stops growing while z does, so z P / Q passes +-1 and the clip gives
    exactly +-1 (also at +-inf: erf(-x) + 1 is then exactly 0); a nan stays nan.
    """
    xp = xp_of(x)
    z, t, numerator, denominator = work
    xp.copyto(z, x)
    if scale != 1.0:
        z *= scale
    xp.multiply(z, z, out=t)
    xp.clip(t, 0.0, ERF_CLIP * ERF_CLIP, out=t)
    # Horner's rule, highest degree first
    xp.multiply(t, ERF_P[-1], out=numerator)
    for coefficient in ERF_P[-2:0:-1]:
        numerator += coefficient
        numerator *= t
    numerator += ERF_P[0]
    numerator *= z
    xp.multiply(t, ERF_Q[-1], out=denominator)
    for coefficient in ERF_Q[-2:0:-1]:
        denominator += coefficient
        denominator *= t
    denominator += ERF_Q[0]
    numerator /= denominator
    xp.clip(numerator, -1.0, 1.0, out=numerator)
    return numerator


def erf_series(x):
    """erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1))       for |x| <= 3,
    erf(x) = 1 - exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))   for |x| > 3.
    """
    xp = xp_of(x)
    x64 = x.astype(np.float64)
    magnitude = xp.abs(x64)

    small = xp.minimum(magnitude, _SERIES_LIMIT)
    square = small * small
    term = small.copy()  # n = 0 term of the sum without its 1/(2n+1)
    total = small.copy()
    for n in range(1, _SERIES_TERMS):
        term *= -square / n
        total += term / (2 * n + 1)
    series = total * (2 / math.sqrt(math.pi))

    large = xp.maximum(magnitude, _SERIES_LIMIT)
    fraction = large.copy()  # evaluated from the innermost level outwards
    for k in range(_FRACTION_DEPTH, 0, -1):
        fraction = large + (k / 2) / fraction
    tail = 1 - xp.exp(-large * large) / (math.sqrt(math.pi) * fraction)

    result = xp.where(magnitude <= _SERIES_LIMIT, series, tail)
    return (xp.sign(x64) * result).astype(x.dtype)


def _library_erf(xp):
    """SciPy's (NumPy arrays) or CuPy's (CuPy arrays) erf, or None if not installed."""
    try:
        if xp is np:
            from scipy.special import erf as library_erf
        else:
            library_erf = cupy_module("cupyx.scipy.special").erf
    except ImportError:
        return None
    return library_erf


_library_erfs: dict = {}


def erf_float64(x):
    """erf of a float64 array to full float64 accuracy: SciPy's / CuPy's, else erf_series."""
    xp = xp_of(x)
    if xp not in _library_erfs:
        _library_erfs[xp] = _library_erf(xp)
    library_erf = _library_erfs[xp]
    return erf_series(x) if library_erf is None else library_erf(x)


def erf(x):
    """erf of a float32 or float64 array, keeping its dtype and shape."""
    if x.dtype == np.float64:
        return erf_float64(x)
    xp = xp_of(x)
    out = xp.empty(x.shape, x.dtype)
    map_chunks(lambda x, out, *work: xp.copyto(out, erf_rational(x, work), casting="same_kind"),
               (x,), (out,), scratch=(np.float64,) * 4)  # fmt: skip
    return out
