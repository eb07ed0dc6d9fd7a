"""Data-parallel training: the sampler's split of every batch, scratchvit.train.distributed in one process
(it must change nothing), and real 2-rank jobs under mpiexec.

The multi-process tests start tests/distributed_worker.py (or `python -m scratchvit`) under
`mpiexec -n 2` with a timeout, so a hang fails rather than blocks; they are skipped, with the
reason, where mpi4py or mpiexec is missing (pip install -e '.[mpi]').
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit.data import ArrayDataset, DataLoader, DistributedSampler
from scratchvit.io import read_checkpoint
from scratchvit.train import distributed

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"


# ---- the sampler and the loader ---------------------------------------------------------------
@given(
    size=st.integers(0, 40),
    batch_size=st.integers(1, 12),
    world_size=st.integers(1, 5),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_ranks_together_read_the_batches_of_one_process(size, batch_size, world_size, shuffle, drop_last, epoch):
    def batches(**ranks):
        sampler = DistributedSampler(size, batch_size, shuffle=shuffle, seed=3, drop_last=drop_last, **ranks)
        return list(sampler.batches(epoch))

    single = batches()
    parts = [batches(num_replicas=world_size, rank=rank) for rank in range(world_size)]
    assert all(len(rank_parts) == len(single) for rank_parts in parts)  # the same number of steps on every rank
    for step, batch in enumerate(single):
        step_parts = [rank_parts[step] for rank_parts in parts]
        assert np.concatenate(step_parts).tolist() == batch.tolist()  # contiguous parts, in rank order
        sizes = [len(part) for part in step_parts]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    seen = np.concatenate([np.zeros(0, int), *(part for rank_parts in parts for part in rank_parts)]).tolist()
    if drop_last:  # all but the last partial batch, each once
        assert len(seen) == len(set(seen)) == (size // batch_size) * batch_size
    else:  # every sample once, however the size divides
        assert sorted(seen) == list(range(size))


def test_sampler_example_uneven_and_empty_parts():
    parts = [
        [part.tolist() for part in DistributedSampler(10, 4, num_replicas=2, rank=rank).batches(0)] for rank in (0, 1)
    ]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    parts = [
        [part.tolist() for part in DistributedSampler(5, 4, num_replicas=2, rank=rank).batches(0)] for rank in (0, 1)
    ]
    assert parts == [[[0, 1], [4]], [[2, 3], []]]  # rank 1 has no sample of the last batch, but still a step


def test_shuffled_epochs_are_seeded_and_differ():
    def order(seed, epoch):
        return np.concatenate(
            list(DistributedSampler(20, 6, num_replicas=3, rank=1, shuffle=True, seed=seed).batches(epoch))
        ).tolist()

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


@pytest.mark.parametrize(
    "arguments, match",
    [
        (dict(size=10, batch_size=4, num_replicas=2, rank=2), "rank must be less than num_replicas 2, got 2"),
        (dict(size=10, batch_size=4, num_replicas=0), "num_replicas must be an int >= 1, got 0"),
        (dict(size=10, batch_size=0), "batch_size must be an int >= 1, got 0"),
        (dict(size=-1, batch_size=4), "size must be an int >= 0, got -1"),
        (dict(size=10, batch_size=4, rank=-1), "rank must be an int >= 0, got -1"),
    ],
)
def test_sampler_rejects_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        DistributedSampler(**arguments)


def image_dataset(count):
    """Images whose every pixel is their index, so a batch tells which samples it holds."""
    images = np.broadcast_to(np.arange(count, dtype=np.float32)[:, None, None, None], (count, 1, 2, 2)).copy()
    return ArrayDataset(images, np.arange(count) % 3, ["a", "b", "c"])


class ListDataset:
    """Read sample by sample (no .images array), as an image folder is."""

    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.full((1, 3, 3), index, np.float32), index % 2


@pytest.mark.parametrize("make", [image_dataset, ListDataset], ids=["in-memory", "sample-by-sample"])
def test_loader_yields_this_ranks_part_and_an_empty_part_shaped_like_the_images(make):
    loaders = [DataLoader(make(5), 4, num_replicas=2, rank=rank) for rank in (0, 1)]
    assert [len(loader) for loader in loaders] == [2, 2]
    batches = [list(loader) for loader in loaders]
    ids = [[images.data[:, 0, 0, 0].astype(int).tolist() for images, _ in rank_batches] for rank_batches in batches]
    assert ids == [[[0, 1], [4]], [[2, 3], []]]
    empty_images, empty_labels = batches[1][1]
    assert empty_images.shape == (0, *make(1)[0][0].shape) and empty_labels.shape == (0,)
    assert "rank 1 of 2" in repr(loaders[1])


def test_each_rank_draws_its_own_augmentations_and_rank_0_those_of_one_process():
    def draws(**ranks):
        drawn = []

        def transform(images, rng):
            drawn.append(rng.random())
            return images

        list(DataLoader(image_dataset(8), 4, transform=transform, **ranks))
        return drawn

    assert draws(num_replicas=2, rank=0) == draws()
    assert draws(num_replicas=2, rank=1) != draws()


# ---- scratchvit.train.distributed in one process: nothing changes -----------------------------------
@pytest.fixture
def no_launcher(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # any import of mpi4py now fails


def test_init_without_a_launcher_is_one_process_and_never_imports_mpi4py(no_launcher):
    assert distributed.init() == 1
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)


def test_init_under_a_launcher_without_mpi4py_says_how_to_install_it(no_launcher, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(ImportError, match=r"pip install 'scratchvit\[mpi\]'"):
        distributed.init()


def tiny_model_with_grads():
    sv.manual_seed(0)
    model = sv.nn.Linear(3, 2)
    for parameter in model.parameters():
        parameter.grad = np.full(parameter.shape, 0.5, np.float32)
    return model


def test_collectives_in_one_process_leave_everything_as_it_is(no_launcher):
    model = tiny_model_with_grads()
    before = {name: (parameter.data.copy(), parameter.grad) for name, parameter in model.named_parameters()}
    distributed.broadcast_parameters(model)
    distributed.all_reduce_grads(model, weight=3)
    for name, parameter in model.named_parameters():
        assert np.array_equal(parameter.data, before[name][0])
        assert parameter.grad is before[name][1]  # not even copied
    total = distributed.all_reduce_sum([1, 2])
    assert total.dtype == np.float64 and total.tolist() == [1.0, 2.0]
    assert distributed.local_device("cuda") == "cuda"


def test_all_reduce_grads_rejects_a_negative_weight():
    with pytest.raises(ValueError, match="weight must be >= 0"):
        distributed.all_reduce_grads(tiny_model_with_grads(), weight=-1)


def test_abort_in_one_process_names_the_rank_and_exits(capsys):
    with pytest.raises(SystemExit) as exit_info:
        distributed.abort("the data set is missing", exit_code=3)
    assert exit_info.value.code == 3
    assert "[rank 0 of 1] the data set is missing" in capsys.readouterr().err


def test_buckets_hold_consecutive_arrays_of_one_dtype_up_to_the_bucket_size(monkeypatch):
    monkeypatch.setattr(distributed, "BUCKET_ELEMENTS", 6)
    arrays = [
        np.zeros(2, np.float32),
        np.zeros(3, np.float32),
        np.zeros(2, np.float32),
        np.zeros(9, np.float32),
        np.zeros(1, np.int64),
        np.zeros(1, np.float32),
    ]
    assert list(distributed._buckets(arrays)) == [[0, 1], [2], [3], [4], [5]]


# ---- two ranks under mpiexec ---------------------------------------------------------------------
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or find_spec("mpi4py") is None,
    reason="needs mpi4py and an MPI launcher (mpiexec): pip install -e '.[mpi]'",
)
TIMEOUT_S = 120


def run(command: list, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `command` from the repository root with one BLAS thread per rank; fail if it outlives timeout."""
    # The OMPI_ variables let Open MPI's mpiexec run as root, as CI does; MPICH's ignores them.
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # mpiexec and every rank it started
        process.communicate()
        pytest.fail(f"{' '.join(command)} did not end within {timeout} s: a rank hangs")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def launch(processes: int, command: list) -> list:
    """`command` as one plain process (no MPI at all), or under mpiexec -n processes."""
    return command if processes == 1 else [MPIEXEC, "-n", str(processes), *command]


