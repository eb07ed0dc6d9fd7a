"""Devices, the lazy CuPy import and its install hint, the default device, seeding, and the
rule that one op never mixes devices. A missing CuPy and a second device are simulated, so
these run without a GPU."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from strategies import host, leaf

import scratchvit as sv
from scratchvit import autograd, backend
from scratchvit import ops as F


@pytest.fixture
def without_cupy(monkeypatch):
    """Make `import cupy` fail and forget any CuPy already loaded."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_cupy_module", None)


@pytest.fixture
def fresh_default_device(monkeypatch):
    """Forget the cached default device (monkeypatch restores it afterwards)."""
    monkeypatch.setattr(backend, "_default_device", None)


def test_get_device_parses_cpu():
    assert backend.get_device("cpu") == backend.CPU
    assert backend.get_device("CPU") == backend.CPU
    assert backend.get_device(" cpu ") is backend.CPU
    assert backend.get_device(backend.CPU) is backend.CPU
    assert str(backend.CPU) == "cpu" and repr(backend.CPU) == "device('cpu')"
    assert backend.Device("cuda", 1) == backend.Device("cuda", 1) != backend.Device("cuda", 0)
    assert str(backend.Device("cuda", 1)) == "cuda:1"
    assert len({backend.Device("cpu"), backend.CPU}) == 1


def test_get_device_rejects_bad_names():
    with pytest.raises(ValueError, match=r"device 'cuda:x' is not valid: expected 'cuda' or 'cuda:N'"):
        backend.get_device("cuda:x")
    with pytest.raises(ValueError, match=r"device 'tpu' is not known"):
        backend.get_device("tpu")
    with pytest.raises(TypeError, match="device must be a str like 'cpu' or 'cuda:0', got int"):
        backend.get_device(0)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cupy_says_how_to_install_it(without_cupy, name):
    with pytest.raises(RuntimeError, match=r"needs CuPy, which is not installed: .*pip install .*cupy") as caught:
        backend.get_device(name)
    assert isinstance(caught.value.__cause__, ImportError)
    assert not backend.cuda_is_available()
    assert not sv.cuda_is_available()


def test_cuda_without_cupy_fails_for_tensors_and_the_device_xp(without_cupy):
    with pytest.raises(RuntimeError, match="pip install"):
        sv.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="pip install"):
        _ = backend.Device("cuda", 0).xp
    with pytest.raises(RuntimeError, match="pip install"):
        sv.Tensor([1.0]).to("cuda")


def test_parts_of_cupy_without_cupy_say_how_to_install_it(without_cupy):
    for name in ("cupy.cuda.nccl", "cupyx.scipy.special"):
        with pytest.raises(RuntimeError, match=r"needs CuPy, which is not installed: .*pip install .*cupy"):
            backend.cupy_module(name)


def test_cupy_without_a_gpu_says_so(monkeypatch):
    def no_gpu():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_gpu)))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(backend, "_cupy_module", None)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU, but CuPy found none"):
        backend.get_device("cuda")
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 0
    with pytest.raises(RuntimeError, match="needs a CUDA GPU, but CuPy found none"):
        backend.get_device("cuda")
    assert not backend.cuda_is_available()


def test_default_device_comes_from_the_environment(monkeypatch, fresh_default_device):
    monkeypatch.setenv("SCRATCHVIT_DEVICE", "CPU")
    assert backend.default_device() == backend.CPU
    assert sv.zeros(2).device == backend.CPU


def test_default_device_is_cpu_without_the_variable(monkeypatch, fresh_default_device):
    monkeypatch.delenv("SCRATCHVIT_DEVICE", raising=False)
    assert backend.default_device() == backend.CPU
    monkeypatch.setattr(backend, "_default_device", None)
    monkeypatch.setenv("SCRATCHVIT_DEVICE", "")
    assert backend.default_device() == backend.CPU


def test_a_bad_environment_device_is_reported(monkeypatch, fresh_default_device):
    monkeypatch.setenv("SCRATCHVIT_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'tpu' is not known"):
        backend.default_device()


