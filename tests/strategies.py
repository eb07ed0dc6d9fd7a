"""Hypothesis strategies for the op tests (sizes, shapes, arrays), two helpers that turn drawn
arrays into tensors and gradients, and the fast tier's paths on demand: cut_in_parts makes
kernels/cpu/threads.py cut any work, small_chunks makes chunked kernels cut small arrays.

Sizes stay small: the gradient checks perturb one element at a time, so an input of n elements
costs 2n forward passes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchvit as sv
from scratchvit import backend

# ---- sizes and shapes ------------------------------------------------------------------------
seeds = st.integers(min_value=0, max_value=2**32 - 1)
small = st.integers(min_value=1, max_value=3)  # a dimension; 1 included, so broadcasting happens


def sizes_for(entry) -> st.SearchStrategy:
    """The size parameters of an op-table entry, each drawn from its inclusive range."""
    return st.tuples(*(st.integers(low, high) for low, high in entry.size_ranges))


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(count: int = 2, max_dims: int = 3, max_side: int = 3) -> st.SearchStrategy:
    """`count` input shapes that broadcast together (0-d and size-1 dims included)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=count, min_dims=0, max_dims=max_dims, max_side=max_side)


@st.composite
def matmul_shapes(draw) -> tuple:
    """Shapes (..., n, k) and (..., k, m) whose batch dims broadcast, or 1-D on either side."""
    n, k, m = draw(small), draw(small), draw(small)
    (batch_a, batch_b), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=2))
    shape_a = (k,) if draw(st.integers(0, 4)) == 0 else batch_a + (n, k)
    shape_b = (k,) if draw(st.integers(0, 4)) == 0 else batch_b + (k, m)
    return shape_a, shape_b


# ---- arrays ------------------------------------------------------------------------------------
def finite_floats(low: float = -3.0, high: float = 3.0, width: int = 64) -> st.SearchStrategy:
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)


def arrays(shape, dtype=np.float64, low: float = -3.0, high: float = 3.0) -> st.SearchStrategy:
    """Arrays of `shape` with finite values in [low, high]."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=finite_floats(low, high, width))


@st.composite
def images(draw, max_batch: int = 2, max_channels: int = 3, max_grid: int = 3, max_patch: int = 3) -> tuple:
    """(images of shape (B, C, h*P, w*P), P, (h, w)): grids and patches need not be square."""
    batch, channels = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    grid = (draw(st.integers(1, max_grid)), draw(st.integers(1, max_grid)))
    patch = draw(st.integers(1, max_patch))
    values = np.random.default_rng(draw(seeds)).standard_normal((batch, channels, grid[0] * patch, grid[1] * patch))
    return values, patch, grid


@st.composite
def feature_maps(draw, max_batch: int = 2, max_windows: int = 3, max_window: int = 3, max_channels: int = 3) -> tuple:
    """(x of shape (B, H, W, C), window size M): H and W multiples of M, not necessarily equal."""
    batch, channels = draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels))
    window = draw(st.integers(1, max_window))
    rows, columns = draw(st.integers(1, max_windows)), draw(st.integers(1, max_windows))
    values = np.random.default_rng(draw(seeds)).standard_normal((batch, rows * window, columns * window, channels))
    return values, window


# ---- helpers -------------------------------------------------------------------------------------
def host(value) -> np.ndarray:
    """A NumPy array of a Tensor's data, or of a numpy / cupy array (e.g. a .grad)."""
    return value.numpy() if isinstance(value, sv.Tensor) else backend.to_numpy(value)


def leaf(values, device, dtype=None, requires_grad: bool = True) -> sv.Tensor:
    """A fresh leaf tensor of a NumPy array on `device` (float64 unless `dtype`)."""
    values = np.asarray(values, dtype=np.float64 if dtype is None else dtype)
    return sv.Tensor(values, requires_grad=requires_grad, device=device)


def value_and_grads(function, arrays_in: list, device, upstream_seed: int = 0, constants: tuple = ()) -> tuple:
    """Run function(*leaves, *constants) on fresh float64 leaves made from `arrays_in`, backward a
    random upstream gradient r (the gradient of sum(f * r)), and return (output, [gradients]) as
    NumPy arrays. Calling it with a fused op and with its composition gives comparable results."""
    leaves = [leaf(values, device) for values in arrays_in]
    output = function(*leaves, *constants)
    upstream = np.random.default_rng(upstream_seed).standard_normal(output.shape)
    output.backward(backend.to_device(upstream, backend.get_device(device)))
    return output.numpy(), [backend.to_numpy(t.grad) for t in leaves]


def assert_same_value_and_grads(fused, reference, arrays_in: list, device, seed: int = 0, constants=(), tol=1e-10):
    """The fused op and its composition from primitives agree, forward and every gradient."""
    fused_out, fused_grads = value_and_grads(fused, arrays_in, device, seed, constants)
    reference_out, reference_grads = value_and_grads(reference, arrays_in, device, seed, constants)
    np.testing.assert_allclose(fused_out, reference_out, rtol=tol, atol=tol, err_msg="forward")
    for position, (got, expected) in enumerate(zip(fused_grads, reference_grads, strict=True)):
        assert got.shape == expected.shape, f"gradient of input {position}: shape {got.shape} != {expected.shape}"
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=f"gradient of input {position}")


# ---- threads -------------------------------------------------------------------------------------
@contextmanager
def cut_in_parts(count: int = 3):
    """Large work (products, attention, chunked kernels) cut into `count` parts however small it is, on a pool of
    count - 1 threads plus the caller's (kernels/cpu/threads.py), whatever this machine's BLAS."""
    from scratchvit.kernels.cpu import chunks, threads

    state = threads._Threads()
    saved = (threads._threads, threads.MIN_PARALLEL_FLOPS, chunks.MIN_PARALLEL_ELEMENTS)
    state.found, state.allowed, state.own, state.count = True, True, True, count
    state.pool = ThreadPoolExecutor(count - 1)
    threads._threads, threads.MIN_PARALLEL_FLOPS, chunks.MIN_PARALLEL_ELEMENTS = state, 0, 0
    try:
        yield state
    finally:
        threads._threads, threads.MIN_PARALLEL_FLOPS, chunks.MIN_PARALLEL_ELEMENTS = saved
        state.pool.shutdown()


@contextmanager
def small_chunks(size: int = 5):
    """Chunked kernels (kernels/cpu/chunks.py) cut arrays into chunks of `size` elements, so small
    arrays take the many-chunk path; their reusable work arrays are dropped before and after."""
    from scratchvit.kernels.cpu import chunks

    saved = chunks.CHUNK_SIZE
    chunks._scratch_buffers.clear()
    chunks.CHUNK_SIZE = size
    try:
        yield
    finally:
        chunks.CHUNK_SIZE = saved
        chunks._scratch_buffers.clear()
