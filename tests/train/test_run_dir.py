"""Nothing lost, nothing faked, in fit and its run folder: non-finite weights or optimizer state are
never saved, the previous checkpoint is kept until the new one is verified, a killed run's
leftovers (.partial files, metrics of unsaved epochs) are cleared on restart, a non-finite eval
loss is recorded as null, Ctrl-C names where it stopped, and a resume must match the run."""

import json

import numpy as np
import pytest
from test_loop import classification_loss, setup

from scratchvit.io import CheckpointError, read_checkpoint
from scratchvit.train import NonFiniteLossError, fit, read_metrics
from scratchvit.train.loop import TrainingInterrupted
from scratchvit.train.run_dir import (
    RunDirError,
    previous_checkpoint_path,
    save_verified_checkpoint,
    truncate_metrics,
    verify_checkpoint,
)


def poison_gradients_at(call_to_poison: int):
    """classification_loss whose loss stays finite but whose gradient is NaN at one call: the loss
    gains sqrt(sum(0 * head.weight)) = 0, whose derivative at 0 is infinite."""
    calls = [0]
    base = classification_loss()

    def loss_fn(model, batch):
        loss, logits = base(model, batch)
        if calls[0] == call_to_poison and model.training:
            loss = loss + (model.head.weight * 0.0).sum() ** 0.5
        calls[0] += 1
        return loss, logits

    return loss_fn


# the run diverges on purpose: NumPy's warnings of overflow and NaN are expected
@pytest.mark.filterwarnings("ignore:overflow|divide by zero|invalid value:RuntimeWarning")
def test_non_finite_weights_are_never_saved_over_the_last_finite_checkpoint(tmp_path):
    path = tmp_path / "last.npz"
    model, train, _, optimizer, schedule = setup(epochs=3)
    steps = len(train)
    with pytest.raises(NonFiniteLossError) as caught:
        fit(
            model,
            train,
            optimizer,
            epochs=3,
            loss_fn=poison_gradients_at(2 * steps - 1),
            checkpoint=path,
            progress=False,
        )
    message = str(caught.value)
    assert f"after step {2 * steps} (end of epoch 1)" in message and "model.head.weight" in message
    assert message.endswith(f"the last good checkpoint is {path} (epoch 0)")
    assert caught.value.step == 2 * steps and caught.value.epoch == 1
    assert read_checkpoint(path).epoch == 0
    verify_checkpoint(path)  # every array finite


def test_the_previous_checkpoint_is_kept_beside_the_new_one(tmp_path):
    path = tmp_path / "checkpoint.npz"
    model, train, _, optimizer, schedule = setup(epochs=2)
    fit(model, train, optimizer, epochs=2, schedule=schedule, checkpoint=path, progress=False)
    assert read_checkpoint(path).epoch == 1
    assert read_checkpoint(tmp_path / "checkpoint-prev.npz").epoch == 0
    assert previous_checkpoint_path(path) == tmp_path / "checkpoint-prev.npz"


def test_a_checkpoint_that_does_not_read_back_whole_is_replaced_by_the_previous_one(tmp_path, monkeypatch):
    from scratchvit.train import run_dir

    path = tmp_path / "checkpoint.npz"
    model, _, _, optimizer, _ = setup()
    save_verified_checkpoint(path, model, optimizer, epoch=0, step=1)

    def damaged_save(target, *args, **kwargs):  # renamed into place, as save_checkpoint does
        (tmp_path / "damaged").write_bytes(b"PK\x03\x04 cut short")
        (tmp_path / "damaged").replace(target)
        return target

    monkeypatch.setattr(run_dir, "save_checkpoint", damaged_save)
    with pytest.raises(CheckpointError, match="the previous one is back in place"):
        save_verified_checkpoint(path, model, optimizer, epoch=1, step=2)
    assert read_checkpoint(path).epoch == 0


def test_stale_partial_files_are_removed_when_a_run_starts(tmp_path):
    path = tmp_path / "checkpoint.npz"
    stale = [tmp_path / ".checkpoint.npz.x1y2.partial", tmp_path / ".checkpoint-prev.npz.77.partial"]
    other = tmp_path / ".notes.txt.partial"
    for file in [*stale, other]:
        file.write_bytes(b"half a save")
    model, train, _, optimizer, _ = setup()
    fit(model, train, optimizer, epochs=1, checkpoint=path, progress=False)
    assert not any(file.exists() for file in stale) and other.exists()


def epochs_logged(path) -> list:
    return [record["epoch"] for record in read_metrics(path) if record["kind"] == "epoch"]


