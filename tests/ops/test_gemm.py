"""gemm.matmul: products cut into parts, one per thread, equal np.matmul however they are cut;
OpenBLAS is found and set to one thread, and restore_blas_threads gives its threads back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import seeds

from scratchvit.ops import gemm


@contextmanager
def cut_in_three():
    """Products cut in three, however small (the pool's two threads plus the caller's)."""
    state, saved = gemm._Threads(), (gemm._threads, gemm.MIN_SPLIT_FLOPS)
    state.started, state.count = True, 3
    state.pool = ThreadPoolExecutor(2)
    gemm._threads, gemm.MIN_SPLIT_FLOPS = state, 0
    try:
        yield state
    finally:
        gemm._threads, gemm.MIN_SPLIT_FLOPS = saved
        state.pool.shutdown()


@pytest.fixture
def three_threads():
    with cut_in_three() as state:
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
    with cut_in_three():
        out = gemm.matmul(a, b)
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

    monkeypatch.setattr(gemm.np, "matmul", recording_matmul)
    gemm.matmul(np.ones((9, 4), np.float32), np.ones((4, 2), np.float32))
    assert sorted(calls, reverse=True) == [(True, (3, 4), (4, 2)), (False, (3, 4), (4, 2)), (False, (3, 4), (4, 2))]
    calls.clear()
    gemm.matmul(np.ones((2, 6, 5, 4), np.float32), np.ones((1, 1, 4, 3), np.float32))  # cut along the 6
    assert len(calls) == 3 and {tuple(shapes) for _, *shapes in calls} == {((2, 2, 5, 4), (2, 2, 4, 3))}
    calls.clear()
    gemm.matmul(np.ones((2, 4), np.float32), np.ones((4, 7), np.float32))  # columns: all of a
    assert sorted(tuple(shapes) for _, *shapes in calls) == [((2, 4), (4, 2)), ((2, 4), (4, 2)), ((2, 4), (4, 3))]


def test_small_products_and_one_thread_are_plain(three_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(gemm, "MIN_SPLIT_FLOPS", 2 * 4 * 4 * 4 + 1)
    monkeypatch.setattr(three_threads.pool, "submit", lambda *args, **kwargs: calls.append(args))
    a = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(gemm.matmul(a, a), np.full((4, 4), 4.0))
    three_threads.count = 1
    monkeypatch.setattr(gemm, "MIN_SPLIT_FLOPS", 0)
    np.testing.assert_array_equal(gemm.matmul(a, a), np.full((4, 4), 4.0))
    assert calls == []


def test_openblas_is_found_set_to_one_thread_and_restored(monkeypatch):
    """NumPy's wheels bundle OpenBLAS: the first product sets it to one thread and keeps the
    others for its pool; restore_blas_threads gives them back."""
    blas = gemm.find_openblas()
    if blas is None:
        pytest.skip("this NumPy does not use OpenBLAS (MKL or Accelerate): products stay plain a @ b")
    original = blas.get_num_threads()
    blas.set_num_threads(2)
    state = gemm._Threads()
    monkeypatch.setattr(gemm, "_threads", state)
    try:
        gemm.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
        assert state.started and state.count == 2 and blas.get_num_threads() == 1
        assert state.pool is not None and state.pool._max_workers == 1
        gemm.restore_blas_threads()
        assert blas.get_num_threads() == 2 and state.count == 1
    finally:
        if state.pool is not None:
            state.pool.shutdown()
        blas.set_num_threads(original)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_threads(three_threads):
    """The parent's pool threads do not exist in a forked child: its first product starts afresh."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        child_state = pool.apply_async(_child_product_and_state).get(timeout=30)  # a dead pool would hang
    assert child_state == (True, 12.0)


def _child_product_and_state():
    fresh = gemm._threads is not None and gemm._threads.pool is None
    product = gemm.matmul(np.ones((3, 4), np.float32), np.ones((4, 3), np.float32))
    return fresh, float(product.sum() / 3)
