"""Tests driven by the op table (scratchvit/check/op_table.py), one parametrized test per property over
every entry (minitorch style): float64 finite-difference gradients at hypothesis-drawn sizes,
float32 in -> float32 out, mixed precision refused, the same result on every device."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds, sizes_for

import scratchvit as sv
from scratchvit import backend, kernels
from scratchvit import ops as F
from scratchvit.check import op_table
from scratchvit.check.op_table import OP_TABLE, OPS

ENTRY_IDS = [entry.name for entry in OP_TABLE]


def _tensors(inputs: tuple) -> list:
    return [value for value in inputs if isinstance(value, sv.Tensor)]


def _differentiable(inputs: tuple) -> list:
    return [value for value in _tensors(inputs) if value.requires_grad]


@pytest.mark.parametrize("tier", kernels.TIERS)
@pytest.mark.parametrize("entry", OP_TABLE, ids=ENTRY_IDS)
@given(data=st.data())
def test_gradient_matches_finite_differences(entry, device, tier, data):
    sizes = data.draw(sizes_for(entry), label="sizes")
    seed = data.draw(seeds, label="seed")
    inputs = entry.inputs(np.random.default_rng(seed), sizes, np.float64, device)
    # raises GradcheckError on any element off by more than atol + rtol * |numeric|; it checks
    # sum(f(x) * r) for a random upstream gradient r, never f(x).sum()
    with kernels.tier(tier):
        sv.gradcheck(entry.function, inputs, seed=seed)
    for tensor in _differentiable(inputs):
        assert tensor.grad is not None and tensor.grad.shape == tensor.shape


@pytest.mark.parametrize("entry", OP_TABLE, ids=ENTRY_IDS)
def test_float32_in_float32_out_forward_and_backward(entry, device):
    inputs = entry.inputs(np.random.default_rng(0), dtype=np.float32, device=device)
    output = entry.function(*inputs)
    assert output.dtype == np.float32, f"{entry.name}: forward gave {output.dtype}"
    upstream = np.random.default_rng(1).standard_normal(output.shape).astype(np.float32)
    output.backward(backend.to_device(upstream, device))
    for position, tensor in enumerate(_differentiable(inputs)):
        assert tensor.grad.dtype == np.float32, f"{entry.name}: gradient of tensor {position} is {tensor.grad.dtype}"
        assert tensor.grad.shape == tensor.shape
        assert np.all(np.isfinite(backend.to_numpy(tensor.grad)))


def _ops_function_names() -> set:
    """Names of every Function subclass defined in scratchvit.ops."""
    names, pending = set(), [sv.Function]
    while pending:
        for subclass in pending.pop().__subclasses__():
            pending.append(subclass)
            if subclass.__module__.startswith("scratchvit.ops."):
                names.add(subclass.__name__)
    return names


MULTI_INPUT = [entry for entry in OP_TABLE if len(_tensors(entry.inputs(np.random.default_rng(0)))) >= 2]


@pytest.mark.parametrize("entry", MULTI_INPUT, ids=[entry.name for entry in MULTI_INPUT])
def test_mixed_float32_and_float64_inputs_raise_naming_the_op(entry, device):
    inputs = list(entry.inputs(np.random.default_rng(0), dtype=np.float32, device=device))
    last = max(i for i, value in enumerate(inputs) if isinstance(value, sv.Tensor))
    inputs[last] = sv.Tensor(inputs[last].data.astype(np.float64), requires_grad=True)
    with pytest.raises(TypeError, match=r"has dtype float64 but an earlier input has float32") as caught:
        entry.function(*inputs)
    op_name = str(caught.value).split(":")[0]
    assert op_name in _ops_function_names(), f"the message should start with the op's name: {caught.value}"


def test_mixed_precision_message_names_add_linear_and_attention():
    x32 = sv.Tensor(np.ones((2, 3), np.float32))
    x64 = sv.Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"^Add: input 1 has dtype float64"):
        F.add(x32, x64)
    with pytest.raises(TypeError, match=r"^LinearFn: input 1 has dtype float64"):
        F.linear(x32, sv.Tensor(np.ones((4, 3))))
    with pytest.raises(TypeError, match=r"^ScaledDotProductAttention: input 2"):
        F.scaled_dot_product_attention(x32, x32, x64)


def test_table_covers_every_public_op():
    # to_device is the identity on one device; tests/test_backend.py checks its gradient
    public = set(F.__all__) - {"to_device"}
    covered = {name for name in public for entry in OP_TABLE if entry.name == name or entry.name.startswith(name + "_")}
    assert covered == public, f"ops without a table entry: {sorted(public - covered)}"
    for required in (
        "pow_tensor",
        "pow_int",
        "getitem_slice",
        "getitem_int_array",
        "getitem_bool_mask",
        "matmul_vector_vector",
        "linear_no_bias",
        "cross_entropy_soft",
        "cross_entropy_smoothing",
        "scaled_dot_product_attention_bias",
        "scaled_dot_product_attention_mask",
        "scaled_dot_product_attention_bool_mask",
    ):
        assert required in OPS


@pytest.mark.parametrize("entry", OP_TABLE, ids=ENTRY_IDS)
def test_default_sizes_lie_in_the_size_ranges(entry):
    assert len(entry.default_sizes) == len(entry.size_ranges)
    for size, (low, high) in zip(entry.default_sizes, entry.size_ranges, strict=True):
        assert 1 <= low <= size <= high


def test_inputs_refuse_the_wrong_number_of_sizes():
    with pytest.raises(ValueError, match="takes 3 sizes"):
        OPS["add"].inputs(np.random.default_rng(0), (2, 2))


def test_fixed_seed_ops_give_the_same_mask_on_every_call_and_leave_the_generator_alone():
    sv.manual_seed(5)
    expected_next = backend.device_rng(backend.CPU).random(3)
    sv.manual_seed(5)
    x = sv.Tensor(np.ones((4, 8)))
    for name in ("dropout", "drop_path"):
        first, second = OPS[name].function(x), OPS[name].function(x)
        np.testing.assert_array_equal(first.numpy(), second.numpy())
        assert np.any(first.numpy() == 0) and np.any(first.numpy() != 0)
    np.testing.assert_array_equal(backend.device_rng(backend.CPU).random(3), expected_next)


def test_every_op_agrees_between_cpu_and_gpu(gpu):
    for entry in OP_TABLE:
        cpu_inputs = entry.inputs(op_table.entry_seed(entry, 0), dtype=np.float64, device="cpu")
        gpu_inputs = entry.inputs(op_table.entry_seed(entry, 0), dtype=np.float64, device=gpu)
        results = []
        for inputs in (cpu_inputs, gpu_inputs):
            output = entry.function(*inputs)
            upstream = np.random.default_rng(1).standard_normal(output.shape)
            output.backward(backend.to_device(upstream, output.device))
            results.append([output.numpy()] + [backend.to_numpy(t.grad) for t in _differentiable(inputs)])
        for cpu_value, gpu_value in zip(*results, strict=True):
            np.testing.assert_allclose(gpu_value, cpu_value, rtol=1e-10, atol=1e-12, err_msg=entry.name)
