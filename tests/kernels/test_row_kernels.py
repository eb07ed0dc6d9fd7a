"""Layer norm, softmax, log-softmax and the residual add cut over threads (kernels/cpu/layer_norm.py,
softmax.py, residual_add.py): the parts give what one part gives, forward and backward, however
the rows fall (not divisible by the part count, one row, a strided input); before scratchvit
takes over from OpenBLAS every part count is 1 and no pool is used."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import cut_in_parts, seeds

import scratchvit as sv
from scratchvit import kernels
from scratchvit import ops as F
from scratchvit.kernels.cpu import chunks, layer_norm, residual_add, softmax, threads

DTYPES = (np.float32, np.float64)
# each row is computed the same way in any part; dw and db add the parts' sums, in another order
TOLERANCES = {np.float32: (1e-5, 1e-5), np.float64: (1e-12, 1e-12)}  # (rtol, atol relative to the largest value)


def layer_norm_fn(x, w, b):
    return F.layer_norm(x, w, b, eps=1e-5)


OPS = {
    "layer_norm": (layer_norm_fn, 3),
    "layer_norm_no_affine": (F.layer_norm, 1),
    "softmax": (F.softmax, 1),
    "softmax_axis0": (lambda x: F.softmax(x, axis=0), 1),
    "log_softmax": (F.log_softmax, 1),
    "add": (F.add, 2),
}
KERNELS = {
    "layer_norm": layer_norm.LayerNormInPlace,
    "layer_norm_no_affine": layer_norm.LayerNormInPlace,
    "softmax": softmax.SoftmaxInPlace,
    "softmax_axis0": softmax.SoftmaxInPlace,
    "log_softmax": softmax.LogSoftmaxInPlace,
    "add": residual_add.ResidualAdd,
}


def make_inputs(name: str, shape: tuple, dtype, seed: int, strided: bool) -> list:
    """The op's arrays: x of `shape` (a transposed view of a contiguous array when `strided`), then
    w and b (C,) for layer norm, or a second operand of x's shape for add."""
    rng = np.random.default_rng(seed)
    if strided:  # x is the transpose of its first two axes: not contiguous, rows not consecutive
        x = rng.standard_normal((shape[1], shape[0]) + shape[2:]).astype(dtype).swapaxes(0, 1)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    count = OPS[name][1]
    if name == "layer_norm":
        weight = (1 + 0.5 * rng.standard_normal(shape[-1])).astype(dtype)
        return [x, weight, rng.standard_normal(shape[-1]).astype(dtype)]
    return [x] + [rng.standard_normal(shape).astype(dtype) for _ in range(count - 1)]


def run(name: str, arrays: list, context) -> list:
    """[output, gradient of each input] on the fast tier inside `context`, with kernel check."""
    function, _ = OPS[name]
    leaves = [sv.Tensor(array, requires_grad=True) for array in arrays]
    with kernels.tier("fast"), context:
        output = function(*leaves)
        assert type(output.creator) is KERNELS[name]
        upstream = np.random.default_rng(7).standard_normal(output.shape).astype(arrays[0].dtype)
        output.backward(upstream)
    return [output.numpy()] + [leaf.grad for leaf in leaves]


def assert_same(got: list, expected: list, dtype) -> None:
    rtol, atol = TOLERANCES[dtype]
    for position, (a, b) in enumerate(zip(got, expected, strict=True)):
        what = "forward" if position == 0 else f"gradient of input {position - 1}"
        assert a.shape == b.shape and a.dtype == b.dtype == dtype, what
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=what)


