"""The `scratchvit` command through `cli.main([...])`: every sub-command on tiny settings writes and
prints what it says, and every wrong input is one line on stderr with exit code 2. Synthetic MNIST
files stand in for data (NumPy alone); the digits tests need scikit-learn."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_recipes import TINY_MAE, TINY_VIT, write_mnist

from scratchvit import backend
from scratchvit.app import cli, demo, launch
from scratchvit.io import read_checkpoint
from scratchvit.train import distributed, read_metrics

COMMANDS = [
    "demo",
    "train",
    "pretrain",
    "linprobe",
    "finetune",
    "eval",
    "summary",
    "gradcheck",
    "convert",
    "bench",
    "info",
]


def flags(kwargs: dict) -> list:
    """Model keywords as command-line overrides: --patch-size 7 --embed-dim 16 ... --model-arg key=value."""
    named = {"patch_size", "embed_dim", "depth", "num_heads"}
    arguments = []
    for key, value in kwargs.items():
        arguments += [f"--{key.replace('_', '-')}", str(value)] if key in named else ["--model-arg", f"{key}={value}"]
    return arguments


TINY = flags(TINY_VIT)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


def data(mnist) -> list:
    return ["--data", "mnist", "--data-root", str(mnist)]


def run(argv: list, capsys) -> tuple:
    """(exit code, stdout, stderr) of `scratchvit argv`."""
    code = cli.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fails_with(argv: list, capsys, *fragments) -> str:
    """Run a command that must fail: exit code 2, nothing on stdout, one line on stderr with the fragments."""
    code, out, err = run(argv, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and out == "", (out, err)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---- --help ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and f"example:\n  scratchvit {command}" in out
    assert "--device" in out and "--seed" in out


def test_the_commands_that_write_files_take_out(capsys):
    for command in COMMANDS:
        writes = command in ("demo", "train", "pretrain", "linprobe", "finetune", "eval", "bench")
        assert ("--out DIR" in run([command, "--help"], capsys)[1]) == writes, command


# ---- the commands -------------------------------------------------------------------------------
def test_train_writes_a_checkpoint_and_metrics_then_resumes_and_evaluates(mnist, tmp_path, capsys):
    argv = [
        "train",
        "--model",
        "vit_tiny_patch16_224",
        *data(mnist),
        *TINY,
        "--batch-size",
        16,
        "--out",
        tmp_path,
        "--no-progress",
    ]
    code, out, _ = run([*argv, "--epochs", 1], capsys)
    checkpoint, metrics = tmp_path / "checkpoint.npz", tmp_path / "metrics.jsonl"
    assert code == 0 and f"checkpoint: {checkpoint}" in out and f"metrics:    {metrics}" in out
    assert read_checkpoint(checkpoint).epoch == 0
    code, out, _ = run([*argv, "--epochs", 2, "--resume", checkpoint, "--allow-config-change"], capsys)
    assert code == 0 and read_checkpoint(checkpoint).epoch == 1
    assert [line["epoch"] for line in read_metrics(metrics) if line["kind"] == "epoch"] == [0, 1]
    code, out, _ = run(["eval", "--checkpoint", checkpoint, *data(mnist), "--out", tmp_path], capsys)
    assert code == 0 and "vit_tiny_patch16_224 on mnist test (24 images): top-1" in out and "top-5" in out
    assert json.loads((tmp_path / "eval.json").read_text())["images"] == 24


def test_train_options_reach_the_recipe(mnist, tmp_path, capsys):
    argv = [
        "train",
        "--model",
        "vit_tiny_patch16_224",
        *data(mnist),
        *TINY,
        "--img-size",
        14,
        "--batch-size",
        16,
        "--epochs",
        2,
        "--schedule",
        "onecycle",
        "--warmup-epochs",
        1,
        "--lr",
        0.01,
        "--weight-decay",
        0.1,
        "--label-smoothing",
        0.2,
        "--clip-grad",
        1.0,
        "--model-arg",
        "global_pool='avg'",
        "--out",
        tmp_path,
        "--no-progress",
        "--seed",
        3,
    ]
    assert run(argv, capsys)[0] == 0
    saved = read_checkpoint(tmp_path / "checkpoint.npz")
    assert saved.model_kwargs["img_size"] == 14 and saved.model_kwargs["global_pool"] == "avg"  # resized 28 -> 14
    assert saved.optimizer["param_groups"][-1]["weight_decay"] == 0.1
    steps = [line for line in read_metrics(tmp_path / "metrics.jsonl") if line["kind"] == "step"]
    assert "grad_norm" in steps[0]  # --clip-grad


def test_pretrain_linprobe_finetune_and_eval_chain(mnist, tmp_path, capsys):
    mae = tmp_path / "mae"
    code, out, _ = run(
        [
            "pretrain",
            "--model",
            "mae_vit_base_patch16",
            *data(mnist),
            *flags(TINY_MAE),
            "--epochs",
            1,
            "--batch-size",
            16,
            "--mask-ratio",
            0.5,
            "--norm-pix-loss",
            "--out",
            mae,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0 and (mae / "checkpoint.npz").is_file() and (mae / "metrics.jsonl").is_file()
    assert read_checkpoint(mae / "checkpoint.npz").model_kwargs["norm_pix_loss"] is True
    for command, extra in (("linprobe", ["--optimizer", "adamw"]), ("finetune", ["--layer-decay", 0.5])):
        out_dir = tmp_path / command
        code, out, _ = run(
            [
                command,
                "--checkpoint",
                mae / "checkpoint.npz",
                *data(mnist),
                "--epochs",
                1,
                "--batch-size",
                16,
                *extra,
                "--out",
                out_dir,
                "--no-progress",
            ],
            capsys,
        )
        assert code == 0 and f"checkpoint: {out_dir / 'checkpoint.npz'}" in out, command
        code, out, _ = run(["eval", "--checkpoint", out_dir / "checkpoint.npz", *data(mnist)], capsys)
        assert code == 0 and "top-1" in out, command
    assert "head.1.weight" in read_checkpoint(tmp_path / "linprobe" / "checkpoint.npz").state_dict


def test_bench_prints_the_step_time_and_with_profile_the_op_families(tmp_path, capsys):
    code, out, _ = run(["bench", "vit_digits_b64", "--steps", 1, "--warmup", 0, "--profile", "--out", tmp_path], capsys)
    assert code == 0 and "median step" in out
    family_rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"products", "attention", "norm", "activation", "all", "outside"} <= family_rows
    assert "products.LinearFn" in out and (tmp_path / "bench.json").is_file()


def test_convert_writes_safetensors_that_eval_loads(mnist, tmp_path, capsys):
    pytest.importorskip("safetensors")
    assert (
        run(
            [
                "train",
                "--model",
                "vit_tiny_patch16_224",
                *data(mnist),
                *TINY,
                "--epochs",
                1,
                "--batch-size",
                16,
                "--out",
                tmp_path,
                "--no-progress",
            ],
            capsys,
        )[0]
        == 0
    )
    model = ["--model", "vit_tiny_patch16_224", *TINY, "--img-size", 28, "--model-arg", "in_chans=1"]
    code, out, _ = run(
        ["convert", tmp_path / "checkpoint.npz", tmp_path / "vit.safetensors", *model, "--model-arg", "num_classes=10"],
        capsys,
    )
    assert code == 0 and f"wrote {tmp_path / 'vit.safetensors'}" in out
    code, out, _ = run(["eval", *model, "--pretrained", tmp_path / "vit.safetensors", *data(mnist)], capsys)
    assert code == 0 and "top-1" in out


def test_demo_calls_run_demo_with_the_options(monkeypatch, tmp_path, capsys):
    calls = []

    @functools.wraps(demo.run_demo)  # the same signature, so the command passes the same arguments
    def fake_run_demo(*args, **kwargs):
        calls.append((args, kwargs))

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert run(["demo", "--quick", "--out", tmp_path, "--seed", 4, "--no-progress"], capsys)[0] == 0
    assert run(["demo", "--epochs", 7], capsys)[0] == 0
    quick = {"out_dir": str(tmp_path), "device": None, "seed": 4, "epochs": 2, "progress": False, "overwrite": False}
    default = {**quick, "out_dir": "scratchvit-out", "seed": 0, "epochs": 7, "progress": True}
    assert calls == [((), quick), ((), default)]


def test_train_on_the_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    code, out, _ = run(
        [
            "train",
            "--model",
            "vit_tiny_patch16_224",
            "--data",
            "digits",
            "--patch-size",
            2,
            "--embed-dim",
            16,
            "--depth",
            1,
            "--num-heads",
            2,
            "--epochs",
            1,
            "--out",
            tmp_path,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0 and "1437 images" in out
    assert read_checkpoint(tmp_path / "checkpoint.npz").model_kwargs["img_size"] == 8


# ---- wrong input: one line, exit code 2 ---------------------------------------------------------
def test_an_unknown_model_lists_the_known_ones(mnist, capsys):
    fails_with(
        ["train", "--model", "nope", *data(mnist)],
        capsys,
        "scratchvit train: error: unknown model 'nope'",
        "vit_tiny_patch16_224",
        "swin_tiny_patch4_window7_224",
    )


def test_an_unknown_data_set_lists_the_known_ones(capsys):
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", "--data", "imagenet"],
        capsys,
        "scratchvit train: error: argument --data: invalid choice: 'imagenet'",
        "'mnist'",
        "'cifar10'",
    )


def test_a_data_root_that_does_not_exist(tmp_path, capsys):
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", "--data", "cifar10", "--data-root", tmp_path / "nope"],
        capsys,
        "does not exist",
        str(tmp_path / "nope"),
    )
    fails_with(["pretrain", "--data", "mnist"], capsys, "--data mnist needs --data-root DIR")


def test_a_data_file_in_the_wrong_format_names_the_file_and_what_was_expected(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (bad / name).write_bytes(b"\x00\x00\x08\x01" + bytes(4))  # a labels file (magic 0x00000801) of 0 labels
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", "--data", "mnist", "--data-root", bad],
        capsys,
        "train-images-idx3-ubyte: bad magic number 0x00000801, expected 0x00000803 for unsigned-byte images",
    )
    (bad / "batches.meta").write_bytes(b"not a pickle")
    fails_with(
        ["eval", "--model", "vit_tiny_patch16_224", "--pretrained", bad / "x", "--data", "cifar10", "--data-root", bad],
        capsys,
        "batches.meta",
    )


def test_a_checkpoint_in_the_wrong_format_is_reported_before_the_data_is_read(tmp_path, capsys):
    (tmp_path / "weights.npz").write_bytes(b"garbage")
    fails_with(
        ["eval", "--checkpoint", tmp_path / "weights.npz", "--data", "mnist", "--data-root", tmp_path],
        capsys,
        "weights.npz: not a checkpoint: neither an .npz (zip) nor a safetensors file",
    )
    fails_with(
        ["linprobe", "--checkpoint", tmp_path / "missing.npz", "--data", "mnist", "--data-root", tmp_path],
        capsys,
        "missing.npz: no such checkpoint file",
    )


def test_an_image_size_the_model_cannot_take(mnist, capsys):
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", *data(mnist), "--img-size", 30, "--patch-size", 4],
        capsys,
        "img_size 30 is not divisible by patch_size 4",
    )
    fails_with(["summary", "vit_tiny_patch16_224", "--img-size", 8, 8, 8], capsys, "--img-size takes H or H W")


def test_cuda_without_cupy(mnist, capsys):
    if backend.cuda_is_available():
        pytest.skip("CuPy and a GPU are here")
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", *data(mnist), "--device", "cuda"],
        capsys,
        "device 'cuda' needs",
        "pip install 'scratchvit[cuda12]'",
    )


def test_the_digits_without_scikit_learn_say_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # importing it now raises ImportError
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224"],
        capsys,
        "the digits data set ships with scikit-learn",
        "pip install",
    )


def test_more_wrong_arguments(mnist, tmp_path, capsys):
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", "--model-arg", "depth"],
        capsys,
        "argument --model-arg: expected KEY=VALUE",
    )
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", *data(mnist), "--depth", 1, "--model-arg", "depth=2"],
        capsys,
        "argument --model-arg: depth= gives a value that was given already",
    )
    fails_with(["train", "--model", "mae_vit_base_patch16", *data(mnist)], capsys, "is a masked autoencoder")
    fails_with(["train", *data(mnist)], capsys, "the following arguments are required: --model")
    fails_with(["eval", *data(mnist)], capsys, "give --checkpoint PATH")
    fails_with(["eval", "--model", "vit_tiny_patch16_224", *data(mnist)], capsys, "give --checkpoint PATH")
    fails_with(["bench", "vit_nope"], capsys, "invalid choice: 'vit_nope'", "vit_digits_b64")
    fails_with(
        ["convert", tmp_path / "a.pth", tmp_path / "b.bin", "--model", "vit_tiny_patch16_224"],
        capsys,
        "dst must be a .safetensors path",
    )
    fails_with(
        [
            "train",
            "--model",
            "vit_tiny_patch16_224",
            *data(mnist),
            *TINY,
            "--batch-size",
            16,
            "--epochs",
            2,
            "--warmup-epochs",
            2,
        ],
        capsys,
        "warmup_epochs must be >= 0 and less than epochs 2",
    )
    fails_with(
        ["train", "--model", "vit_tiny_patch16_224", *data(mnist), *TINY, "--batch-size", 100],
        capsys,
        "batch_size 100 is larger than the 48 training images",
    )


def test_the_console_entry_in_a_real_process(tmp_path):
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "scratchvit",
        "train",
        "--model",
        "vit_nope",
        "--data",
        "mnist",
        "--data-root",
        str(write_mnist(tmp_path / "mnist", train_count=4, test_count=2)),
    ]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and completed.stdout == ""
    assert completed.stderr.startswith("scratchvit train: error: unknown model 'vit_nope'")
    assert len(completed.stderr.strip().splitlines()) == 1
    helped = subprocess.run(
        [sys.executable, "-m", "scratchvit", "--help"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "linprobe" in helped.stdout


# ---- --procs N: N single-threaded ranks under mpiexec (scratchvit.app.launch) --------------------
def test_procs_must_be_a_count_of_one_or_more_and_not_given_inside_an_mpi_job(monkeypatch, capsys):
    for value in ("0", "-2", "two"):
        fails_with(
            ["train", "--model", "vit_tiny_patch16_224", "--procs", value],
            capsys,
            "scratchvit train: error: argument --procs: expected a number of processes >= 1",
        )
    monkeypatch.setattr(distributed, "init", lambda: 2)  # as a rank of `mpirun -n 2 scratchvit ...` sees it
    fails_with(
        ["eval", "--checkpoint", "c.npz", "--procs", "2"],
        capsys,
        "scratchvit eval: error: argument --procs: already a rank of an MPI job",
    )


def test_procs_1_runs_in_this_process(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.recipes, "train_classifier", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(launch, "launch_local", lambda *args: pytest.fail("--procs 1 started processes"))
    assert run(["train", "--model", "vit_tiny_patch16_224", "--procs", 1], capsys)[0] == 0
    assert len(calls) == 1 and "procs" not in calls[0]


@pytest.mark.parametrize(
    "argv, child",
    [
        (["--procs", "2", "--epochs", "1"], ["--epochs", "1"]),
        (["--epochs", "1", "--procs=2"], ["--epochs", "1"]),
        (["--proc", "2", "--out", "runs/p"], ["--out", "runs/p"]),  # an abbreviation argparse takes
        (["--pro=2", "--no-progress"], ["--no-progress"]),
    ],
)
def test_the_ranks_run_the_same_command_without_procs(argv, child):
    assert launch.child_argv(["train", *argv]) == ["train", *child]


@pytest.fixture
def fake_mpiexec(monkeypatch):
    """launch's subprocess.run records its command and environment and returns exit code 3."""
    started = []

    def fake_run(command, env):
        started.append((command, env))
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(launch, "find_mpiexec", lambda: "/opt/mpi/bin/mpiexec")
    monkeypatch.setattr(launch, "find_spec", lambda name: object())  # mpi4py is there
    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "8")
    return started


