"""Training: optimizers, learning-rate schedules, metrics and the training loop."""

from .loop import NonFiniteLossError, classification_loss, evaluate, fit, masked_autoencoder_loss, train_one_epoch
from .metrics import AverageMeter, MetricsWriter, accuracy, read_metrics
from .optim import SGD, AdamW, Optimizer, clip_grad_norm_, param_groups_layer_decay, param_groups_weight_decay
from .schedule import ConstantSchedule, CosineSchedule, OneCycleSchedule, Schedule

__all__ = [
    "SGD",
    "AdamW",
    "AverageMeter",
    "ConstantSchedule",
    "CosineSchedule",
    "MetricsWriter",
    "NonFiniteLossError",
    "OneCycleSchedule",
    "Optimizer",
    "Schedule",
    "accuracy",
    "classification_loss",
    "clip_grad_norm_",
    "evaluate",
    "fit",
    "masked_autoencoder_loss",
    "param_groups_layer_decay",
    "param_groups_weight_decay",
    "read_metrics",
    "train_one_epoch",
]
