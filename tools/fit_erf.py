"""Fit the rational erf of scratchvit/ops/erf.py: erf(x) ~ x P(x^2) / Q(x^2) on |x| <= CLIP.

    /work/torchenv/bin/python tools/fit_erf.py            # any Python with numpy, scipy, mpmath

Prints the coefficients (paste them into ERF_P / ERF_Q) and the maximum absolute error measured on
a dense grid: of the float64 evaluation, and of its result rounded to float32 (what float32 callers
get) beside the error of rounding the true erf to float32, the best any float32 erf can do.

Why this form: erf is odd, so erf(x) / x is a smooth even function, a function of t = x^2; a
rational function of t of low degree follows it far better than a polynomial of the same cost.
Beyond CLIP = 3.92, 1 - erf(x) < 3e-8 is under half a float32 unit below 1, so erf = +-1 there.

How: the weighted minimax problem min max_x |x P(t) / Q(t) - erf(x)| is solved approximately by
Loeb's linearisation (least squares of x P(t) - erf(x) Q(t), divided by the previous Q) with
Lawson's reweighting (weights grow where the error is large), which drives the least-squares fit
towards the equal-ripple minimax one. Deterministic: a fixed grid and a fixed number of rounds.
"""

from __future__ import annotations

import mpmath
import numpy as np
from scipy.special import erf

CLIP = 3.92
NUMERATOR_DEGREE, DENOMINATOR_DEGREE = 6, 5  # in t = x^2; 12 multiply-adds and one division
ROUNDS = 150


def evaluate(p, q, x):
    """x P(x^2) / Q(x^2) by Horner's rule, in float64 (as scratchvit evaluates it)."""
    t = x * x
    return x * np.polyval(p[::-1], t) / np.polyval(q[::-1], t)


def fit() -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (p_0 .. p_m), (q_0 = 1, q_1 .. q_n) of P and Q in t = x^2, lowest degree first."""
    # Chebyshev-spaced points (dense near the ends, where the error peaks) plus a uniform grid
    x = np.unique(np.concatenate([CLIP * (1 - np.cos(np.linspace(0, np.pi, 6001))) / 2, np.linspace(0, CLIP, 6001)]))
    s = (x / CLIP) ** 2  # t scaled to [0, 1] keeps the least-squares matrix well conditioned
    target = erf(x)
    p_powers = s[:, None] ** np.arange(NUMERATOR_DEGREE + 1)
    q_powers = s[:, None] ** np.arange(1, DENOMINATOR_DEGREE + 1)
    weights, previous_q = np.ones_like(x), np.ones_like(x)
    best = (np.inf, None, None)
    for round_ in range(ROUNDS):
        # x P(s) - erf(x) (1 + q_1 s + ...) = 0 in the least-squares sense, rows scaled by sqrt(weight) / Q_prev
        matrix = np.concatenate([x[:, None] * p_powers, -target[:, None] * q_powers], axis=1)
        row_scale = np.sqrt(weights) / np.abs(previous_q)
        solution = np.linalg.lstsq(matrix * row_scale[:, None], target * row_scale, rcond=None)[0]
        p, q = solution[: NUMERATOR_DEGREE + 1], np.concatenate([[1.0], solution[NUMERATOR_DEGREE + 1 :]])
        previous_q = q_powers @ q[1:] + 1
        error = x * (p_powers @ p) / previous_q - target
        if np.max(np.abs(error)) < best[0]:
            best = (np.max(np.abs(error)), p, q)
        if round_ >= 5:  # Lawson: plain least squares first, then weight by the error
            weights *= np.sqrt(np.abs(error))
            weights /= weights.sum()
    _, p, q = best
    # back from s = t / CLIP^2 to t
    return p / CLIP ** (2 * np.arange(p.size)), q / CLIP ** (2 * np.arange(q.size))


def main() -> None:
    p, q = fit()
    x = np.linspace(0, CLIP, 4_000_001)
    truth = erf(x)
    # SciPy's float64 erf as the truth: check it against 50-digit mpmath on a sample first
    sample = x[::40_000]
    mpmath.mp.dps = 50
    exact = np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in sample])
    scipy_error = np.max(np.abs(erf(sample) - exact))
    approximation = evaluate(p, q, x)
    in_float32 = approximation.astype(np.float32).astype(np.float64)
    print(f"SciPy float64 erf vs mpmath, max abs error: {scipy_error:.1e}")
    print(f"x P(x^2) / Q(x^2) on [0, {CLIP}], {x.size} points, max abs error:")
    print(f"  float64 evaluation:            {np.max(np.abs(approximation - truth)):.2e}")
    print(f"  rounded to float32:            {np.max(np.abs(in_float32 - truth)):.2e}")
    print(f"  true erf rounded to float32:   {np.max(np.abs(truth.astype(np.float32) - truth)):.2e}")
    print(f"  1 - erf({CLIP}) = {1 - erf(CLIP):.2e}")
    print("ERF_P = (" + ", ".join(repr(float(c)) for c in p) + ")")
    print("ERF_Q = (" + ", ".join(repr(float(c)) for c in q) + ")")


if __name__ == "__main__":
    main()
