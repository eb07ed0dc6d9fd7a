"""The training loop on tiny synthetic problems: it learns, evaluates, logs JSON lines, writes a
checkpoint per epoch and resumes from it, serves an MAE-style model whose forward returns the loss,
and stops on a non-finite loss naming the step while keeping the last good checkpoint."""

import math

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import nn
from scratchvit import ops as F
from scratchvit.io import CheckpointError, read_checkpoint, save_checkpoint
from scratchvit.train import (
    AdamW,
    CosineSchedule,
    NonFiniteLossError,
    classification_loss,
    evaluate,
    fit,
    masked_autoencoder_loss,
    read_metrics,
)

CENTERS = np.array([[4.0, 0.0], [-2.0, 3.5], [-2.0, -3.5]], np.float32)


def blobs(count: int, seed: int):
    """Three well separated Gaussian blobs in 2-D: a linearly separable 3-class problem."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    features = CENTERS[labels] + 0.5 * rng.standard_normal((count, 2)).astype(np.float32)
    return features.astype(np.float32), labels.astype(np.int64)


class ArrayLoader:
    """Batches (features Tensor (B, F), labels (B,) int64), shuffled by (seed, epoch), like
    scratchvit.data.DataLoader: each iteration is the next epoch, set_epoch(k) replays epoch k."""

    def __init__(self, features, labels, batch_size: int, shuffle: bool = True, seed: int = 0):
        self.features, self.labels = features, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch = 0
        self.epochs_set = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_set.append(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        order = np.arange(len(self.labels))
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(order)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield sv.Tensor(self.features[index]), self.labels[index]


class SmallNet(nn.Module):
    def __init__(self, hidden: int = 16, drop: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x):
        """x: (B, 2) -> (B, 3)"""
        return self.head(self.drop(F.gelu(self.fc1(x))))


def setup(seed: int = 0, epochs: int = 4, batch_size: int = 32):
    """Model (initialised from `seed`), loaders, optimizer and schedule of the blobs problem."""
    sv.manual_seed(seed)
    model = SmallNet()
    train = ArrayLoader(*blobs(192, seed=1), batch_size=batch_size, seed=0)
    test = ArrayLoader(*blobs(96, seed=2), batch_size=48, shuffle=False)
    optimizer = AdamW(model.parameters(), lr=0.05, weight_decay=0.01)
    schedule = CosineSchedule(0.05, total_steps=epochs * len(train), warmup_steps=len(train))
    return model, train, test, optimizer, schedule


def test_fit_learns_a_linearly_separable_problem(tmp_path):
    model, train, test, optimizer, schedule = setup(epochs=4)
    history = fit(model, train, optimizer, epochs=4, eval_loader=test, schedule=schedule, progress=False)
    assert [record["epoch"] for record in history] == [0, 1, 2, 3]
    assert history[-1]["eval_acc1"] == 100.0 and history[-1]["eval_acc5"] == 100.0
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["step"] == 4 * len(train) and schedule.step_count == 4 * len(train)
    assert train.epochs_set == [0, 1, 2, 3]
    assert all(record["time"] > 0 and record["images_per_s"] > 0 for record in history)


def test_evaluate_runs_in_eval_mode_without_a_graph_and_restores_the_mode():
    model, _, test, _, _ = setup()
    seen = []
    model.drop.register_forward_hook(
        lambda module, inputs, output: seen.append((module.training, output.requires_grad))
    )
    results = evaluate(model, test, topk=(1, 2))
    assert set(results) == {"loss", "acc1", "acc2"}
    assert seen and all(mode == (False, False) for mode in seen)
    assert model.training and all(parameter.grad is None for parameter in model.parameters())


def test_label_smoothing_reaches_cross_entropy():
    model, train, _, optimizer, _ = setup()
    images, labels = next(iter(train))
    loss, logits = classification_loss(label_smoothing=0.3)(model, (images, labels))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.3).item())
    # with label_smoothing 1 the target is uniform over 3 classes, and its cross-entropy is >= log 3
    history = fit(model, train, optimizer, epochs=1, label_smoothing=1.0, progress=False)
    assert history[0]["train_loss"] >= math.log(3) - 1e-6


def test_metrics_file_has_step_and_epoch_lines(tmp_path):
    model, train, test, optimizer, schedule = setup(epochs=2)
    path = tmp_path / "metrics.jsonl"
    history = fit(
        model,
        train,
        optimizer,
        epochs=2,
        eval_loader=test,
        schedule=schedule,
        clip_grad=1.0,
        metrics=path,
        log_interval=2,
        progress=False,
    )
    records = read_metrics(path)
    steps = [record for record in records if record["kind"] == "step"]
    epochs = [record for record in records if record["kind"] == "epoch"]
    assert [record["step"] for record in steps] == [0, 2, 4, 6, 8, 10]
    assert all(record["grad_norm"] >= 0 and record["lr"] >= 0 and math.isfinite(record["loss"]) for record in steps)
    assert [{key: value for key, value in record.items() if key != "kind"} for record in epochs] == history


def test_fit_checkpoints_every_epoch_and_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "run" / "last.npz"
    model, train, test, optimizer, schedule = setup(epochs=3)
    straight = fit(model, train, optimizer, epochs=3, eval_loader=test, schedule=schedule, progress=False)

    model_a, train_a, test_a, optimizer_a, schedule_a = setup(epochs=3)
    first = fit(
        model_a,
        train_a,
        optimizer_a,
        epochs=2,
        eval_loader=test_a,
        schedule=schedule_a,
        checkpoint=path,
        progress=False,
    )
    stored = read_checkpoint(path)
    assert stored.epoch == 1 and stored.step == 2 * len(train_a) and stored.extra["history"] == first

    model_b, train_b, test_b, optimizer_b, schedule_b = setup(seed=99, epochs=3)  # other weights and RNG state
    resumed = fit(
        model_b,
        train_b,
        optimizer_b,
        epochs=3,
        eval_loader=test_b,
        schedule=schedule_b,
        checkpoint=path,
        resume=path,
        progress=False,
    )
    assert train_b.epochs_set == [2]
    assert resumed[:2] == first and len(resumed) == 3
    assert schedule_b.step_count == 3 * len(train_b)
    for (name, a), (_, b) in zip(model.named_parameters(), model_b.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert resumed[2]["eval_acc1"] == straight[2]["eval_acc1"]
    assert resumed[2]["train_loss"] == straight[2]["train_loss"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["last-prev.npz", "last.npz"]  # no temporary files


def nan_loss_at(step_to_fail: int):
    """classification_loss, except that the loss of call number step_to_fail is NaN."""
    calls = [0]
    base = classification_loss()

    def loss_fn(model, batch):
        loss, logits = base(model, batch)
        if calls[0] == step_to_fail:
            loss = loss * float("nan")
        calls[0] += 1
        return loss, logits

    return loss_fn


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "last.npz"
    model, train, _, optimizer, schedule = setup(epochs=3)
    steps_per_epoch = len(train)  # 6
    fail_at = steps_per_epoch + 2  # epoch 1, batch 2
    with pytest.raises(NonFiniteLossError, match=f"the loss is nan at step {fail_at} \\(epoch 1, batch 2\\)") as caught:
        fit(
            model,
            train,
            optimizer,
            epochs=3,
            loss_fn=nan_loss_at(fail_at),
            schedule=schedule,
            checkpoint=path,
            progress=False,
        )
    assert caught.value.step == fail_at and caught.value.epoch == 1
    assert isinstance(caught.value, RuntimeError)
    assert f"the last good checkpoint is {path} (epoch 0)" in str(caught.value)
    kept = read_checkpoint(path)
    assert kept.epoch == 0 and kept.step == steps_per_epoch
    assert all(np.isfinite(parameter.data).all() for parameter in model.parameters())  # no NaN update was made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_non_finite_loss_before_any_checkpoint_says_so():
    model, train, _, optimizer, _ = setup()
    with pytest.raises(NonFiniteLossError, match="step 0 .*no checkpoint was written yet"):
        fit(model, train, optimizer, epochs=1, loss_fn=nan_loss_at(0), progress=False)


class TinyAutoencoder(nn.Module):
    """Stands in for MAE: forward(images, mask_ratio) returns (loss, pred, mask)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(2, 2)
        self.decoder = nn.Linear(2, 2)
        self.mask_ratios = []

    def forward(self, x, mask_ratio=0.75):
        self.mask_ratios.append(mask_ratio)
        prediction = self.decoder(self.encoder(x))
        return F.mse_loss(prediction, x), prediction, None


