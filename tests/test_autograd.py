"""The engine's traps: shared inputs and diamonds accumulate every path, deep graphs need no
recursion, a freed graph says so, broadcast gradients come back in each input's shape,
reflected operators, no_grad, detach, item, leaf accumulation, unbroadcast."""

from __future__ import annotations

import sys
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import broadcastable_shapes, host, leaf, matmul_shapes, seeds

import scratchvit as sv
from scratchvit import ops as F
from scratchvit.autograd import unbroadcast


def test_a_tensor_used_twice_gets_both_gradients(device):
    x = leaf([1.0, -2.0, 3.0], device)
    (x * x).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [2.0, -4.0, 6.0])


def test_a_diamond_accumulates_both_paths(device):
    x = leaf([1.5, -0.5], device)
    y = x * 2
    z = y * y + y  # dz/dx = (2y + 1) * 2 = 8x + 2
    z.backward(device.xp.ones(2))
    np.testing.assert_array_equal(host(x.grad), [14.0, -2.0])


def test_a_shared_intermediate_with_several_consumers(device):
    x = leaf([2.0], device)
    y = x.exp()
    z = (y * 3 + y.log() - y / y).sum()  # 3 e^x + x - 1: dz/dx = 3 e^x + 1
    z.backward()
    np.testing.assert_allclose(host(x.grad), [3 * np.exp(2.0) + 1])


def test_a_5000_op_chain_backward_needs_no_recursion(device):
    assert sys.getrecursionlimit() < 5000 * 2
    x = leaf([1.0], device)
    y = x
    for _ in range(2500):
        y = y * 1.0001
        y = y + 0.001
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [1.0001**2500], rtol=1e-12)


def test_backward_twice_needs_retain_graph(device):
    x = leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_lets_gradients_accumulate_twice(device):
    x = leaf([1.0, 2.0], device)
    loss = (x * x * 3).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(host(x.grad), [6.0, 12.0])
    loss.backward()
    np.testing.assert_array_equal(host(x.grad), [12.0, 24.0])


def test_backward_frees_the_saved_arrays(device):
    x = leaf([1.0, 2.0], device)
    product = x * x
    product.sum().backward()
    assert product.creator.released and not hasattr(product.creator, "a")


def test_backward_frees_each_activation_once_its_gradient_is_passed_on(device):
    """An intermediate array no saved state needs (GELU keeps its slope, not its input) is freed as
    backward walks past it, not when backward returns: a probe upstream sees it gone."""
    seen_alive = []

    class Probe(sv.autograd.Function):
        def forward(self, x):
            return x * 1

        def backward(self, grad):
            seen_alive.append(activation() is not None)
            return grad

    x = leaf(np.linspace(-1, 1, 6), device)
    hidden = F.gelu(Probe.apply(x))
    activation = weakref.ref(hidden.data)  # the second GELU's input, held by the hidden tensor alone
    loss = F.sum(F.gelu(hidden))
    del hidden
    loss.backward()
    assert seen_alive == [False]


def test_leaf_grad_accumulates_across_backward_calls_and_zero_grad_clears_it(device):
    x = leaf([1.0, 2.0], device)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


BINARY_OPS = {
    "add": F.add,
    "sub": F.sub,
    "mul": F.mul,
    "div": F.div,
    "pow": F.pow,
    "maximum": F.maximum,
}


@pytest.mark.parametrize("name", list(BINARY_OPS))
@given(shapes=broadcastable_shapes(2), seed=seeds)
def test_binary_op_gradients_have_each_input_shape(device, name, shapes, seed):
    (shape_a, shape_b), result_shape = shapes
    rng = np.random.default_rng(seed)
    a_values = rng.uniform(0.5, 2.0, shape_a)
    b_values = rng.uniform(-2.0, 2.0, shape_b) if name != "maximum" else rng.uniform(2.5, 4.0, shape_b)
    if name == "maximum":  # a above b in some places, never tied
        a_values = np.where(rng.random(shape_a) < 0.5, a_values, a_values + 4)
    if name == "div":
        b_values = rng.uniform(0.5, 2.0, shape_b) * rng.choice([-1, 1], shape_b)
    a, b = leaf(a_values, device), leaf(b_values, device)
    out = BINARY_OPS[name](a, b)
    assert out.shape == result_shape
    out.backward(device.xp.asarray(rng.standard_normal(result_shape)))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    sv.gradcheck(BINARY_OPS[name], (leaf(a_values, device), leaf(b_values, device)), seed=seed)


@given(shapes=broadcastable_shapes(3), seed=seeds)
def test_where_gradients_have_each_input_shape(device, shapes, seed):
    (shape_condition, shape_a, shape_b), result_shape = shapes
    rng = np.random.default_rng(seed)
    condition = device.xp.asarray(rng.random(shape_condition) < 0.5)
    a, b = leaf(rng.standard_normal(shape_a), device), leaf(rng.standard_normal(shape_b), device)
    out = F.where(condition, a, b)
    assert out.shape == result_shape
    out.backward(device.xp.asarray(rng.standard_normal(result_shape)))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    sv.gradcheck(lambda a, b: F.where(condition, a, b), (leaf(host(a), device), leaf(host(b), device)), seed=seed)