def train(out: Path, processes: int, *arguments) -> tuple:
    """tests/distributed_worker.py in `processes` ranks: ([history per rank], [parameters per rank])."""
    completed = run(launch(processes, [sys.executable, str(WORKER), "--out", str(out), *map(str, arguments)]))
    assert completed.returncode == 0, completed.stderr
    reports = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(processes)]
    assert [report["world_size"] for report in reports] == [processes] * processes
    parameters = [dict(np.load(out / f"rank{rank}.npz")) for rank in range(processes)]
    return [report["history"] for report in reports], parameters


def assert_same_training(history, parameters, reference_history, reference_parameters):
    """Equal to float32 rounding: the sums of the all-reduce run in another order than one process's."""
    assert parameters.keys() == reference_parameters.keys()
    for name, reference in reference_parameters.items():
        np.testing.assert_allclose(parameters[name], reference, rtol=1e-5, atol=1e-6, err_msg=name)
    assert len(history) == len(reference_history)
    for record, reference in zip(history, reference_history, strict=True):
        assert record.keys() == reference.keys()
        for key, value in reference.items():
            assert record[key] == pytest.approx(value, rel=1e-5), key


@needs_mpi
@pytest.mark.parametrize(
    "size, batch_size",
    [(17, 7), (17, 8)],
    ids=["parts-4-3-every-step", "rank-1-empty-in-the-last-step"],
)
def test_two_ranks_train_as_one_process_on_the_whole_batch(tmp_path, size, batch_size):
    data = ("--size", size, "--batch-size", batch_size, "--epochs", 2)
    (reference_history,), (reference,) = train(tmp_path / "one", 1, *data)
    # Small buckets: several all-reduces per step, and arrays larger than a bucket in buckets of their own.
    histories, parameters = train(tmp_path / "two", 2, *data, "--bucket-elements", 1000)
    assert histories[0] == histories[1]  # the loss and metrics reported on both ranks are the same numbers
    for name in reference:
        assert np.array_equal(parameters[0][name], parameters[1][name]), name  # the ranks stay in step
    assert_same_training(histories[0], parameters[0], reference_history, reference)
    records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records if record["kind"] == "epoch"] == [0, 1]  # by rank 0 alone


