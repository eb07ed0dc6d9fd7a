"""Losses: cross-entropy for classification (with label smoothing, Szegedy et al. 2016, Sec. 7,
as in the ViT/DeiT training recipes) and mean squared error (MAE's pixel loss, He et al. 2022,
Sec. 3 "Reconstruction target")."""

from __future__ import annotations

from ..autograd import Function, Tensor
from ..backend import xp_of

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    def forward(self, logits, target_probs, reduction):
        """logits: (B, K), target_probs: (B, K) rows summing to 1 -> (B,) or a scalar"""
        xp = xp_of(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        self.probs = xp.exp(log_probs)
        self.target_probs, self.reduction = target_probs, reduction
        per_sample = -(target_probs * log_probs).sum(axis=-1)
        if reduction == "none":
            return per_sample
        return per_sample.mean() if reduction == "mean" else per_sample.sum()

    def backward(self, grad):
        # d logits = (softmax(logits) - q) * g   (/ B for the mean)
        grad_logits = self.probs - self.target_probs
        if self.reduction == "none":
            grad_logits *= grad[:, None]
        elif self.reduction == "mean":
            grad_logits *= grad / len(grad_logits)
        else:
            grad_logits *= grad
        return grad_logits


class MSELoss(Function):
    def forward(self, prediction, target, reduction):
        self.difference = prediction - target
        self.reduction = reduction
        squared = self.difference * self.difference
        if reduction == "none":
            return squared
        return squared.mean() if reduction == "mean" else squared.sum()

    def backward(self, grad):
        # d prediction = 2 (prediction - target) * g (/ n for the mean), d target = its negative
        grad_prediction = self.difference * 2
        if self.reduction == "mean":
            grad_prediction *= grad / self.difference.size
        else:
            grad_prediction *= grad
        return grad_prediction, -grad_prediction


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
    xp = xp_of(logits.data if isinstance(logits, Tensor) else logits)
    target = target.data if isinstance(target, Tensor) else xp.asarray(target)
    batch, classes = logits.shape
    if target.dtype.kind in "iu":
        if target.shape != (batch,):
            raise ValueError(f"cross_entropy: integer target must have shape ({batch},), got {target.shape}")
        if target.size and (int(target.min()) < 0 or int(target.max()) >= classes):
            raise ValueError(
                f"cross_entropy: target classes must be in [0, {classes}), got {int(target.min())}..{int(target.max())}"
            )
        target_probs = xp.zeros((batch, classes), dtype=logits.dtype)
        target_probs[xp.arange(batch), target] = 1
    elif target.dtype.kind == "f":
        if target.shape != (batch, classes):
            raise ValueError(f"cross_entropy: soft target must have shape {(batch, classes)}, got {target.shape}")
        target_probs = target.astype(logits.dtype)
    else:
        raise TypeError(f"cross_entropy: target must hold integers or probabilities, got dtype {target.dtype}")
    if label_smoothing:
        target_probs = target_probs * (1 - label_smoothing) + label_smoothing / classes
    return CrossEntropy.apply(logits, target_probs=target_probs, reduction=reduction)


def mse_loss(prediction, target, reduction: str = "mean") -> Tensor:
    """(prediction - target)^2, averaged ('mean'), summed ('sum') or per element ('none')."""
    _check_reduction(reduction)
    if prediction.shape != target.shape:
        raise ValueError(f"mse_loss: prediction has shape {prediction.shape} but target has {target.shape}")
    return MSELoss.apply(prediction, target, reduction=reduction)
