"""Every registered kernel equals its textbook op, forward and backward, on the shapes of the op
table, in float32 and float64, on each of its paths: the work cut into parts on threads or not,
chunked or not, attention weights kept or recomputed (the op table's sizes take both). The NumPy
kernels run on the cpu case of the device fixture, the CuPy kernels on its cuda case (on a GPU,
or under the CuPy stand-in, which runs their fused bodies one operation at a time)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import cut_in_parts, seeds, sizes_for, small_chunks

import scratchvit as sv
from scratchvit import backend, kernels
from scratchvit.check.op_table import OP_TABLE

DTYPES = (np.float32, np.float64)
# float32: kernels may sum in another order or evaluate GELU another way (a few float32 units)
TOLERANCES = {np.float32: (3e-5, 3e-6), np.float64: (1e-9, 1e-11)}  # (rtol, atol relative to the largest value)
PATHS = {
    "one part": contextlib.nullcontext,
    "three parts": lambda: cut_in_parts(3),
    "small chunks": lambda: small_chunks(5),
}


def ops_in_graph(output) -> set:
    """The Function classes that computed `output`."""
    found, seen, pending = set(), set(), [output]
    while pending:
        tensor = pending.pop()
        function = tensor.creator
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        found.add(type(function))
        pending.extend(t for t in function.inputs if t is not None)
    return found


def kernels_in_graph(output) -> set:
    """The kernel classes among the Functions that computed `output`."""
    return {op for op in ops_in_graph(output) if hasattr(op, "textbook_op")}


def kernels_of(entry, dtype, device=backend.CPU) -> set:
    inputs = entry.inputs(np.random.default_rng(0), dtype=dtype, device=device)
    with kernels.tier("fast"):
        return kernels_in_graph(entry.function(*inputs))


def textbook_ops_of(entry) -> set:
    inputs = entry.inputs(np.random.default_rng(0), dtype=np.float64)
    with kernels.tier("textbook"):
        return ops_in_graph(entry.function(*inputs))


ENTRIES_WITH_KERNELS = [entry for entry in OP_TABLE if textbook_ops_of(entry) & set(sv.autograd.KERNELS)]
BACKEND_OF = {"cpu": "numpy", "cuda": "cupy"}


def run(entry, sizes, seed: int, dtype, tier: str, path: str, device=backend.CPU) -> list:
    """[output, gradient of every differentiable input] of one op-table entry, as NumPy arrays."""
    inputs = entry.inputs(np.random.default_rng(seed), sizes, dtype, device=device)
    with kernels.tier(tier), PATHS[path]():
        output = entry.function(*inputs)
        upstream = np.random.default_rng(seed + 1).standard_normal(output.shape).astype(dtype)
        output.backward(backend.to_device(upstream, device))
    leaves = [value for value in inputs if isinstance(value, sv.Tensor) and value.requires_grad]
    return [output.numpy()] + [backend.to_numpy(leaf.grad) for leaf in leaves]


def test_every_registered_kernel_runs_in_some_op_table_entry(device):
    covered = {kernel for entry in OP_TABLE for dtype in DTYPES for kernel in kernels_of(entry, dtype, device)}
    registered = {
        entry.kernel
        for entry in kernels.registered_kernels()
        if entry.backend == BACKEND_OF[device.kind] and isinstance(entry.op, type)  # ops, not update rules
    }
    assert registered and registered <= covered, (
        f"kernels no entry runs: {sorted(k.__name__ for k in registered - covered)}"
    )


@pytest.mark.parametrize("entry", ENTRIES_WITH_KERNELS, ids=[entry.name for entry in ENTRIES_WITH_KERNELS])
@given(data=st.data())
def test_kernel_equals_textbook_forward_and_backward(entry, data, device):
    sizes = data.draw(sizes_for(entry), label="sizes")
    seed = data.draw(seeds, label="seed")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    path = data.draw(st.sampled_from(sorted(PATHS)), label="path")
    expected = run(entry, sizes, seed, dtype, "textbook", "one part", device)
    got = run(entry, sizes, seed, dtype, "fast", path, device)
    rtol, atol = TOLERANCES[dtype]
    for position, (fast, textbook) in enumerate(zip(got, expected, strict=True)):
        what = "forward" if position == 0 else f"gradient of input {position - 1}"
        assert fast.dtype == textbook.dtype == dtype and fast.shape == textbook.shape, what
        scale = max(1.0, float(np.max(np.abs(textbook), initial=0.0)))
        np.testing.assert_allclose(fast, textbook, rtol=rtol, atol=atol * scale, err_msg=what)


def test_the_textbook_tier_runs_no_kernel():
    (entry,) = [entry for entry in OP_TABLE if entry.name == "gelu"]
    inputs = entry.inputs(np.random.default_rng(0), dtype=np.float32)
    with kernels.tier("textbook"):
        assert kernels_in_graph(entry.function(*inputs)) == set()
    with kernels.tier("fast"):
        assert {kernel.__name__ for kernel in kernels_in_graph(entry.function(*inputs))} == {"GELUFromNormalTail"}


def test_a_broken_kernel_is_caught():
    """The comparison fails when a kernel's backward drops a term: it can fail."""
    from scratchvit.ops.activation import Softmax

    (entry,) = [entry for entry in OP_TABLE if entry.name == "softmax"]
    table = sv.autograd.KERNELS[Softmax]
    saved = dict(table)

    class DroppedTerm(saved[("numpy", np.dtype(np.float64))]):
        def backward(self, grad):
            return grad * self.y  # the "- y * sum(g * y)" term is missing

    DroppedTerm.textbook_op = Softmax
    table[("numpy", np.dtype(np.float64))] = DroppedTerm
    try:
        got = run(entry, entry.default_sizes, 0, np.float64, "fast", "one part")
    finally:
        table.clear()
        table.update(saved)
    expected = run(entry, entry.default_sizes, 0, np.float64, "textbook", "one part")
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    assert not np.allclose(got[1], expected[1], rtol=1e-3)
