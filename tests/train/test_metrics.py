"""Top-k accuracy, the running average, and the JSON-lines writer."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit.train import AverageMeter, MetricsWriter, accuracy, read_metrics


def test_accuracy_on_a_worked_example():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]], np.float32)
    labels = np.array([1, 1, 0, 2])
    # sample 0: right; sample 1: second; sample 2: third; sample 3: third
    assert accuracy(logits, labels, topk=(1, 2, 3)) == [25.0, 50.0, 100.0]


def test_accuracy_takes_tensors_and_clamps_k_to_the_classes():
    logits = sv.Tensor(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    assert accuracy(logits, np.array([1, 1]), topk=(1, 5)) == [50.0, 100.0]


def test_ties_count_in_the_samples_favour():
    assert accuracy(np.zeros((3, 4), np.float32), np.array([0, 1, 3])) == [100.0]


@given(seed=st.integers(0, 2**16), batch=st.integers(1, 12), classes=st.integers(1, 8), k=st.integers(1, 9))
def test_accuracy_matches_a_sort_based_reference(seed, batch, classes, k):
    rng = np.random.default_rng(seed)
    logits = rng.permuted(np.tile(np.arange(classes, dtype=np.float32), (batch, 1)), axis=1)  # distinct scores
    labels = rng.integers(0, classes, batch)
    top = np.argsort(-logits, axis=1)[:, :k]
    expected = 100.0 * float((top == labels[:, None]).any(axis=1).mean())
    assert accuracy(logits, labels, topk=(k,)) == [pytest.approx(expected)]


def test_accuracy_rejects_bad_shapes_and_labels():
    with pytest.raises(ValueError, match="logits \\(B, K\\) and labels \\(B,\\)"):
        accuracy(np.zeros((2, 3)), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="integer"):
        accuracy(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="topk"):
        accuracy(np.zeros((2, 3)), np.zeros(2, np.int64), topk=(0,))


def test_average_meter_weights_by_count():
    meter = AverageMeter()
    assert meter.average == 0.0
    meter.update(1.0, n=3)
    meter.update(3.0, n=1)
    assert meter.average == 1.5 and meter.count == 4 and meter.value == 3.0


def test_metrics_writer_writes_one_parsable_line_per_record_flushed(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"epoch": 0, "loss": np.float32(0.5), "acc": np.array(99.0), "bad": float("nan"), "inf": math.inf})
    writer.write({"epoch": 1, "nested": {"lr": [np.float64(1e-3)]}})
    lines = path.read_text().splitlines()  # readable before close: every line is flushed
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"epoch": 0, "loss": 0.5, "acc": 99.0, "bad": None, "inf": None}
    assert json.loads(lines[1]) == {"epoch": 1, "nested": {"lr": [1e-3]}}
    writer.close()
    with MetricsWriter(path) as again:  # appends, as a resumed run does
        again.write({"epoch": 2})
    assert [record["epoch"] for record in read_metrics(path)] == [0, 1, 2]
    with MetricsWriter(path) as again, pytest.raises(TypeError, match="dict"):
        again.write([1, 2])
