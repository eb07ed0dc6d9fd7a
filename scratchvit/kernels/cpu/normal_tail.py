"""The standard normal density phi and lower tail Phi(-u), for GELU in float32.

GELU(x) = x Phi(x) needs the normal CDF Phi. Written as 1/2 (1 + erf(x / sqrt 2)) it loses every
digit of Phi(x) for negative x (1 + erf is a difference of nearly equal numbers), and in float32
arithmetic its erf alone costs some thirty passes. Here Phi comes from its tail instead,

    Phi(-u) = phi(u) m(u),   u = |x|,   phi(u) = exp(-u^2 / 2) / sqrt(2 pi),

where m is the Mills ratio, smooth and slowly falling from sqrt(pi / 2) to about 1 / u, fitted by
a rational function (tools/fit_mills_ratio.py). The tail is accurate to a few float32 units
relative to itself, however small it gets, and phi is what GELU's slope needs anyway.
"""

from __future__ import annotations

import math

from ...backend import xp_of

# m(u) ~ P(u) / Q(u) on [0, MILLS_CLIP], coefficients lowest degree first, Q monic; fitted by
# tools/fit_mills_ratio.py (near-minimax relative error): 6.3e-9 evaluated in float64.
MILLS_P = (120.38971742740593, 105.77036143633755, 44.295947257179975, 9.843322770616403, 1.000010726460702)
MILLS_Q = (96.05709620953644, 161.03505526546897, 115.80140272898683, 45.28211120773641, 9.843910316076064, 1.0)
# phi(15) = 5.5e-50 underflows float32 to 0, so beyond MILLS_CLIP the tail is 0 whatever m is
MILLS_CLIP = 15.0
_LOG_INV_SQRT_2PI = -0.5 * math.log(2 * math.pi)


def normal_density_and_tail(x, magnitude, density, tail, work) -> None:
    """magnitude = min(|x|, MILLS_CLIP), density = phi(magnitude), tail = Phi(-magnitude).

    x: any shape; magnitude, density, tail, work: arrays of x's shape and dtype, written in place
    (work is scratch). Every ufunc runs in x's dtype: 22 passes, meant for one cache-sized chunk
    of chunks.map_chunks at a time. Clipping |x| keeps u^2 finite and m(u) away from inf / inf:
    x = +-inf gives density = tail = 0, and nan stays nan.
    """
    xp = xp_of(x)
    xp.abs(x, out=magnitude)
    xp.minimum(magnitude, MILLS_CLIP, out=magnitude)
    # phi(u) = exp(-u^2 / 2 - log sqrt(2 pi))
    xp.multiply(magnitude, magnitude, out=density)
    density *= -0.5
    density += _LOG_INV_SQRT_2PI
    xp.exp(density, out=density)
    # m(u) = P(u) / Q(u) by Horner's rule, highest degree first
    xp.multiply(magnitude, MILLS_P[-1], out=tail)
    for coefficient in MILLS_P[-2:0:-1]:
        tail += coefficient
        tail *= magnitude
    tail += MILLS_P[0]
    xp.add(magnitude, MILLS_Q[-2], out=work)  # Q is monic: u + q_4 to start
    for coefficient in MILLS_Q[-3::-1]:
        work *= magnitude
        work += coefficient
    tail /= work
    tail *= density
