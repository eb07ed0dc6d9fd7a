"""cupyx.scipy.special of the CuPy stand-in: SciPy's ufuncs, run on the device's arrays.

Without SciPy this module does not import, as cupyx.scipy.special needs no SciPy on a GPU; scratchvit
then computes erf by its own series, which the tests hold to the same values."""

from __future__ import annotations

import scipy.special
from cupy import _Ufunc

erf = _Ufunc(scipy.special.erf)
