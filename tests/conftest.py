"""Shared test set-up: hypothesis profiles and the device fixture.

Hypothesis profiles: `ci` (derandomized, so a CI run is reproducible, and bounded) is loaded when
the CI environment variable is set, `dev` otherwise; HYPOTHESIS_PROFILE=name picks one explicitly.

The `device` fixture runs a test on NumPy ("cpu") and, where CuPy sees a GPU, on CuPy ("cuda").
On a machine without one the cuda case is reported as skipped, never silently dropped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from scratchvit import backend

# `import strategies` from every test folder, whatever pytest's import mode
sys.path.insert(0, str(Path(__file__).resolve().parent))

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

_NO_GPU = "CuPy with a CUDA GPU is not available (pip install 'scratchvit[cuda12]' on a GPU machine)"


def _device_params() -> list:
    return [
        pytest.param("cpu", id="cpu"),
        pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not backend.cuda_is_available(), reason=_NO_GPU)),
    ]


@pytest.fixture(scope="session", params=_device_params())
def device(request) -> backend.Device:
    """The backend a test runs on: cpu (NumPy), and cuda (CuPy) where a GPU exists.

    Session-scoped so that hypothesis tests may take it (it holds no per-test state).
    """
    return backend.get_device(request.param)


@pytest.fixture(scope="session")
def gpu() -> backend.Device:
    """The CUDA device, for tests that compare it with the CPU; skipped without a GPU."""
    if not backend.cuda_is_available():
        pytest.skip(_NO_GPU)
    return backend.get_device("cuda")