def test_the_same_loop_pretrains_a_model_whose_forward_returns_the_loss():
    sv.manual_seed(0)
    model = TinyAutoencoder()
    train = ArrayLoader(*blobs(128, seed=3), batch_size=32)
    test = ArrayLoader(*blobs(64, seed=4), batch_size=32, shuffle=False)
    optimizer = AdamW(model.parameters(), lr=0.1, weight_decay=0.0)
    history = fit(
        model, train, optimizer, epochs=6, eval_loader=test, loss_fn=masked_autoencoder_loss(0.5), progress=False
    )
    assert set(model.mask_ratios) == {0.5}
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert "train_acc1" not in history[0] and "eval_acc1" not in history[0] and "eval_loss" in history[0]


def test_progress_prints_a_line_per_epoch(capsys):
    model, train, _, optimizer, _ = setup()
    fit(model, train, optimizer, epochs=2, progress=True)
    output = capsys.readouterr().out
    assert "epoch 0 " in output and "epoch 1 " in output and "train_loss" in output


def test_resume_needs_a_checkpoint_written_by_fit(tmp_path):
    model, train, _, optimizer, _ = setup()
    path = save_checkpoint(tmp_path / "weights.npz", model, optimizer)
    with pytest.raises(CheckpointError, match="holds no epoch and step to resume from"):
        fit(model, train, optimizer, epochs=2, resume=path, progress=False)


def test_a_loss_fn_must_return_a_pair():
    model, train, _, optimizer, _ = setup()
    with pytest.raises(TypeError, match="loss_fn must return"):
        fit(model, train, optimizer, epochs=1, loss_fn=lambda model, batch: model(batch[0]).sum(), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, train, optimizer, epochs=0)