SHAPES = {
    "rows not divisible by the parts": (7, 5, 4),
    "one row": (1, 1, 6),
    "fewer rows than parts": (2, 1, 3),
    "many rows": (5, 41, 8),
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_parts_equal_one_part(name, shape, strided, dtype):
    arrays = make_inputs(name, shape, dtype, seed=0, strided=strided)
    expected = run(name, arrays, contextlib.nullcontext())
    got = run(name, arrays, cut_in_parts(3))
    assert_same(got, expected, dtype)


@pytest.mark.parametrize("name", sorted(OPS))
@given(
    rows=st.integers(1, 9),
    channels=st.integers(1, 6),
    parts=st.integers(2, 5),
    seed=seeds,
    strided=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_any_cut_equals_one_part(name, rows, channels, parts, seed, strided, dtype):
    arrays = make_inputs(name, (rows, 2, channels), dtype, seed, strided)
    assert_same(run(name, arrays, cut_in_parts(parts)), run(name, arrays, contextlib.nullcontext()), dtype)


def test_each_part_runs_on_its_own_thread(monkeypatch):
    """Three parts: the first on the calling thread, the other two on the pool."""
    seen = []
    forward_rows = layer_norm.layer_norm_rows

    def recording(rows, *args):
        seen.append((threading.current_thread() is threading.main_thread(), rows.shape[0]))
        return forward_rows(rows, *args)

    monkeypatch.setattr(layer_norm, "layer_norm_rows", recording)
    x = sv.Tensor(np.ones((7, 4), np.float32))
    with cut_in_parts(3):
        F.layer_norm(x)
    assert sorted(seen) == [(False, 2), (False, 3), (True, 2)]  # rows 0-1 here, 2-3 and 4-6 on the pool


class NoPool:
    """A pool that fails the test if anything is handed to it."""

    def submit(self, *args, **kwargs):
        raise AssertionError("a part was handed to the pool")

    def shutdown(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("name", sorted(OPS))
def test_without_take_over_nothing_is_cut(name, monkeypatch):
    """Until allow_take_over() has run, parts_for is 1 for any size and every kernel runs on the
    calling thread, on arrays above every minimum too."""
    state = threads._Threads()
    state.found, state.count, state.own, state.pool = True, 3, False, NoPool()
    monkeypatch.setattr(threads, "_threads", state)
    monkeypatch.setattr(chunks, "MIN_PARALLEL_ELEMENTS", 0)
    assert threads.parts_for(1e12, minimum=0) == 1
    arrays = make_inputs(name, (6, 5, 4), np.float32, seed=1, strided=False)
    got = run(name, arrays, contextlib.nullcontext())  # NoPool fails the test if a part reaches it
    monkeypatch.undo()
    assert_same(got, run(name, arrays, contextlib.nullcontext()), np.float32)


def test_small_arrays_stay_on_the_calling_thread(monkeypatch):
    """With scratchvit's threads taken over, arrays below the minimum are not cut."""
    state = threads._Threads()
    state.found, state.count, state.allowed, state.own, state.pool = True, 3, True, True, NoPool()
    monkeypatch.setattr(threads, "_threads", state)
    x = sv.Tensor(np.ones((4, 8), np.float32), requires_grad=True)
    F.layer_norm(x).backward(np.ones((4, 8), np.float32))
    F.softmax(x).backward(np.ones((4, 8), np.float32))
    F.log_softmax(x).backward(np.ones((4, 8), np.float32))
    F.add(x, x).backward(np.ones((4, 8), np.float32))


def test_broadcasting_add_runs_the_textbook():
    """Operands of different shapes, or a strided one, are added by the textbook's a + b."""
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    with cut_in_parts(3):
        for b in (np.ones(3, np.float32), np.ones((3, 2), np.float32).T):
            x, y = sv.Tensor(a, requires_grad=True), sv.Tensor(b, requires_grad=True)
            out = F.add(x, y)
            out.backward(np.ones((2, 3), np.float32))
            np.testing.assert_array_equal(out.numpy(), a + b)
            assert x.grad.shape == a.shape and y.grad.shape == b.shape


def test_same_shape_add_hands_back_the_gradient_itself():
    """The backward of a same-shaped add gives both inputs the incoming gradient, uncopied."""
    function = residual_add.ResidualAdd()
    with cut_in_parts(3):
        function.forward(np.ones((3, 4), np.float32), np.ones((3, 4), np.float32))
    grad = np.ones((3, 4), np.float32)
    grad_a, grad_b = function.backward(grad)
    assert grad_a is grad and grad_b is grad
