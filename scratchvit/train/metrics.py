"""Training metrics: top-k accuracy, a running average, and a JSON-lines log writer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import backend
from ..autograd import Tensor


def accuracy(logits, labels, topk=(1,)) -> list:
    """Top-k accuracy in percent, one value per k, as timm's `accuracy`.

    logits: (B, K) scores; labels: (B,) class indices. A sample counts as correct for k when fewer
    than k classes score strictly higher than its true class (ties go in its favour); k larger
    than K counts every sample as correct, as timm clamps k to K.
    """
    logits = backend.to_numpy(logits.data if isinstance(logits, Tensor) else logits)
    labels = backend.to_numpy(labels.data if isinstance(labels, Tensor) else labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"accuracy needs logits (B, K) and labels (B,), got {logits.shape} and {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"accuracy: labels must be integer class indices, got dtype {labels.dtype}")
    if not all(isinstance(k, int) and k >= 1 for k in topk):
        raise ValueError(f"topk must hold positive ints, got {topk!r}")
    batch = len(labels)
    if batch == 0:
        return [0.0 for _ in topk]
    true_scores = logits[np.arange(batch), labels]
    rank = (logits > true_scores[:, None]).sum(axis=1)  # 0 for the top class
    return [100.0 * float((rank < k).mean()) for k in topk]


class AverageMeter:
    """A running average of a quantity: update(value, n) adds n samples of mean `value`."""

    def __init__(self):
        self.value = 0.0  # the last value given
        self.sum = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.value = float(value)
        self.sum += float(value) * n
        self.count += n

    @property
    def average(self) -> float:
        return self.sum / self.count if self.count else 0.0


def _jsonable(value):
    """Python numbers for NumPy scalars and 0-d arrays; None for NaN and infinities (strict JSON)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """Append one JSON object per line to a file (JSON Lines), flushed after every line, so a
    crashed run keeps what it logged and `tail -f` shows it live.

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
        self._file.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
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