@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul_gradients_have_each_input_shape(device, shapes, seed):
    shape_a, shape_b = shapes
    rng = np.random.default_rng(seed)
    a, b = leaf(rng.standard_normal(shape_a), device), leaf(rng.standard_normal(shape_b), device)
    out = a @ b
    out.backward(device.xp.asarray(rng.standard_normal(out.shape)))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    sv.gradcheck(F.matmul, (leaf(host(a), device), leaf(host(b), device)), seed=seed)


def test_rsub_and_rtruediv_compute_other_minus_self_and_other_over_self(device):
    t = leaf([2.0, 4.0], device)
    np.testing.assert_array_equal(host(5 - t), [3.0, 1.0])
    np.testing.assert_array_equal(host(5 / t), [2.5, 1.25])
    np.testing.assert_array_equal(host(t.__rsub__(5)), [3.0, 1.0])
    np.testing.assert_array_equal(host(t.__rtruediv__(8)), [4.0, 2.0])


def test_no_grad_records_no_graph(device):
    x = leaf([1.0, 2.0], device)
    with sv.no_grad():
        assert not sv.is_grad_enabled()
        y = x * 2 + 1
    assert sv.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    np.testing.assert_array_equal(host(y), [3.0, 5.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_as_a_decorator_and_after_an_exception(device):
    @sv.no_grad()
    def double(t):
        """Doubles."""
        return t * 2

    x = leaf([1.0], device)
    assert not double(x).requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Doubles."
    assert sv.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with sv.no_grad():
            raise ZeroDivisionError
    assert sv.is_grad_enabled()
    with sv.no_grad():
        with sv.no_grad():
            pass
        assert not sv.is_grad_enabled()
    assert (x * 2).requires_grad


def test_detach_cuts_the_graph_and_shares_the_data(device):
    x = leaf([1.0, 3.0], device)
    d = x.detach()
    assert not d.requires_grad and d.creator is None and d.data is x.data
    (d * x).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [1.0, 3.0])  # not 2x: the detached path is constant


def test_item_and_numpy(device):
    assert leaf([[2.5]], device).item() == 2.5
    assert isinstance(leaf(np.array(1.5), device).item(), float)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(2,\)"):
        leaf([1.0, 2.0], device).item()
    array = leaf([1.0, 2.0], device).numpy()
    assert isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array, [1.0, 2.0])


def test_backward_argument_errors(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(ValueError, match=r"backward\(\) without grad needs a one-element tensor, got shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the tensor has \(2,\)"):
        (x * 2).backward(device.xp.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        leaf([1.0], device, requires_grad=False).backward()
    with pytest.raises(TypeError, match="requires_grad needs a floating-point tensor"):
        sv.Tensor(np.array([1, 2]), requires_grad=True, device=device)


def test_ops_on_constants_record_nothing(device):
    a, b = leaf([1.0], device, requires_grad=False), leaf([2.0], device, requires_grad=False)
    out = a * b + a
    assert not out.requires_grad and out.creator is None


def test_a_backward_returning_none_for_an_input_leaves_it_without_grad(device):
    class FirstOnly(sv.Function):
        def forward(self, a, b):
            return a * 2

        def backward(self, grad):
            return grad * 2, None

    a, b = leaf([1.0], device), leaf([5.0], device)
    hidden = b * 3  # a non-leaf that no path gives a gradient
    FirstOnly.apply(a, hidden).sum().backward()
    np.testing.assert_array_equal(host(a.grad), [2.0])
    assert b.grad is None


@pytest.mark.parametrize(
    "grad_shape, shape, expected",
    [
        ((2, 3, 4), (3, 1), lambda g: g.sum(axis=(0, 2))[:, None]),
        ((2, 3), (), lambda g: g.sum()),
        ((2, 3), (1, 1), lambda g: g.sum(keepdims=True)),
        ((2, 1), (2, 1), lambda g: g),
        ((4, 2, 3), (1, 3), lambda g: g.sum(axis=(0, 1))[None, :]),
        ((1, 3), (3,), lambda g: g[0]),
    ],
)
def test_unbroadcast(device, grad_shape, shape, expected):
    values = np.random.default_rng(0).standard_normal(grad_shape)
    reduced = unbroadcast(device.xp.asarray(values), shape)
    assert reduced.shape == shape
    np.testing.assert_allclose(host(reduced), expected(values), rtol=1e-12)


def test_unbroadcast_returns_the_same_array_when_shapes_agree(device):
    values = device.xp.ones((2, 3))
    assert unbroadcast(values, (2, 3)) is values


@given(data=st.data())
def test_broadcast_then_unbroadcast_sums_the_copies(device, data):
    (shape, _), result_shape = data.draw(broadcastable_shapes(2))
    values = np.ones(result_shape)
    reduced = host(unbroadcast(device.xp.asarray(values), shape))
    assert reduced.shape == shape
    copies = int(np.prod(result_shape)) // int(np.prod(shape))  # sides are >= 1
    np.testing.assert_array_equal(reduced, np.full(shape, copies))
