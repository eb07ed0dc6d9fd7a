"""cupyx of the CuPy stand-in: only what scratchvit imports (`cupyx.scipy.special.erf`)."""