def test_environment_cuda_without_cupy_is_reported(monkeypatch, fresh_default_device, without_cupy):
    monkeypatch.setenv("SCRATCHVIT_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="pip install"):
        sv.zeros(2)


def test_set_default_device(monkeypatch, fresh_default_device):
    monkeypatch.setenv("SCRATCHVIT_DEVICE", "tpu")  # set_default_device wins over the variable
    sv.set_default_device("cpu")
    assert backend.default_device() == backend.CPU
    assert sv.ones(3).device == backend.CPU
    with pytest.raises(ValueError, match="'tpu' is not known"):
        sv.set_default_device("tpu")


def test_manual_seed_makes_both_generators_reproducible():
    sv.manual_seed(123)
    host_draw = backend.host_rng().standard_normal(4)
    device_draw = backend.device_rng(backend.CPU).standard_normal(4)
    randn_draw = sv.randn(2, 2).numpy()
    sv.manual_seed(123)
    np.testing.assert_array_equal(backend.host_rng().standard_normal(4), host_draw)
    np.testing.assert_array_equal(backend.device_rng(backend.CPU).standard_normal(4), device_draw)
    np.testing.assert_array_equal(sv.randn(2, 2).numpy(), randn_draw)
    assert not np.array_equal(host_draw, device_draw)  # two streams, not one
    sv.manual_seed(124)
    assert not np.array_equal(backend.host_rng().standard_normal(4), host_draw)


def test_manual_seed_reproduces_the_device_generator(device):
    sv.manual_seed(9)
    first = host(sv.randn(3, device=device))
    sv.manual_seed(9)
    np.testing.assert_array_equal(host(sv.randn(3, device=device)), first)


def test_manual_seed_refuses_non_integers():
    for bad in (1.5, "3", True):
        with pytest.raises(TypeError, match="seed must be an int"):
            sv.manual_seed(bad)


def test_rng_state_round_trip():
    sv.manual_seed(5)
    state = backend.get_rng_state()
    expected = backend.host_rng().random(3), backend.device_rng(backend.CPU).random(3)
    backend.host_rng().random(10)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(backend.host_rng().random(3), expected[0])
    np.testing.assert_array_equal(backend.device_rng(backend.CPU).random(3), expected[1])


class ElsewhereTensor(sv.Tensor):
    """A CPU tensor that reports another device: a second device without a GPU."""

    @property
    def device(self):
        return backend.Device("cuda", 7)


@pytest.mark.parametrize(
    "op_name, call",
    [
        ("Add", lambda here, there: here + there),
        ("Mul", lambda here, there: F.mul(there, here)),
        ("MatMul", lambda here, there: F.matmul(here, there)),
        ("LinearFn", lambda here, there: F.linear(here, there)),
        ("Concatenate", lambda here, there: F.concatenate([here, here, there])),
        ("LayerNormFn", lambda here, there: F.layer_norm(here, ElsewhereTensor(np.ones(2)))),
    ],
)
def test_mixing_devices_in_one_op_raises(op_name, call):
    here = leaf(np.ones((2, 2)), "cpu")
    there = ElsewhereTensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"^{op_name}: input \d is on (cuda:7|cpu) but input 0 is on") as caught:
        call(here, there)
    assert "no silent copy" in str(caught.value)
    assert caught.traceback[-1].name == "_check_same_device_and_dtype"  # the engine's check, not numpy


def test_the_device_check_runs_on_every_apply(monkeypatch):
    calls = []
    original = autograd._check_same_device_and_dtype

    def spy(op_name, tensors):
        calls.append((op_name, [str(t.device) for t in tensors if t is not None]))
        return original(op_name, tensors)

    monkeypatch.setattr(autograd, "_check_same_device_and_dtype", spy)
    x = leaf([1.0, 2.0], "cpu")
    (x * 2).sum()
    assert calls == [("Mul", ["cpu", "cpu"]), ("Sum", ["cpu"])]


def test_tensor_dtypes_from_python_and_numpy(device):
    assert sv.Tensor([1.0, 2.0], device=device).dtype == np.float32
    assert sv.Tensor(3.5, device=device).dtype == np.float32
    assert sv.tensor([[1.5]], device=device).dtype == np.float32
    assert sv.Tensor(np.ones(2), device=device).dtype == np.float64
    assert sv.Tensor(np.ones(2, np.float32), device=device).dtype == np.float32
    assert sv.Tensor([1, 2], device=device).dtype.kind == "i"
    assert sv.Tensor([1.0], dtype=np.float64, device=device).dtype == np.float64
    assert sv.zeros(2, 3, device=device).dtype == np.float32 and sv.zeros((2, 3), device=device).shape == (2, 3)
    assert sv.Tensor([1.0], device=device).device == device


def test_array_helpers_on_numpy():
    array = np.ones(3)
    assert backend.xp_of(array) is np
    assert backend.device_of(array) == backend.CPU
    assert backend.to_device(array, backend.CPU) is array
    assert backend.to_numpy(array) is array
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])


def test_to_device_passes_gradients_back(device):
    x = leaf([1.0, 2.0], "cpu")
    moved = x.to(device)
    assert moved.device == device
    (moved * moved).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert sv.Tensor([1.0]).to("cpu").device == backend.CPU
