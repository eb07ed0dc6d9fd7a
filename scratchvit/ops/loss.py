"""Losses: cross-entropy for classification (with label smoothing, Szegedy et al. 2016, Sec. 7,
as in the ViT/DeiT training recipes) and mean squared error (MAE's pixel loss, He et al. 2022,
Sec. 3 "Reconstruction target")."""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import backend_name, check_on_device, device_of, on_device, to_device, xp_of

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """L = -sum_k q_k log p_k per sample, p = softmax(logits), q the target distribution
    (one-hot, soft, or label-smoothed as Szegedy et al. 2016, Sec. 7: q = (1 - eps) q + eps / K).
    logits, q: (B, K) -> (B,) with reduction "none", else a scalar (mean or sum over B).

    log p_k = z_k - log sum_j exp(z_j) is computed from z - max(z), so exp cannot overflow.

    Backward: d log p_k / d z_j = delta_kj - p_j, so
        dL/dz_j = -sum_k q_k (delta_kj - p_j) = p_j sum_k q_k - q_j = p_j - q_j   (rows of q sum to 1)
    => d logits = (p - q) * g per sample, with g / B for the mean.
    """

    def forward(self, logits, target_probs, reduction):
        """logits: (B, K), target_probs: (B, K) rows summing to 1 -> (B,) or a scalar"""
        # BEGIN SOLUTION 3.5 CrossEntropy.forward
        xp = xp_of(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        self.probs = xp.exp(log_probs)
        self.target_probs, self.reduction = target_probs, reduction
        per_sample = -(target_probs * log_probs).sum(axis=-1)
        if reduction == "none":
            return per_sample
        return per_sample.mean() if reduction == "mean" else per_sample.sum()
        # END SOLUTION 3.5

    def backward(self, grad):
        # BEGIN SOLUTION 3.5 CrossEntropy.backward
        # d logits = (softmax(logits) - q) * g   (/ B for the mean)
        if self.reduction == "none":
            grad = grad[:, None]  # (B,) -> (B, 1): one upstream gradient per sample's row
        elif self.reduction == "mean":
            grad = grad / len(self.probs)
        return (self.probs - self.target_probs) * grad
        # END SOLUTION 3.5


class MSELoss(Function):
    """L = (prediction - target)^2 per element, then the mean, the sum or each element
    ("none"); prediction, target: (...) -> a scalar, or (...) with "none". MAE's reconstruction
    loss (He et al. 2022, Sec. 3) is this per pixel, averaged over the masked patches.

    Backward: with d = prediction - target, dL/d prediction = 2 d and dL/d target = -2 d per element,
    and the mean divides by the n elements => d prediction = 2 d g (g / n for the mean),
    d target = -d prediction.
    """

    def forward(self, prediction, target, reduction):
        self.difference = prediction - target
        self.reduction = reduction
        squared = self.difference * self.difference
        if reduction == "none":
            return squared
        return squared.mean() if reduction == "mean" else squared.sum()

    def backward(self, grad):
        # BEGIN SOLUTION 3.5 MSELoss.backward
        # d prediction = 2 (prediction - target) * g (/ n for the mean), d target = its negative
        if self.reduction == "mean":
            grad = grad / self.difference.size
        grad_prediction = self.difference * 2 * grad
        return grad_prediction, -grad_prediction
        # END SOLUTION 3.5


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def cross_entropy(logits, target, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """-sum(q * log_softmax(logits)) per sample, q the (smoothed) target distribution.

    logits: (B, K). target: integer class indices (B,) or probabilities (B, K) (soft targets,
    e.g. mixup), constant. label_smoothing eps: q = (1 - eps) * q + eps / K.
    """
    _check_reduction(reduction)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (B, K), got shape {logits.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    data = logits.data if isinstance(logits, Tensor) else logits
    with on_device(device_of(data)):
        target_probs = _target_distribution(target, data, label_smoothing)
    return CrossEntropy.apply(logits, target_probs=target_probs, reduction=reduction)


def _target_distribution(target, logits, label_smoothing: float):
    """q: (B, K) in the logits' dtype and on their device. Integer classes become one-hot rows;
    a class outside [0, K) raises, at once for a NumPy target and, for a GPU target, with the next
    value read to the host (its row is NaN meanwhile, so nothing trains on it silently)."""
    xp = xp_of(logits)
    batch, classes = logits.shape
    target = target.data if isinstance(target, Tensor) else target
    if not hasattr(target, "dtype"):
        target = np.asarray(target)
    if target.dtype.kind in "iu":
        if target.shape != (batch,):
            raise ValueError(f"cross_entropy: integer target must have shape ({batch},), got {target.shape}")
        expected = f"cross_entropy: target classes must be in [0, {classes})"
        on_host = backend_name(target) == "numpy"
        if on_host and target.size and (target.min() < 0 or target.max() >= classes):
            raise ValueError(f"{expected}, got {target.min()}..{target.max()}")
        target = to_device(target, device_of(logits))  # a host target moves to the logits' device
        target_probs = (target[:, None] == xp.arange(classes)).astype(logits.dtype)
        if not on_host:
            in_range = (target >= 0) & (target < classes)
            check_on_device(in_range.all(), expected)
            target_probs = xp.where(in_range[:, None], target_probs, xp.full((), np.nan, dtype=logits.dtype))
    elif target.dtype.kind == "f":
        if target.shape != (batch, classes):
            raise ValueError(f"cross_entropy: soft target must have shape {(batch, classes)}, got {target.shape}")
        target_probs = to_device(target, device_of(logits)).astype(logits.dtype)
    else:
        raise TypeError(f"cross_entropy: target must hold integers or probabilities, got dtype {target.dtype}")
    if label_smoothing:
        target_probs = target_probs * (1 - label_smoothing) + label_smoothing / classes
    return target_probs


def mse_loss(prediction, target, reduction: str = "mean") -> Tensor:
    """(prediction - target)^2, averaged ('mean'), summed ('sum') or per element ('none')."""
    _check_reduction(reduction)
    if prediction.shape != target.shape:
        raise ValueError(f"mse_loss: prediction has shape {prediction.shape} but target has {target.shape}")
    return MSELoss.apply(prediction, target, reduction=reduction)
