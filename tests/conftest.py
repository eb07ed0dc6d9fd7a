"""Shared test set-up: hypothesis profiles and the device fixture.

Hypothesis profiles: `ci` (derandomized, so a CI run is reproducible, and bounded) is loaded when
the CI environment variable is set, `dev` otherwise; HYPOTHESIS_PROFILE=name picks one explicitly.

The `device` fixture runs a test on NumPy ("cpu") and, where CuPy sees a GPU, on CuPy ("cuda").
On a machine without one the cuda case is reported as skipped, never silently dropped.

SCRATCHVIT_FAKE_CUPY=1 puts the strict CuPy stand-in (tests/fake_cupy) first on the path, for this
process and the processes it starts, so the cuda cases run without a GPU: `pytest -m cuda` runs
them all. Tests that compare the GPU with the CPU (the `gpu` fixture) are skipped under it, since
both sides would be NumPy; tests of what only the stand-in can show (device counts, several
devices) take the `stand_in` fixture and are skipped without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

FAKE_CUPY = os.environ.get("SCRATCHVIT_FAKE_CUPY") == "1"
if FAKE_CUPY:
    _STAND_IN_PATH = str(Path(__file__).resolve().parent / "fake_cupy")
    sys.path.insert(0, _STAND_IN_PATH)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_STAND_IN_PATH, os.environ.get("PYTHONPATH")]))

from scratchvit import backend  # noqa: E402 (after the stand-in is on the path)
from scratchvit.course.tasks import course_marker  # noqa: E402

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
# `scratchvit course` runs: a blanked task fails on the first example, and shrinking it teaches nothing
settings.register_profile(
    "course",
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
    print_blob=False,
)
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
    """The CUDA device, for tests that compare it with the CPU; skipped without a GPU, and under
    the stand-in, where the comparison would be NumPy against NumPy."""
    if FAKE_CUPY:
        pytest.skip("compares the GPU with the CPU: under the CuPy stand-in both are NumPy")
    if not backend.cuda_is_available():
        pytest.skip(_NO_GPU)
    return backend.get_device("cuda")


@pytest.fixture
def stand_in():
    """The stand-in's counters and device count (`cupy.stand_in`), counts reset; skipped unless
    SCRATCHVIT_FAKE_CUPY=1."""
    if not FAKE_CUPY:
        pytest.skip("needs the CuPy stand-in: SCRATCHVIT_FAKE_CUPY=1 pytest -m cuda")
    from cupy import stand_in as counters

    counters.reset_counts()
    return counters


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test that runs on CUDA `cuda`: the device fixture's cuda case, and the tests of
    the `gpu` and `stand_in` fixtures. And give every test its one course marker (a task's, e.g.
    `task3_2`, or `capstone` or `framework`; scratchvit/course/tasks.py says which), so
    `pytest -m task3_2` runs the tests of task 3.2."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cuda = callspec is not None and callspec.params.get("device") == "cuda"
        if on_cuda or {"gpu", "stand_in"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cuda)
        entry = callspec.params.get("entry") if callspec is not None else None
        path = item.path.relative_to(config.rootpath).as_posix()
        name = getattr(item, "originalname", item.name)
        item.add_marker(getattr(pytest.mark, course_marker(path, name, getattr(entry, "name", None))))
