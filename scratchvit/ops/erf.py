"""The error function erf(x) = 2 / sqrt(pi) * integral_0^x exp(-t^2) dt, for the exact GELU.

SciPy's erf (CuPy's on the GPU) when installed, else `erf_series`: erf from its Maclaurin series
for |x| <= 3 and from the continued fraction of erfc beyond, evaluated in float64 (absolute error
below 1e-13), so NumPy alone is enough: accurate to every digit the float64 gradient checks need.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import cupy_module, xp_of

_SERIES_LIMIT = 3.0
_SERIES_TERMS = 60  # at |x| = 3 the terms fall below 1e-17 after about 50
_FRACTION_DEPTH = 60


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


def erf(x):
    """erf of an array, in its dtype: SciPy's / CuPy's, else erf_series."""
    xp = xp_of(x)
    if xp not in _library_erfs:
        _library_erfs[xp] = _library_erf(xp)
    library_erf = _library_erfs[xp]
    return erf_series(x) if library_erf is None else library_erf(x)
