"""The optimizers' update kernels equal the textbook update: AdamW's fused CuPy update, step after
step, on both branches of PyTorch's lerp, in float32 and float64 (on a GPU, or under the CuPy
stand-in, which runs the fused body one operation at a time)."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import backend, kernels
from scratchvit.train import AdamW

TOLERANCES = {np.float32: 2e-6, np.float64: 1e-13}  # relative, after 5 steps


def five_steps(device, dtype, tier: str, betas: tuple, weight_decay: float) -> list:
    rng = np.random.default_rng(0)
    parameter = sv.nn.Parameter(backend.to_device(rng.standard_normal((7, 5)).astype(dtype), device))
    optimizer = AdamW([parameter], lr=3e-2, betas=betas, eps=1e-8, weight_decay=weight_decay)
    with kernels.tier(tier):
        for _ in range(5):
            parameter.grad = backend.to_device(rng.standard_normal((7, 5)).astype(dtype), device)
            optimizer.step()
    state = optimizer.state[id(parameter)]
    return [backend.to_numpy(array) for array in (parameter.data, state["exp_avg"], state["exp_avg_sq"])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.3, 0.95)], ids=["lerp-small-weight", "lerp-large-weight"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_fused_adamw_equals_the_textbook_update(device, dtype, betas, weight_decay):
    if kernels.update_kernel("adamw", backend.to_device(np.zeros(1, dtype), device)) is None:
        pytest.skip(f"no AdamW update kernel is registered for {device}")
    fast = five_steps(device, dtype, "fast", betas, weight_decay)
    textbook = five_steps(device, dtype, "textbook", betas, weight_decay)
    for name, got, expected in zip(("param", "exp_avg", "exp_avg_sq"), fast, textbook, strict=True):
        assert got.dtype == expected.dtype == dtype, name
        np.testing.assert_allclose(got, expected, rtol=TOLERANCES[dtype], atol=0, err_msg=name)


def test_the_textbook_tier_runs_no_update_kernel(device):
    with kernels.tier("textbook"):
        assert kernels.update_kernel("adamw", backend.to_device(np.zeros(1, np.float32), device)) is None