@needs_mpi
def test_a_checkpoint_resumes_with_another_number_of_ranks(tmp_path):
    data = ("--size", 17, "--batch-size", 7)
    (reference_history,), (reference,) = train(tmp_path / "straight", 1, *data, "--epochs", 2)
    for first, then in [(2, 1), (1, 2)]:
        out = tmp_path / f"{first}-then-{then}"
        train(out, first, *data, "--epochs", 1)
        assert read_checkpoint(out / "checkpoint.npz").epoch == 0
        histories, parameters = train(out, then, *data, "--epochs", 2, "--resume", out / "checkpoint.npz")
        for history, rank_parameters in zip(histories, parameters, strict=True):
            assert_same_training(history, rank_parameters, reference_history, reference)


@needs_mpi
def test_a_two_rank_resume_with_drop_path_is_exact(tmp_path):
    """Each rank draws its own drop-path masks; the checkpoint holds every rank's generators, so a
    2-rank run stopped after epoch 0 and resumed ends bit for bit where the straight run does."""
    data = ("--size", 17, "--batch-size", 8, "--drop-path", 0.5)
    straight_histories, straight = train(tmp_path / "straight", 2, *data, "--epochs", 3)
    out = tmp_path / "stopped"
    train(out, 2, *data, "--epochs", 1)  # as if killed after its first checkpoint
    states = read_checkpoint(out / "checkpoint.npz").extra["rank_rng_states"]
    assert len(states) == 2 and states[0] != states[1]
    histories, resumed = train(out, 2, *data, "--epochs", 3, "--resume", out / "checkpoint.npz")
    for rank in (0, 1):
        assert resumed[rank].keys() == straight[rank].keys()
        for name in straight[rank]:
            assert np.array_equal(resumed[rank][name], straight[rank][name]), (rank, name)
        assert histories[rank] == straight_histories[rank]