def test_on_resume_the_metrics_are_cut_back_to_the_checkpoints_epoch(tmp_path):
    path, metrics = tmp_path / "checkpoint.npz", tmp_path / "metrics.jsonl"
    model, train, _, optimizer, schedule = setup(epochs=3)
    fit(model, train, optimizer, epochs=2, schedule=schedule, checkpoint=path, metrics=metrics, progress=False)
    # killed after logging epoch 2 but before saving it, halfway through a line
    with open(metrics, "a") as file:
        file.write(json.dumps({"kind": "step", "epoch": 2, "step": 12, "loss": 1.0}) + "\n")
        file.write(json.dumps({"kind": "epoch", "epoch": 2, "step": 18}) + "\n")
        file.write('{"kind": "step", "epo')
    model, train, _, optimizer, schedule = setup(epochs=3)
    fit(
        model,
        train,
        optimizer,
        epochs=3,
        schedule=schedule,
        checkpoint=path,
        metrics=metrics,
        resume=path,
        progress=False,
    )
    assert epochs_logged(metrics) == [0, 1, 2]
    assert all(json.loads(line) for line in metrics.read_text().splitlines())  # no damaged line left
    assert truncate_metrics(metrics, 2) == 0  # nothing more to cut


def test_a_non_finite_eval_loss_is_written_as_null_and_the_run_goes_on(tmp_path):
    base = classification_loss()

    def infinite_in_eval(model, batch):
        loss, logits = base(model, batch)
        return (loss * float("inf") if not model.training else loss), logits

    path, metrics = tmp_path / "checkpoint.npz", tmp_path / "metrics.jsonl"
    model, train, test, optimizer, _ = setup()
    history = fit(
        model,
        train,
        optimizer,
        epochs=2,
        eval_loader=test,
        loss_fn=infinite_in_eval,
        checkpoint=path,
        metrics=metrics,
        progress=False,
    )
    assert [record["eval_loss"] for record in history] == [None, None]
    assert read_checkpoint(path).extra["history"][1]["eval_loss"] is None
    for line in metrics.read_text().splitlines():
        json.loads(line, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON"))


def test_ctrl_c_names_the_step_and_the_last_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    model, train, _, optimizer, _ = setup()
    steps = len(train)
    calls = [0]
    base = classification_loss()

    def interrupted(model, batch):
        calls[0] += 1
        if calls[0] == steps + 3:
            raise KeyboardInterrupt
        return base(model, batch)

    with pytest.raises(TrainingInterrupted) as caught:
        fit(model, train, optimizer, epochs=3, loss_fn=interrupted, checkpoint=path, progress=False)
    assert str(caught.value) == (
        f"interrupted at step {steps + 2} (epoch 1, batch 2); the last checkpoint is {path} (epoch 0)"
    )
    assert isinstance(caught.value, KeyboardInterrupt) and read_checkpoint(path).epoch == 0


def test_a_resume_must_match_the_recorded_configuration(tmp_path):
    path = tmp_path / "checkpoint.npz"
    config = {"lr": 0.05, "batch_size": 32, "seed": 0}
    model, train, _, optimizer, schedule = setup(epochs=2)
    fit(model, train, optimizer, epochs=2, schedule=schedule, checkpoint=path, config=config, progress=False)
    assert read_checkpoint(path).extra["config"] == config

    def resume(epochs=2, **changes):
        model, train, _, optimizer, schedule = setup(epochs=2)
        return fit(
            model,
            train,
            optimizer,
            epochs=epochs,
            schedule=schedule,
            checkpoint=path,
            resume=path,
            config={**config, **changes.pop("config", {})},
            progress=False,
            **changes,
        )

    with pytest.raises(RunDirError, match=r"changes the run's configuration \(batch_size 32 -> 64; lr 0.05 -> 0.1\)"):
        resume(config={"lr": 0.1, "batch_size": 64})
    with pytest.raises(RunDirError, match=f"--epochs 1 is below the 2 epochs {path} has trained already"):
        resume(epochs=1)
    assert len(resume(config={"lr": 0.1}, allow_config_change=True)) == 2


def test_resuming_a_finished_run_says_so_and_trains_nothing(tmp_path, capsys):
    path = tmp_path / "checkpoint.npz"
    model, train, _, optimizer, _ = setup()
    fit(model, train, optimizer, epochs=1, checkpoint=path, progress=False)
    before = path.read_bytes()
    history = fit(model, train, optimizer, epochs=1, checkpoint=path, resume=path, progress=False)
    assert len(history) == 1 and path.read_bytes() == before
    assert f"{path}: the run finished all 1 epochs already; nothing to train" in capsys.readouterr().out


def test_a_checkpoint_holding_nan_is_not_resumed(tmp_path):
    from scratchvit.io import save_checkpoint

    model, train, _, optimizer, _ = setup()
    model.head.weight.data[0, 0] = np.nan
    path = save_checkpoint(tmp_path / "bad.npz", model, optimizer, epoch=0, step=6)
    with pytest.raises(
        RunDirError, match=r"holds NaN or inf in 1 arrays \(model.head.weight\), so it cannot be resumed"
    ):
        fit(model, train, optimizer, epochs=2, resume=path, progress=False)
