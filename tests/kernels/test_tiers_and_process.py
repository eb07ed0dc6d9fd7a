"""The tier switch (SCRATCHVIT_KERNELS, kernels.tier), the registry's checks, and the process:
`import scratchvit` leaves OpenBLAS's threads and malloc alone; tune_process() changes both and
restore_process() undoes it; the import works where the C library has no mallopt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import kernels
from scratchvit.ops.activation import Softmax

REPOSITORY = Path(__file__).resolve().parents[2]


def run_python(code: str, **environment) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY), **environment)
    if "SCRATCHVIT_KERNELS" not in environment:
        env.pop("SCRATCHVIT_KERNELS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_environment_chooses_the_tier():
    code = "import scratchvit as sv; print(sv.kernels.current_tier())"
    assert run_python(code).stdout.strip() == "fast"
    assert run_python(code, SCRATCHVIT_KERNELS="textbook").stdout.strip() == "textbook"
    wrong = run_python(code, SCRATCHVIT_KERNELS="turbo")
    assert (
        wrong.returncode != 0 and "SCRATCHVIT_KERNELS must be one of ('fast', 'textbook'), got 'turbo'" in wrong.stderr
    )


def test_the_tier_context_restores_what_it_found():
    assert kernels.current_tier() == "fast"
    with kernels.tier("textbook"):
        assert kernels.current_tier() == "textbook"
        with pytest.raises(ValueError, match="kernel tier must be one of"):
            kernels.set_tier("quick")
    assert kernels.current_tier() == "fast"


def test_the_registry_refuses_a_second_kernel_and_a_non_subclass():
    with pytest.raises(ValueError, match="Softmax already has kernel SoftmaxInPlace for numpy float32"):

        @kernels.register_kernel(Softmax, "numpy", (np.float32,))
        class Another(Softmax):
            pass

    with pytest.raises(TypeError, match="must subclass the textbook op"):

        @kernels.register_kernel(Softmax, "numpy", (np.float16,))
        class Unrelated(sv.Function):
            pass

    with pytest.raises(ValueError, match="backend must be one of"):
        kernels.register_kernel(Softmax, "jax", (np.float32,))


# In a fresh interpreter: watch every ctypes library lookup, import scratchvit, train a step
# large enough for the threaded kernels, and report OpenBLAS's thread count before and after.
_WATCH = textwrap.dedent("""
    import ctypes
    import json
    looked_up = []
    class Watched(ctypes.CDLL):
        def __getattr__(self, name):
            looked_up.append(name)
            return super().__getattr__(name)
        def __getitem__(self, name):
            looked_up.append(name)
            return super().__getitem__(name)
    ctypes.CDLL = Watched
    from threadpoolctl import threadpool_info
    import numpy as np
    def blas_threads():
        return sorted(info["num_threads"] for info in threadpool_info() if info["internal_api"] == "openblas")
    before = blas_threads()
    import scratchvit as sv
    model = sv.create_model("vit_tiny_patch16_224", img_size=64, num_classes=10)
    images = sv.Tensor(np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32))
    sv.ops.cross_entropy(model(images), np.arange(8) % 10).backward()
""")


def test_import_and_training_leave_openblas_and_malloc_alone():
    pytest.importorskip("threadpoolctl")
    code = _WATCH + "print(json.dumps([before, blas_threads(), sorted(set(looked_up))]))"
    completed = run_python(code, OPENBLAS_NUM_THREADS="2")
    assert completed.returncode == 0, completed.stderr
    before, after, looked_up = json.loads(completed.stdout)
    assert before == after and before, completed.stdout
    assert not any("mallopt" in name or "set_num_threads" in name for name in looked_up), looked_up


def test_tune_process_takes_over_and_restore_process_gives_back():
    pytest.importorskip("threadpoolctl")
    code = _WATCH + textwrap.dedent("""
    from scratchvit.kernels.cpu import threads
    if threads.find_openblas() is None:
        print(json.dumps(None))
        raise SystemExit
    tuned = sv.kernels.tune_process()
    small = blas_threads()  # nothing is taken over before large work
    large = np.ones((1024, 1024), np.float32)
    sv.ops.matmul(sv.Tensor(large), sv.Tensor(large))  # 2 GFLOP
    during = blas_threads()
    sv.ops.cross_entropy(model(images), np.arange(8) % 10).backward()
    sv.kernels.restore_process()
    print(json.dumps([before, small, during, blas_threads(), tuned["threads"], threads._threads.pool is None]))
    """)
    completed = run_python(code, OPENBLAS_NUM_THREADS="2")
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    if result is None:
        pytest.skip("this NumPy does not use OpenBLAS")
    before, small, during, after, allowed, pool_stopped = result
    assert before == small == after == [2] and during == [1] and allowed and pool_stopped


def test_import_works_without_mallopt():
    """Where ctypes.CDLL(None) fails as on Windows (TypeError) the import and tune_process still work."""
    code = """
    import ctypes
    real = ctypes.CDLL
    def no_process_handle(name, *args, **kwargs):
        if name is None:
            raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
        return real(name, *args, **kwargs)
    ctypes.CDLL = no_process_handle
    import scratchvit as sv
    print(sv.kernels.tune_process()["malloc"])
    sv.kernels.restore_process()
    """
    completed = run_python(code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"
