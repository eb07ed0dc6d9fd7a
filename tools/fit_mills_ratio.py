"""Fit the Mills ratio of scratchvit/kernels/cpu/normal_tail.py: m(u) = Phi(-u) / phi(u) ~ P(u) / Q(u) on [0, CLIP].

    python tools/fit_mills_ratio.py      # any Python with numpy and scipy

Prints the coefficients (paste them into MILLS_P / MILLS_Q) and the maximum relative error of the
fit, evaluated in float64, on a dense grid.

Why this form: the normal tail Phi(-u) falls like exp(-u^2 / 2), which no low-degree rational
function follows; divided by the density phi(u) it becomes the Mills ratio m(u), smooth and slowly
falling from sqrt(pi / 2) at 0 to about 1 / u. A rational function with deg Q = deg P + 1 has that
1 / u behaviour built in, so one fit covers all of [0, CLIP], where phi(CLIP) underflows float32.
Q is monic (its top coefficient 1): Horner's rule then starts with an addition, one pass fewer.

How: the minimax problem for the relative error, min max_u |P(u) / Q(u) / m(u) - 1|, solved
approximately by Loeb's linearisation (least squares of P(u) - m(u) Q(u), divided by m(u) times the
previous Q) with Lawson's reweighting (weights grow where the error is large), which drives the
least-squares fit towards the equal-ripple minimax one. Deterministic: a fixed grid and rounds.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx

CLIP = 15.0  # phi(15) = 5.5e-50: below float32's smallest subnormal, 1.4e-45
NUMERATOR_DEGREE, DENOMINATOR_DEGREE = 4, 5
ROUNDS = 300


def mills_ratio(u: np.ndarray) -> np.ndarray:
    """Phi(-u) / phi(u) = sqrt(pi / 2) erfcx(u / sqrt 2), in float64 without underflow."""
    return np.sqrt(np.pi / 2) * erfcx(u / np.sqrt(2))


def fit() -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (p_0 .. p_m) and (q_0 .. q_n = 1) of P and Q, lowest degree first."""
    # Chebyshev-spaced points (dense near the ends, where the error peaks) plus a uniform grid
    u = np.unique(np.concatenate([CLIP * (1 - np.cos(np.linspace(0, np.pi, 8001))) / 2, np.linspace(0, CLIP, 8001)]))
    s = u / CLIP  # scaled to [0, 1] keeps the least-squares matrix well conditioned
    target = mills_ratio(u)
    p_powers = s[:, None] ** np.arange(NUMERATOR_DEGREE + 1)
    q_powers = s[:, None] ** np.arange(1, DENOMINATOR_DEGREE + 1)
    weights, previous_q = np.ones_like(u), np.ones_like(u)
    best = (np.inf, None, None)
    for round_ in range(ROUNDS):
        # P(s) - m (1 + q_1 s + ...) = 0 in the least-squares sense, rows scaled by sqrt(weight) / (m Q_prev)
        matrix = np.concatenate([p_powers, -target[:, None] * q_powers], axis=1)
        row_scale = np.sqrt(weights) / np.abs(previous_q) / target
        solution = np.linalg.lstsq(matrix * row_scale[:, None], target * row_scale, rcond=None)[0]
        p, q = solution[: NUMERATOR_DEGREE + 1], np.concatenate([[1.0], solution[NUMERATOR_DEGREE + 1 :]])
        previous_q = q_powers @ q[1:] + 1
        error = (p_powers @ p) / previous_q / target - 1
        if np.max(np.abs(error)) < best[0]:
            best = (np.max(np.abs(error)), p, q)
        if round_ >= 5:  # Lawson: plain least squares first, then weight by the error
            weights *= np.sqrt(np.abs(error))
            weights /= weights.sum()
    _, p, q = best
    # back from s = u / CLIP to u, then divide through by Q's top coefficient
    p, q = p / CLIP ** np.arange(p.size), q / CLIP ** np.arange(q.size)
    return p / q[-1], q / q[-1]


def main() -> None:
    p, q = fit()
    u = np.linspace(0, CLIP, 4_000_001)
    approximation = np.polyval(p[::-1], u) / np.polyval(q[::-1], u)
    print(f"P(u) / Q(u) on [0, {CLIP}], {u.size} points, evaluated in float64:")
    print(f"  max relative error: {np.max(np.abs(approximation / mills_ratio(u) - 1)):.2e}")
    print("MILLS_P = (" + ", ".join(repr(float(c)) for c in p) + ")")
    print("MILLS_Q = (" + ", ".join(repr(float(c)) for c in q) + ")")


if __name__ == "__main__":
    main()