@needs_mpi
def test_the_scaling_benchmark_reads_each_ranks_results_from_its_own_file():
    """Each rank writes rank<r>.json; nothing is parsed from the stdout the ranks share."""
    arguments = ["vit_digits_b64", "--processes", "1", "2", "--steps", "1", "--warmup", "0"]
    completed = run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), *arguments])
    assert completed.returncode == 0, completed.stderr
    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    assert [(row["processes"], row["local_batch"]) for row in rows] == [(1, 64), (2, 32)]
    assert all(row["step_s"] > 0 and row["slowest_rank_step_s"] >= row["step_s"] for row in rows)


@needs_mpi
def test_a_rank_that_raises_ends_the_job_naming_the_rank_and_the_error(tmp_path):
    completed = run(
        launch(2, [sys.executable, str(WORKER), "--out", str(tmp_path), "--fail-rank", "1", "--fail-call", "1"]),
        timeout=60,
    )
    assert completed.returncode != 0, completed.stderr
    assert "[rank 1 of 2]" in completed.stderr, completed.stderr
    assert "RuntimeError: injected failure at call 1" in completed.stderr, completed.stderr


@needs_mpi
def test_the_command_line_under_mpiexec_reports_an_error_with_the_rank_and_exit_code_2(tmp_path):
    command = [sys.executable, "-m", "scratchvit", "train", "--model", "mae_vit_base_patch16", "--out", str(tmp_path)]
    completed = run(launch(2, command), timeout=60)
    assert completed.returncode == 2, completed.stderr
    assert "of 2] scratchvit train: error: mae_vit_base_patch16 is a masked autoencoder" in completed.stderr, (
        completed.stderr
    )


@needs_mpi
def test_scratchvit_train_under_mpiexec_trains_as_one_process_and_its_checkpoint_resumes(tmp_path):
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the demo extra)")
    command = [
        sys.executable,
        "-m",
        "scratchvit",
        "train",
        "--model",
        "vit_tiny_patch16_224",
        "--data",
        "digits",
        "--patch-size",
        "4",
        "--embed-dim",
        "32",
        "--depth",
        "1",
        "--num-heads",
        "2",
        "--batch-size",
        "256",
        "--lr",
        "3e-3",
        "--no-progress",
    ]

    def epochs(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return [record for record in map(json.loads, lines) if record["kind"] == "epoch"]

    for processes in (1, 2):
        completed = run(launch(processes, [*command, "--epochs", "1", "--out", str(tmp_path / str(processes))]))
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.count("checkpoint: ") == 1  # rank 0 alone prints
    one, two = epochs(tmp_path / "1"), epochs(tmp_path / "2")
    assert len(one) == len(two) == 1
    for key in ("train_loss", "train_acc1", "eval_loss", "eval_acc1", "eval_acc5"):
        assert two[0][key] == pytest.approx(one[0][key], rel=1e-4), key
    resumed = run(
        [
            *command,
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "2"),
            "--resume",
            str(tmp_path / "2" / "checkpoint.npz"),
            "--allow-config-change",
        ]
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [record["epoch"] for record in epochs(tmp_path / "2")] == [0, 1]


@needs_mpi
def test_scratchvit_train_procs_2_starts_two_ranks_and_passes_on_their_exit_code(tmp_path):
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the demo extra)")
    arguments = (
        "train --model vit_tiny_patch16_224 --data digits --patch-size 4 --embed-dim 16 --depth 1 --num-heads 2 "
        "--batch-size 256 --epochs 1 --no-progress --procs 2"
    ).split()
    command = [sys.executable, "-m", "scratchvit", *arguments, "--out", str(tmp_path)]
    completed = run(command, timeout=60)  # no mpiexec here: --procs starts it
    assert completed.returncode == 0, completed.stderr
    assert "on cpu x 2 ranks" in completed.stdout and completed.stdout.count("checkpoint: ") == 1, completed.stdout
    assert (tmp_path / "checkpoint.npz").is_file()
    failed = run([*command[:5], "mae_vit_base_patch16", *command[6:]], timeout=60)
    assert failed.returncode == 2, failed.stderr
    assert "of 2] scratchvit train: error: mae_vit_base_patch16 is a masked autoencoder" in failed.stderr
