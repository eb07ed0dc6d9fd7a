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


def test_ties_resolve_as_argmax_does_so_constant_logits_score_one_class():
    # A head of zeros scores every class alike: argmax picks class 0, so only its samples are right.
    assert accuracy(np.zeros((4, 4), np.float32), np.array([0, 1, 3, 0]), topk=(1, 2, 4)) == [50.0, 75.0, 100.0]
    logits = np.array([[1.0, 2.0, 2.0], [2.0, 2.0, 0.0]], np.float32)
    assert (logits.argmax(axis=1) == [1, 0]).all()
    assert accuracy(logits, np.array([2, 1]), topk=(1, 2)) == [0.0, 100.0]
    assert accuracy(logits, np.array([1, 0])) == [100.0]


def test_nan_never_counts_as_correct_and_ranks_first_as_in_argmax():
    nan = float("nan")
    assert accuracy(np.full((3, 5), nan, np.float32), np.array([0, 2, 4]), topk=(1, 5)) == [0.0, 0.0]
    logits = np.array([[nan, 1.0, 0.0], [0.0, 3.0, 1.0]], np.float32)
    # sample 0: argmax takes the NaN (class 0) first, so its true class 1 is second
    assert accuracy(logits, np.array([1, 1]), topk=(1, 2)) == [50.0, 100.0]
    assert accuracy(logits, np.array([0, 1]), topk=(3,)) == [50.0]  # a NaN true score is never right


@given(seed=st.integers(0, 2**16), batch=st.integers(1, 10), classes=st.integers(1, 6), k=st.integers(1, 7))
def test_top_1_is_argmax_and_top_k_a_stable_sort_even_with_ties_and_nan(seed, batch, classes, k):
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 3, (batch, classes)).astype(np.float32)  # many ties
    logits[rng.random((batch, classes)) < 0.1] = np.nan
    labels = rng.integers(0, classes, batch)
    finite_truth = ~np.isnan(logits[np.arange(batch), labels])  # argmax may pick a NaN; it is never right
    top_1 = (logits.argmax(axis=1) == labels) & finite_truth
    assert accuracy(logits, labels) == [pytest.approx(100.0 * float(top_1.mean()))]
    order = np.argsort(-np.nan_to_num(logits, nan=np.inf), axis=1, kind="stable")[:, :k]
    right = (order == labels[:, None]).any(axis=1) & finite_truth
    assert accuracy(logits, labels, topk=(k,)) == [pytest.approx(100.0 * float(right.mean()))]


def test_accuracy_is_counted_with_the_logits_array_module():
    value = accuracy(np.eye(3, dtype=np.float32), np.arange(3))[0]
    assert isinstance(value, np.float64) and value == 100.0


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
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), got 0\.\.3"):
        accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"in \[0, 3\), got -1\.\.1"):
        accuracy(np.zeros((2, 3)), np.array([-1, 1]))


def test_average_meter_weights_by_count():
    meter = AverageMeter()
    assert meter.average == 0.0
    meter.update(1.0, n=3)
    meter.update(3.0, n=1)
    assert meter.average == 1.5 and meter.count == 4


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
