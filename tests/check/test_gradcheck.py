"""sv.gradcheck itself: it must catch wrong backwards (a sign error, a missing term, a zero
gradient that an all-ones upstream gradient would hide), name where and by how much, refuse
float32, and pass a correct op with a tiny error. On private toy Functions (toy_functions.py),
never an op of scratchvit.ops, so a course copy with an op blanked still tests the tool."""

from __future__ import annotations

import re

import numpy as np
import pytest
from strategies import host, leaf
from toy_functions import (
    MulForgetsB,
    SoftmaxMissingTerm,
    SoftmaxZeroBackward,
    SquareWithSignError,
    toy_scale_shift,
    toy_softmax,
    toy_square,
)

import scratchvit as sv


def _parse(message: str) -> tuple:
    match = re.search(r"input (\d+) .* at index \(([\d, ]*)\): analytic (\S+), numeric (\S+)", message)
    assert match, message
    index = tuple(int(i) for i in match.group(2).split(",") if i.strip())
    return int(match.group(1)), index, float(match.group(3)), float(match.group(4))


def test_a_sign_error_is_caught_with_index_and_both_values(device):
    values = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])
    x = leaf(values, device)
    with pytest.raises(sv.GradcheckError) as caught:
        sv.gradcheck(SquareWithSignError.apply, (x,), seed=3)
    position, index, analytic, numeric = _parse(str(caught.value))
    upstream = np.random.default_rng(3).standard_normal(values.shape)  # what gradcheck draws
    true_gradient = 2 * values * upstream
    assert position == 0
    assert index == np.unravel_index(np.argmax(np.abs(true_gradient)), values.shape)  # worst = largest |4 x r|
    assert analytic == pytest.approx(-true_gradient[index], rel=1e-9)
    assert numeric == pytest.approx(true_gradient[index], rel=1e-6)
    assert "shape (2, 3)" in str(caught.value)


def test_a_softmax_backward_missing_its_sum_term_is_caught(device):
    x = leaf(np.random.default_rng(0).standard_normal((2, 4)), device)
    with pytest.raises(sv.GradcheckError, match=r"gradient of input 0 \(shape \(2, 4\)\) is wrong at index") as caught:
        sv.gradcheck(SoftmaxMissingTerm.apply, (x,))
    _, index, analytic, numeric = _parse(str(caught.value))
    assert len(index) == 2 and abs(analytic - numeric) > 1e-3
    sv.gradcheck(toy_softmax, (leaf(host(x), device),))  # the right softmax passes on the same input


def test_a_zero_backward_hidden_by_an_all_ones_upstream_is_caught(device):
    values = np.random.default_rng(1).standard_normal((3, 4))
    # with an all-ones upstream gradient (that of f(x).sum()) the true softmax gradient is zero,
    # so the zero backward would look right
    x = leaf(values, device)
    SoftmaxZeroBackward.apply(x).backward(np.ones(values.shape))
    reference = leaf(values, device)
    toy_softmax(reference).backward(np.ones(values.shape))
    np.testing.assert_allclose(host(x.grad), host(reference.grad), atol=1e-12)
    # gradcheck's random upstream gradient exposes it
    with pytest.raises(sv.GradcheckError):
        sv.gradcheck(SoftmaxZeroBackward.apply, (leaf(values, device),))


def test_a_wrong_gradient_for_the_second_input_names_input_1(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, -1.0], device)
    with pytest.raises(sv.GradcheckError, match=r"gradient of input 1 \(shape \(2,\)\)"):
        sv.gradcheck(MulForgetsB.apply, (a, b))


def test_refuses_float32_inputs(device):
    x = leaf([1.0, 2.0], device, dtype=np.float32)
    with pytest.raises(TypeError, match="input 0 has dtype float32; finite differences need float64"):
        sv.gradcheck(toy_square, (x,))


def test_needs_an_input_that_requires_grad_and_a_tensor_output(device):
    with pytest.raises(ValueError, match="no input tensor has requires_grad=True"):
        sv.gradcheck(toy_square, (leaf([1.0], device, requires_grad=False),))
    with pytest.raises(TypeError, match="fn must return a Tensor, got list"):
        sv.gradcheck(lambda x: [x], (leaf([1.0], device),))


def test_a_correct_op_passes_with_a_tiny_error_and_inputs_unchanged(device):
    values = np.random.default_rng(2).standard_normal((3, 5))
    x, weight, bias = leaf(values, device), leaf(np.ones(5) * 1.5, device), leaf(np.arange(5.0), device)
    error = sv.gradcheck(toy_scale_shift, (x, weight, bias, 0.25))  # non-tensor arguments pass through
    assert 0 <= error < 1e-6
    np.testing.assert_array_equal(host(x), values)  # perturbations undone
    assert x.grad is not None and x.grad.shape == (3, 5)


def test_a_deliberately_loose_tolerance_lets_a_wrong_gradient_through(device):
    """The tolerance is what decides: the check is not vacuous at the default one."""
    x = leaf([0.001, -0.002], device)
    with pytest.raises(sv.GradcheckError):
        sv.gradcheck(SquareWithSignError.apply, (x,))
    error = sv.gradcheck(SquareWithSignError.apply, (leaf([0.001, -0.002], device),), atol=1.0)
    assert error == pytest.approx(2.0, rel=1e-3)  # analytic = -numeric: |a - n| / |n| = 2