def test_procs_n_runs_the_command_under_mpiexec_with_one_thread_a_rank(fake_mpiexec, capsys):
    code, out, err = run(["pretrain", "--data", "digits", "--procs", 4, "--epochs", 1], capsys)
    assert (code, out, err) == (3, "", "")  # mpiexec's exit code, and nothing else printed
    [(command, env)] = fake_mpiexec
    child = "pretrain --data digits --epochs 1".split()
    assert command == ["/opt/mpi/bin/mpiexec", "-n", "4", sys.executable, "-m", "scratchvit", *child]
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on


def test_procs_n_returns_128_plus_the_signal_that_ended_mpiexec(fake_mpiexec, monkeypatch):
    monkeypatch.setattr(launch.subprocess, "run", lambda command, env: subprocess.CompletedProcess(command, -9))
    assert launch.launch_local(2, ["eval", "--checkpoint", "c.npz"]) == 137


def test_procs_n_without_mpi_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    fails_with(
        ["finetune", "--checkpoint", "c.npz", "--procs", 2],
        capsys,
        "scratchvit finetune: error: --procs 2 starts the ranks with MPI, but mpiexec",
        "pip install 'scratchvit[mpi]'",
    )


def test_info_lists_the_tier_and_every_registered_kernel(capsys):
    from scratchvit import kernels

    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kernel tier: fast" in out
    for entry in kernels.registered_kernels():
        line = next(line for line in out.splitlines() if f" {entry.kernel.__name__}: " in line)
        assert entry.op_name in line and entry.dtype.name in line and entry.backend in line
    with kernels.tier("textbook"):
        assert cli.main(["info"]) == 0
    assert "kernel tier: textbook" in capsys.readouterr().out
