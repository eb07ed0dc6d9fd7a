"""The training commands keep runs safe: a diverging run ends with exit code 1 without saving NaN, a
run never writes over another run's folder, a resume must match the run it resumes, Ctrl-C ends
with one line and exit code 130, and eval reports NaN honestly (0%, null in eval.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import TINY, data, fails_with, flags, run
from test_recipes import TINY_MAE, write_mnist

from scratchvit.io import read_checkpoint, save_checkpoint
from scratchvit.models import load_checkpoint
from scratchvit.train import loop


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"))


def train_argv(mnist, out, *extra) -> list:
    return [
        "train",
        "--model",
        "vit_tiny_patch16_224",
        *data(mnist),
        *TINY,
        "--batch-size",
        16,
        "--out",
        out,
        "--no-progress",
        *extra,
    ]


def snapshot(folder) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# the run diverges on purpose: NumPy's warnings of overflow and NaN are expected
@pytest.mark.filterwarnings("ignore:overflow|divide by zero|invalid value:RuntimeWarning")
def test_pretrain_at_lr_1000_stops_with_exit_1_and_saves_no_infinite_state(mnist, tmp_path, capsys):
    argv = ["pretrain", *data(mnist), *flags(TINY_MAE), "--batch-size", 16, "--epochs", 3, "--warmup-epochs", 0]
    code, _, err = run([*argv, "--out", tmp_path, "--no-progress", "--lr", 1000], capsys)
    assert code == 1, err
    line = err.strip()
    assert "\n" not in line and line.startswith("scratchvit pretrain: training diverged: after step 3 (end of epoch 0)")
    assert "exp_avg_sq" in line and line.endswith("no checkpoint was written yet")
    assert not (tmp_path / "checkpoint.npz").exists()


def test_a_run_refuses_the_folder_of_another_run_unless_told_to_overwrite(mnist, tmp_path, capsys):
    assert run([*train_argv(mnist, tmp_path), "--epochs", 1], capsys)[0] == 0
    before = snapshot(tmp_path)
    fails_with(
        [*train_argv(mnist, tmp_path), "--epochs", 2, "--lr", "2e-3"],
        capsys,
        f"--out {tmp_path} already holds another run (checkpoint.npz, metrics.jsonl (epochs 0..0))",
        "--resume",
        "--overwrite",
    )
    assert snapshot(tmp_path) == before
    code, _, err = run([*train_argv(mnist, tmp_path), "--epochs", 1, "--overwrite", "--seed", 3], capsys)
    assert code == 0, err
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs.count(0) == len(epochs)  # the old run's lines are gone, not mixed in
    assert read_checkpoint(tmp_path / "checkpoint.npz").extra["config"]["seed"] == 3


def test_a_resume_that_changes_the_configuration_is_refused_naming_each_change(mnist, tmp_path, capsys):
    assert run([*train_argv(mnist, tmp_path), "--epochs", 2], capsys)[0] == 0
    checkpoint = tmp_path / "checkpoint.npz"
    before = snapshot(tmp_path)
    argv = [*train_argv(mnist, tmp_path), "--resume", checkpoint]
    argv[argv.index("--batch-size") + 1] = 8
    fails_with(
        [*argv, "--epochs", 3, "--lr", "3e-3", "--schedule", "onecycle", "--seed", 1],
        capsys,
        "batch_size 16 -> 8; epochs 2 -> 3; lr 0.001 -> 0.003; schedule 'cosine' -> 'onecycle'; seed 0 -> 1",
        "--allow-config-change",
    )
    fails_with(
        [*train_argv(mnist, tmp_path), "--resume", checkpoint, "--epochs", 1],
        capsys,
        f"--epochs 1 is below the 2 epochs {checkpoint} has trained already",
    )
    assert snapshot(tmp_path) == before
    code, out, _ = run([*train_argv(mnist, tmp_path), "--resume", checkpoint, "--epochs", 2], capsys)
    assert code == 0 and "the run finished all 2 epochs already; nothing to train" in out
    assert snapshot(tmp_path) == before


def test_ctrl_c_ends_with_one_line_and_exit_code_130(mnist, tmp_path, capsys, monkeypatch):
    calls = []
    cross_entropy = loop.cross_entropy

    def interrupted_at_the_sixth_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return cross_entropy(*args, **kwargs)

    monkeypatch.setattr(loop, "cross_entropy", interrupted_at_the_sixth_call)
    # 3 training steps an epoch and 2 evaluation batches: the sixth call is the first step of epoch 1
    code, _, err = run([*train_argv(mnist, tmp_path), "--epochs", 3], capsys)
    assert code == 130
    assert err == (
        f"scratchvit train: interrupted at step 3 (epoch 1, batch 0); the last checkpoint is "
        f"{tmp_path / 'checkpoint.npz'} (epoch 0)\n"
    )


def test_eval_of_a_model_holding_nan_scores_0_and_writes_null(mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run([*train_argv(mnist, out), "--epochs", 1], capsys)[0] == 0
    model = load_checkpoint(out / "checkpoint.npz").model
    model.head.weight.data[...] = np.nan
    poisoned = save_checkpoint(tmp_path / "nan.npz", model)
    code, stdout, err = run(["eval", "--checkpoint", poisoned, *data(mnist), "--out", tmp_path], capsys)
    assert code == 0, err
    assert "top-1 0.00%  top-5 0.00%  loss nan" in stdout
    record = json.loads((tmp_path / "eval.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert record["loss"] is None and record["acc1"] == 0.0 and record["acc5"] == 0.0


def test_eval_of_a_constant_head_scores_as_argmax_does(mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run([*train_argv(mnist, out), "--epochs", 1], capsys)[0] == 0
    model = load_checkpoint(out / "checkpoint.npz").model
    model.head.weight.data[...] = 0
    model.head.bias.data[...] = 0
    constant = save_checkpoint(tmp_path / "zeros.npz", model)
    code, stdout, err = run(["eval", "--checkpoint", constant, *data(mnist)], capsys)
    assert code == 0, err
    # argmax ranks the tied classes 0, 1, 2, ...; the 24 test labels run 0..9 in turn: 3 of class 0, 14 of 0..4
    assert "top-1 12.50%  top-5 58.33%" in stdout
