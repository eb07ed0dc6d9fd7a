"""Every file of the hostile corpus (make_corpus.py) through the library and through the command line:
one CheckpointError naming the file and the fault from the library; from `scratchvit`, exit code 2,
exactly one stderr line naming both, no traceback, nothing written or changed in --out, and no
payload ever run. The safetensors cases are held to the `safetensors` package's verdict.
"""

from __future__ import annotations

import os
import pickletools
import re
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from make_corpus import CANARY, CASES, CHECKPOINT, SMALL_VIT, SMALL_VIT_FLAGS, WEIGHTS, build_corpus

from scratchvit.app import cli
from scratchvit.io import CheckpointError, read_checkpoint, read_state_dict, write_safetensors
from scratchvit.io.files import MAX_DECODED_BYTES_VARIABLE
from scratchvit.io.safetensors import read_safetensors
from scratchvit.models import create_model, load_checkpoint

MODEL = "vit_tiny_patch16_224"
SAFETENSORS_CASES = [case for case in CASES if case.safetensors]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """name -> path of every hostile file, made once for the module."""
    return build_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(autouse=True)
def fifo_watchdog(corpus):
    """Should a reader ever block opening the FIFO, open its other end after 10 s: the test then
    fails on the wrong message instead of hanging the run."""
    done = threading.Event()

    def unblock():
        if done.wait(10):
            return
        while not done.is_set():
            try:
                os.close(os.open(corpus["fifo"], os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader has it open now
                time.sleep(0.1)

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    yield
    done.set()
    watchdog.join()


def _commands(reader: str, path: Path, out: Path) -> dict:
    """The command lines that read `path` as `reader`, each writing (if at all) into `out`."""
    path, out, small = str(path), str(out), list(SMALL_VIT_FLAGS)
    one_epoch = ["--epochs", "1", "--out", out, "--no-progress"]
    if reader == WEIGHTS:
        return {
            "convert": ["convert", path, str(Path(out) / "converted.safetensors"), "--model", MODEL, *small],
            "eval --pretrained": ["eval", "--model", MODEL, "--pretrained", path, "--out", out, *small],
            "train --pretrained": ["train", "--model", MODEL, "--pretrained", path, *one_epoch, *small],
        }
    return {
        "eval --checkpoint": ["eval", "--checkpoint", path, "--out", out],
        "linprobe": ["linprobe", "--checkpoint", path, *one_epoch],
        "finetune": ["finetune", "--checkpoint", path, *one_epoch],
        "train --resume": ["train", "--model", MODEL, "--resume", path, *one_epoch, *small],
    }


def _out_folder(tmp_path: Path) -> Path:
    """An --out folder that already holds something, to see that nothing in it changes."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("a file of the user's\n")
    return out


def _snapshot(folder: Path) -> dict:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.rglob("*"))}


def _check_one_line(stderr: str, command: str, case, path: Path) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"{command}: expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    assert lines[0].startswith(f"scratchvit {command.split()[0]}: error: {path}"), lines[0]
    assert re.search(case.message, lines[0]), f"{case.message!r} not in {lines[0]!r}"


def _check_nothing_ran(corpus: dict) -> None:
    root = Path(corpus["fifo"]).parent.parent
    assert not list(root.rglob(CANARY)), "a payload in the corpus ran"


# ---- the library ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [case for case in CASES if WEIGHTS in case.readers], ids=lambda case: case.name)
def test_weights_readers_refuse_with_one_clear_error(corpus, case):
    path = corpus[case.name]
    for read in (read_state_dict, lambda path: create_model(MODEL, pretrained=path, num_classes=10, **SMALL_VIT)):
        with pytest.raises(CheckpointError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert re.search(case.message, message), message
    _check_nothing_ran(corpus)


@pytest.mark.parametrize("case", [case for case in CASES if CHECKPOINT in case.readers], ids=lambda case: case.name)
def test_checkpoint_readers_refuse_with_one_clear_error(corpus, case):
    path = corpus[case.name]
    for read in (read_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert re.search(case.message, message), message
    _check_nothing_ran(corpus)


def _pickle_globals(data: bytes) -> set:
    """The globals a pickle asks for ("os.system"), read with pickletools: nothing is unpickled."""
    found, strings = set(), []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            found.add(argument.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
        elif isinstance(argument, str):
            strings.append(argument)
    return found


@pytest.mark.parametrize(
    ("name", "member"),
    [
        ("pth_os_system", "archive/data.pkl"),
        ("pth_exec", "archive/data.pkl"),
        ("pth_payload_in_a_tensor", "archive/data.pkl"),
        ("npz_object_array", "w.npy"),
        ("ckpt_object_array", "x.npy"),
        ("plain_pickle", None),
        ("legacy_torch", None),
    ],
)
def test_the_malicious_pickles_would_run_code(corpus, name, member):
    """Each malicious file asks for a function that runs a command, so refusing it is what kept the
    canary from appearing."""
    path = corpus[name]
    if member is None:
        data = path.read_bytes()
    else:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(member)
        data = data[data.index(b"\x80") :] if member.endswith(".npy") else data  # the pickle after the .npy header
    assert _pickle_globals(data) & {"os.system", "posix.system", "builtins.exec"}


def test_a_checkpoint_never_loads_the_file_its_metadata_names(tmp_path):
    """model_kwargs.pretrained names weights that would load without a fault: the loader still refuses,
    naming the checkpoint and the keyword."""
    import make_corpus

    weights = make_corpus._checkpoint(tmp_path / "loadable.safetensors")
    path = make_corpus._tampered(tmp_path / "names_weights.npz", make_corpus._kwargs(pretrained=str(weights)))
    for read in (read_checkpoint, load_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: refused: .*pretrained='.*loadable"):
            read(path)
    load_checkpoint(weights)  # what the metadata names is fine: only naming it is refused


def test_the_decode_budget_can_be_raised_explicitly(corpus, monkeypatch):
    """The 256 MiB stride-0 view is refused under the default budget and read under an explicit one."""
    path = corpus["pth_stride0_view"]
    with pytest.raises(CheckpointError, match=r"beyond the 67,108,864 bytes this [\d,]+-byte file may decode to"):
        read_state_dict(path)
    monkeypatch.setenv(MAX_DECODED_BYTES_VARIABLE, str(2**29))
    state, source = read_state_dict(path)
    assert source == "torch" and state["w"].shape == (8192, 8192) and not state["w"].any()
    monkeypatch.setenv(MAX_DECODED_BYTES_VARIABLE, "lots")
    with pytest.raises(ValueError, match=MAX_DECODED_BYTES_VARIABLE):
        read_state_dict(path)


# ---- the safetensors package's verdicts --------------------------------------------------------------
@pytest.mark.parametrize("case", SAFETENSORS_CASES, ids=lambda case: case.name)
def test_the_safetensors_package_refuses_what_we_refuse(corpus, case):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    data = Path(corpus[case.name]).read_bytes()
    with pytest.raises(Exception):  # noqa: B017 (the package raises SafetensorError, or NumPy's errors)
        safetensors_numpy.load(data)
    with pytest.raises(CheckpointError):
        read_safetensors(corpus[case.name])


@pytest.mark.parametrize(
    "arrays",
    [
        {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]), "c": np.int8(3)},
        {"empty": np.zeros((0, 4), np.float16), "wide": np.zeros((2**40, 0), np.float32), "x": np.ones(1, np.int64)},
        {},
    ],
    ids=["mixed", "empty-tensors", "no-tensors"],
)
def test_the_safetensors_package_accepts_what_we_accept(tmp_path, arrays):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = write_safetensors(tmp_path / "good.safetensors", arrays)
    theirs, ours = safetensors_numpy.load(path.read_bytes()), read_safetensors(path, widen_half=False)
    assert list(ours) == list(arrays) and set(theirs) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(ours[name], array)
        np.testing.assert_array_equal(theirs[name], array)
        assert ours[name].dtype == theirs[name].dtype == np.asarray(array).dtype


# ---- the command line --------------------------------------------------------------------------------
def _cli_cases() -> list:
    return [
        pytest.param(case, reader, command, id=f"{case.name}-{command.replace(' ', '')}")
        for case in CASES
        for reader in case.readers
        for command in _commands(reader, Path("x"), Path("out"))
    ]


@pytest.mark.parametrize(("case", "reader", "command"), _cli_cases())
def test_every_command_that_reads_the_file_says_one_line_and_exits_2(corpus, tmp_path, capfd, case, reader, command):
    path, out = corpus[case.name], _out_folder(tmp_path)
    before = _snapshot(out)
    code = cli.main(_commands(reader, path, out)[command])
    captured = capfd.readouterr()
    assert code == 2, captured.err
    _check_one_line(captured.err, command, case, path)
    assert _snapshot(out) == before, "the command wrote into --out"
    _check_nothing_ran(corpus)


# the real command, in processes of their own, for one file of each kind (every file goes through
# cli.main above; a process costs a second, so these run side by side)
PROCESS_CASES = [
    case
    for case in CASES
    if case.name
    in (
        "fifo",
        "folder",
        "zero_device",
        "pth_os_system",
        "pth_stride0_view",
        "pth_zip_bomb",
        "npz_object_array",
        "npz_member_not_npy_data",
        "st_overlap",
        "st_shape_2_64",
        "ckpt_pretrained_path",
        "ckpt_embed_dim_1e7",
        "ckpt_deep_metadata",
    )
]


@pytest.fixture(scope="module")
def process_results(corpus, tmp_path_factory) -> dict:
    """name -> (command, out folder, its snapshot before, CompletedProcess) of `python -m scratchvit`
    reading each PROCESS_CASES file with the first command of its reader; a hang times out."""

    def run(case):
        out = _out_folder(tmp_path_factory.mktemp(case.name))
        command, argv = next(iter(_commands(case.readers[0], corpus[case.name], out).items()))
        before = _snapshot(out)
        result = subprocess.run(
            [sys.executable, "-m", "scratchvit", *argv], capture_output=True, text=True, timeout=120, cwd=out.parent
        )
        return case.name, (command, out, before, result)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, PROCESS_CASES))


@pytest.mark.parametrize("case", PROCESS_CASES, ids=lambda case: case.name)
def test_python_m_scratchvit_says_one_line_and_exits_2(corpus, process_results, case):
    command, out, before, result = process_results[case.name]
    assert result.returncode == 2, f"{command}: exit code {result.returncode}\n{result.stdout}\n{result.stderr}"
    _check_one_line(result.stderr, command, case, corpus[case.name])
    assert _snapshot(out) == before
    _check_nothing_ran(corpus)
