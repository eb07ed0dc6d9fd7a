"""threads.py: products cut into parts, one per thread, equal np.matmul however they are cut;
OpenBLAS keeps its threads until allow_take_over() and large work set it to one thread, and
restore_blas_threads gives them back; a forked child starts afresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import cut_in_parts, seeds

from scratchvit.kernels.cpu import threads


@pytest.fixture
def three_threads():
    with cut_in_parts(3) as state:
        yield state


@st.composite
def stacked_shapes(draw) -> tuple:
    """(..., n, k) and (..., k, m) with broadcasting leading dims, none to three of them."""
    n, k, m = (draw(st.integers(1, 7)) for _ in range(3))
    (lead_a, lead_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=5))
    return lead_a + (n, k), lead_b + (k, m)


@given(shapes=stacked_shapes(), seed=seeds, transpose_b=st.booleans())
def test_cut_products_equal_numpy(shapes, seed, transpose_b):
    """Stacks cut along their longest leading axis, 2-D products (and stacks shorter than the
    thread count) along rows or columns, strided operands (a transposed b) included."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    if transpose_b:
        b = np.ascontiguousarray(b.swapaxes(-1, -2)).swapaxes(-1, -2)
    with cut_in_parts(3):
        out = threads.matmul(a, b)
    expected = np.matmul(a, b)
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_each_cut_runs_on_its_own_thread(three_threads, monkeypatch):
    """A 2-D product with more rows than columns is cut by rows, a stack along its longest leading
    axis; the first part runs on the calling thread, the others on the pool."""
    import threading

    calls = []
    numpy_matmul = np.matmul

    def recording_matmul(a, b, out):
        calls.append((threading.current_thread() is threading.main_thread(), a.shape, b.shape))
        return numpy_matmul(a, b, out=out)

    monkeypatch.setattr(threads.np, "matmul", recording_matmul)
    threads.matmul(np.ones((9, 4), np.float32), np.ones((4, 2), np.float32))
    assert sorted(calls, reverse=True) == [(True, (3, 4), (4, 2)), (False, (3, 4), (4, 2)), (False, (3, 4), (4, 2))]
    calls.clear()
    threads.matmul(np.ones((2, 6, 5, 4), np.float32), np.ones((1, 1, 4, 3), np.float32))  # cut along the 6
    assert len(calls) == 3 and {tuple(shapes) for _, *shapes in calls} == {((2, 2, 5, 4), (2, 2, 4, 3))}
    calls.clear()
    threads.matmul(np.ones((2, 4), np.float32), np.ones((4, 7), np.float32))  # columns: all of a
    assert sorted(tuple(shapes) for _, *shapes in calls) == [((2, 4), (4, 2)), ((2, 4), (4, 2)), ((2, 4), (4, 3))]


def test_a_long_inner_dimension_is_cut_and_the_partial_products_summed(three_threads, monkeypatch):
    """g^T x of a weight gradient: 9 tokens summed for a 2 x 3 result, cut into three sums of 3."""
    cuts = []
    run_parts = threads.run_parts
    monkeypatch.setattr(
        threads, "run_parts", lambda function, arguments: cuts.append(arguments) or run_parts(function, arguments)
    )
    a = np.arange(18, dtype=np.float32).reshape(9, 2).T  # transposed, as grad2d.T
    b = np.arange(27, dtype=np.float32).reshape(9, 3)
    np.testing.assert_array_equal(threads.matmul(a, b), a @ b)
    assert cuts == [[(0, 3), (3, 6), (6, 9)]]


def test_small_products_and_one_thread_are_plain(three_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "MIN_PARALLEL_FLOPS", 2 * 4 * 4 * 4 + 1)
    monkeypatch.setattr(three_threads.pool, "submit", lambda *args, **kwargs: calls.append(args))
    a = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(threads.matmul(a, a), np.full((4, 4), 4.0))
    three_threads.count = 1
    monkeypatch.setattr(threads, "MIN_PARALLEL_FLOPS", 0)
    np.testing.assert_array_equal(threads.matmul(a, a), np.full((4, 4), 4.0))
    assert calls == []


def test_openblas_keeps_its_threads_until_allowed_and_large_work_then_is_restored(monkeypatch):
    """NumPy's wheels bundle OpenBLAS: products alone, however large, leave its threads alone;
    after allow_take_over() small work still does, and the first work of MIN_PARALLEL_FLOPS sets
    it to one thread and starts a pool for the others; restore_blas_threads gives them back and
    ends the cutting."""
    blas = threads.find_openblas()
    if blas is None:
        pytest.skip("this NumPy does not use OpenBLAS (MKL or Accelerate): products stay plain a @ b")
    original = blas.get_num_threads()
    blas.set_num_threads(2)
    state = threads._Threads()
    monkeypatch.setattr(threads, "_threads", state)
    monkeypatch.setattr(threads, "MIN_PARALLEL_FLOPS", 2 * 8**3)
    try:
        small, large = np.ones((4, 4), np.float32), np.ones((8, 8), np.float32)
        np.testing.assert_array_equal(threads.matmul(large, large), np.full((8, 8), 8.0))
        assert not state.own and blas.get_num_threads() == 2 and threads.parts_for(1e12) == 1
        assert threads.allow_take_over() is True
        np.testing.assert_array_equal(threads.matmul(small, small), np.full((4, 4), 4.0))
        assert not state.own and blas.get_num_threads() == 2
        np.testing.assert_array_equal(threads.matmul(large, large), np.full((8, 8), 8.0))
        assert state.own and blas.get_num_threads() == 1 and state.pool._max_workers == 1
        assert threads.parts_for(1e12) == 2
        threads.restore_blas_threads()
        assert blas.get_num_threads() == 2 and not state.own and state.pool is None
        assert threads.parts_for(1e12) == 1
    finally:
        if state.pool is not None:
            state.pool.shutdown()
        blas.set_num_threads(original)


def test_a_part_cuts_no_further(three_threads):
    """Work inside a part runs its own parts on its own thread: the pool's threads are busy."""
    import threading

    def outer(index):
        inner = threads.run_parts(lambda j: (j, threading.current_thread().name), [(0,), (1,), (2,)])
        return {name for _, name in inner} == {threading.current_thread().name}

    assert threads.run_parts(outer, [(0,), (1,), (2,)]) == [True, True, True]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_threads(three_threads):
    """The parent's pool threads do not exist in a forked child: its first product starts afresh."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child_state = pool.apply_async(_child_product_and_state).get(timeout=30)  # a dead pool would hang
    assert child_state == (True, 12.0)


def _child_product_and_state():
    fresh = threads._threads is not None and threads._threads.pool is None
    product = threads.matmul(np.ones((3, 4), np.float32), np.ones((4, 3), np.float32))
    return fresh, float(product.sum() / 3)


def test_a_numpy_built_on_another_blas_is_left_alone(monkeypatch):
    monkeypatch.setattr(threads, "_numpy_blas_name", lambda: "mkl-sdl")
    assert threads.find_openblas() is None
