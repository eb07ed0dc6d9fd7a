"""Training metrics: top-k accuracy, a running average, and a JSON-lines log writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .. import backend
from ..autograd import Tensor


def accuracy(logits, labels, topk=(1,)) -> list:
    """Top-k accuracy in percent, one value per k, counted with the logits' own array module.

    logits: (B, K) scores; labels: (B,) class indices in [0, K). The top k of a sample are the
    first k of its classes ordered as argmax picks them: by score, a tie going to the lower class
    index, and NaN above every number (as np.argmax takes the first NaN). So constant logits put
    class 0 first, a NaN score never counts as correct, and top-1 is exactly
    `argmax(logits) == labels`. k larger than K counts every sample with a finite true score, as
    timm clamps k to K.

    Returns one 0-d array per k of the logits' array module: on the CPU a NumPy float64 (a Python
    float), on a GPU a device scalar, so that counting never waits for the device. Labels given as
    a NumPy array are checked on the host; labels on the device are checked there, and a failure
    raises with the next value read to the host (backend.check_on_device).
    """
    logits = logits.data if isinstance(logits, Tensor) else logits
    xp = backend.xp_of(logits)
    labels = labels.data if isinstance(labels, Tensor) else labels
    if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"accuracy needs logits (B, K) and labels (B,), got {logits.shape} and {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"accuracy: labels must be integer class indices, got dtype {labels.dtype}")
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk):
        raise ValueError(f"topk must hold positive ints, got {topk!r}")
    batch, classes = logits.shape
    if batch == 0:
        return [xp.zeros((), xp.float64)[()] for _ in topk]
    expected = f"accuracy: labels must be class indices in [0, {classes})"
    if backend.backend_name(labels) == "numpy":
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(f"{expected}, got {labels.min()}..{labels.max()}")
        labels = backend.to_device(labels, backend.device_of(logits))
    else:  # checked on the device, raised with the next value read to the host; meanwhile a
        # label out of range is read as class 0, as the GPU would otherwise read out of bounds
        in_range = (labels >= 0) & (labels < classes)
        backend.check_on_device(in_range.all(), expected)
        labels = xp.where(in_range, labels, 0)
    true_scores = logits[xp.arange(batch), labels][:, None]  # (B, 1)
    is_nan = xp.isnan(logits)
    earlier = xp.arange(classes)[None, :] < labels[:, None]  # (B, K): classes that win a tie
    ahead = (logits > true_scores) | ((logits == true_scores) & earlier) | (is_nan & ~xp.isnan(true_scores))
    rank = ahead.sum(axis=1)  # (B,) classes argmax would take before the true one; 0 for the top
    finite_true = ~xp.isnan(true_scores[:, 0])
    return [100.0 * ((rank < k) & finite_true).mean(dtype=xp.float64) for k in topk]


class AverageMeter:
    """A running average of a quantity: update(value, n) adds n samples of mean `value`.

    A value on a GPU (a 0-d array) is summed there, so updating never waits for the device;
    `average` reads the sum to the host."""

    def __init__(self):
        self.sum = 0.0
        self.count = 0

    def update(self, value, n: int = 1) -> None:
        self.sum = self.sum + value * n
        self.count += n

    @property
    def average(self) -> float:
        return backend.read_scalar(self.sum) / self.count if self.count else 0.0


def json_compatible(value):
    """`value` as strict JSON takes it: Python numbers for NumPy scalars and 0-d arrays (CuPy's
    too), lists for tuples, str keys, and None (null) for NaN and infinities, which JSON lacks."""
    if isinstance(value, dict):
        return {str(key): json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_compatible(item) for item in value]
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """Append one JSON object per line to a file (JSON Lines), flushed after every line, so a
    crashed run keeps what it logged and `tail -f` shows it live. Every line is strict JSON:
    NaN and infinities are written as null (json_compatible).

    >>> with MetricsWriter("runs/metrics.jsonl") as log:
    ...     log.write({"epoch": 0, "train_loss": 1.23})
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, record: dict) -> None:
        if not isinstance(record, dict):
            raise TypeError(f"MetricsWriter.write takes a dict, got {type(record).__name__}")
        self._file.write(json.dumps(json_compatible(record), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def read_metrics(path) -> list:
    """The records of a JSON Lines file, in order."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
