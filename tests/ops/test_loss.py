"""cross_entropy (integer and soft targets, label smoothing, reductions) and mse_loss against
their compositions from primitives, forward and backward; huge logits; argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import assert_same_value_and_grads, host, leaf, seeds

from scratchvit import ops as F


def log_softmax_reference(x):
    return F.sub(x, F.log(F.sum(F.exp(x), axis=-1, keepdims=True)))


def cross_entropy_reference(logits, q, reduction="mean"):
    """-(q * log_softmax(logits)).sum(-1), then the reduction; q the (smoothed) target distribution."""
    per_sample = F.neg(F.sum(F.mul(q, log_softmax_reference(logits)), axis=-1))
    if reduction == "none":
        return per_sample
    return F.mean(per_sample) if reduction == "mean" else F.sum(per_sample)


@given(
    batch=st.integers(1, 4),
    classes=st.integers(2, 5),
    soft=st.booleans(),
    smoothing=st.sampled_from([0.0, 0.1, 0.3]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=seeds,
)
def test_cross_entropy_equals_its_composition(device, batch, classes, soft, smoothing, reduction, seed):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((batch, classes))
    if soft:
        target = rng.dirichlet(np.ones(classes), batch)
        q = target
    else:
        target = rng.integers(0, classes, batch)
        q = np.eye(classes)[target]
    q = (1 - smoothing) * q + smoothing / classes
    target_on_device, q_on_device = device.xp.asarray(target), device.xp.asarray(q)
    assert_same_value_and_grads(
        lambda x: F.cross_entropy(x, target_on_device, label_smoothing=smoothing, reduction=reduction),
        lambda x: cross_entropy_reference(x, q_on_device, reduction),
        [logits],
        device,
        seed=seed % 1000,
    )


def test_cross_entropy_known_value(device):
    logits = leaf([[0.0, 0.0], [np.log(3.0), 0.0]], device)
    loss = F.cross_entropy(logits, device.xp.asarray([1, 0]))
    np.testing.assert_allclose(loss.item(), (np.log(2.0) + np.log(4 / 3)) / 2)
    loss.backward()
    # d/d logits = (softmax - onehot) / B
    np.testing.assert_allclose(host(logits.grad), [[0.25, -0.25], [-0.125, 0.125]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_with_huge_logits_is_finite(device, dtype):
    logits = leaf([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]], device, dtype=dtype)
    loss = F.cross_entropy(logits, device.xp.asarray([0, 0]), label_smoothing=0.1)
    assert loss.dtype == dtype and np.isfinite(loss.item())
    loss.backward()
    assert logits.grad.dtype == dtype and np.all(np.isfinite(host(logits.grad)))
    right = F.cross_entropy(leaf([[1e4, -1e4]], device, dtype=dtype), device.xp.asarray([0]))
    wrong = F.cross_entropy(leaf([[1e4, -1e4]], device, dtype=dtype), device.xp.asarray([1]))
    assert right.item() == 0.0 and wrong.item() == 2e4


@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4)),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=seeds,
)
def test_mse_loss_equals_its_composition(device, shape, reduction, seed):
    rng = np.random.default_rng(seed)

    def reference(prediction, target):
        difference = F.sub(prediction, target)
        squared = F.mul(difference, difference)
        return squared if reduction == "none" else F.mean(squared) if reduction == "mean" else F.sum(squared)

    assert_same_value_and_grads(
        lambda p, t: F.mse_loss(p, t, reduction),
        reference,
        [rng.standard_normal(shape), rng.standard_normal(shape)],
        device,
        seed=seed % 1000,
    )


def test_loss_errors_name_the_argument(device):
    logits = leaf(np.zeros((3, 4)), device)
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 4\), got 0\.\.7"):
        F.cross_entropy(logits, np.array([0, 7, 1]))  # host labels: checked at once
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 4\), got -1\.\.2"):
        F.cross_entropy(logits, np.array([-1, 2, 1]))
    for labels in ([0, 7, 1], [-1, 2, 1]):  # labels on the device: checked there, raised at the next read
        with pytest.raises(ValueError, match=r"target classes must be in \[0, 4\)"):
            F.cross_entropy(logits, device.xp.asarray(labels)).item()
    with pytest.raises(ValueError, match=r"integer target must have shape \(3,\), got \(2,\)"):
        F.cross_entropy(logits, device.xp.asarray([0, 1]))
    with pytest.raises(ValueError, match=r"soft target must have shape \(3, 4\), got \(3, 3\)"):
        F.cross_entropy(logits, device.xp.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match=r"logits must be \(B, K\), got shape \(12,\)"):
        F.cross_entropy(leaf(np.zeros(12), device), device.xp.asarray([0]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(logits, device.xp.asarray([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, device.xp.asarray([0, 1, 2]), reduction="avg")
    with pytest.raises(TypeError, match="target must hold integers or probabilities"):
        F.cross_entropy(logits, device.xp.asarray([True, False, True]))
    with pytest.raises(ValueError, match=r"mse_loss: prediction has shape \(3, 4\) but target has \(4, 3\)"):
        F.mse_loss(logits, leaf(np.zeros((4, 3)), device))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(logits, logits, reduction="max")
