"""Bad arguments, as a new user or an attacker gives them: each ends with exit code 2 and exactly one
line on stderr naming the argument, what was expected and what came; no traceback; nothing
written or changed in --out. Most run through `scratchvit.app.cli.main` in this process, a few as
a real `python -m scratchvit` process. Images of a non-float dtype are refused naming the argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scratchvit as sv
from scratchvit.app import cli
from scratchvit.data import ArrayDataset, DataLoader

ROOT = Path(__file__).resolve().parents[2]
TINY_VIT = ["--model", "vit_tiny_patch16_224", "--patch-size", 4, "--embed-dim", 16, "--depth", 1, "--num-heads", 2]
TRAIN = ["train", *TINY_VIT, "--data", "digits", "--epochs", 1, "--no-progress"]

# (arguments, the argument the message names, what it must say)
CASES = [
    (["train", "--model", "vit_tiny_patch16_224", "--embed-dim", 0], "--embed-dim", "expected an int >= 1, got 0"),
    ([*TRAIN, "--seed", -1], "--seed", "expected an int >= 0, got -1"),
    ([*TRAIN, "--epochs", 0], "--epochs", "expected an int >= 1, got 0"),
    ([*TRAIN, "--batch-size", "-4"], "--batch-size", "expected an int >= 1, got -4"),
    ([*TRAIN, "--img-size", 0], "--img-size", "expected an int >= 1, got 0"),
    ([*TRAIN, "--lr", "inf"], "--lr", "expected a finite number > 0, got inf"),
    ([*TRAIN, "--lr=-1e-3"], "--lr", "expected a finite number > 0, got -1e-3"),
    ([*TRAIN, "--weight-decay", "nan"], "--weight-decay", "expected a finite number >= 0, got nan"),
    ([*TRAIN, "--label-smoothing", 2], "--label-smoothing", "expected a number in [0, 1], got 2"),
    ([*TRAIN, "--clip-grad", 0], "--clip-grad", "expected a finite number > 0, got 0"),
    ([*TRAIN, "--warmup-epochs=-inf"], "--warmup-epochs", "expected a finite number >= 0, got -inf"),
    (
        ["train", "--model", "vit_tiny_patch16_224", "--model-arg", "depth=abc"],
        "--model-arg",
        "depth takes an int for VisionTransformer, got 'abc' (str)",
    ),
    ([*TRAIN, "--model-arg", "depth=3"], "--model-arg", "depth= gives a value that was given already (1)"),
    ([*TRAIN, "--model-arg", "drop_path_rate=[0.1]"], "--model-arg", "drop_path_rate takes a number"),
    ([*TRAIN, "--model-arg", "qkv_bias=1"], "--model-arg", "qkv_bias takes True or False for VisionTransformer"),
    (["pretrain", "--blr", "inf"], "--blr", "expected a finite number > 0, got inf"),
    (["pretrain", "--mask-ratio", 1], "--mask-ratio", "expected a number in [0, 1), got 1"),
    (["finetune", "--checkpoint", "x.npz", "--drop-path", "nan"], "--drop-path", "expected a number in [0, 1)"),
    (["finetune", "--checkpoint", "x.npz", "--min-lr", "-1"], "--min-lr", "expected a finite number >= 0"),
    (["demo", "--epochs", 0], "--epochs", "expected an int >= 1, got 0"),
    (["bench", "vit_digits_b64", "--steps", 0], "--steps", "expected an int >= 1, got 0"),
    (["eval", "--checkpoint", "x.npz", "--batch-size", 0], "--batch-size", "expected an int >= 1, got 0"),
]


def snapshot(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def out(tmp_path) -> Path:
    """An --out that already holds a file of the user's, which must stay as it is."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    return folder


def assert_refused(code: int, stdout: str, stderr: str, command: str, argument: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr and stdout == "", (stdout, stderr)
    assert lines[0].startswith(f"scratchvit {command}: error: argument {argument}"), lines[0]
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("argv, argument, expected", CASES, ids=[" ".join(map(str, case[0][-2:])) for case in CASES])
def test_a_bad_argument_is_one_line_and_exit_code_2(argv, argument, expected, out, capsys):
    before = snapshot(out)
    code = cli.main([str(item) for item in [*argv, "--out", out]])
    captured = capsys.readouterr()
    assert_refused(code, captured.out, captured.err, argv[0], argument, expected)
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "argv, argument, expected",
    [CASES[0], CASES[5], CASES[11]],
    ids=["embed-dim 0", "lr inf", "model-arg depth=abc"],
)
def test_a_bad_argument_in_a_real_process(argv, argument, expected, out):
    completed = subprocess.run(
        [sys.executable, "-m", "scratchvit", *map(str, argv), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_refused(completed.returncode, completed.stdout, completed.stderr, argv[0], argument, expected)
    assert snapshot(out) == {Path("notes.txt"): b"mine\n"}


def test_eval_of_pretrained_weights_builds_the_model_at_the_data_sets_size_or_says_why_not(out, capsys):
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the demo extra)")
    weights = out.parent / "weights.npz"
    weights.write_bytes(b"not read: the model cannot take 8x8 images")
    before = snapshot(out)
    code = cli.main(
        ["eval", "--model", "vit_base_patch16_224", "--pretrained", str(weights), "--data", "digits", "--out", str(out)]
    )
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and captured.out == ""
    assert lines[0] == (
        "scratchvit eval: error: vit_base_patch16_224 at the data set's image size 8: img_size 8 is not "
        "divisible by patch_size 16 (give --img-size or --patch-size to fit)"
    )
    assert snapshot(out) == before


def test_a_resume_or_overwrite_flag_is_not_needed_to_refuse_an_occupied_out(out, capsys):
    (out / "checkpoint.npz").write_bytes(b"another run's")
    before = snapshot(out)
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn (the demo extra)")
    code = cli.main([str(item) for item in [*TRAIN, "--out", out]])
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.strip().splitlines()) == 1
    assert f"--out {out} already holds another run (checkpoint.npz)" in captured.err
    assert snapshot(out) == before


class _Images:
    """A data set read sample by sample whose images have `dtype`."""

    classes = ["a", "b"]

    def __init__(self, dtype):
        self.dtype = dtype

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return np.full((1, 2, 2), 200, self.dtype), index % 2


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, object])
def test_images_of_an_integer_or_object_dtype_are_refused_naming_the_argument(dtype):
    pixels = np.full((4, 1, 2, 2), 200).astype(dtype)
    with pytest.raises(
        TypeError, match=f"ArrayDataset: images must be float32 pixels in \\[0, 1\\], got dtype {np.dtype(dtype)}"
    ):
        ArrayDataset(pixels, np.zeros(4, np.int64), ["a"])
    with pytest.raises(TypeError, match=r"the image of dataset\[0\] must be floating-point pixels .* got dtype"):
        next(iter(DataLoader(_Images(dtype), 2)))
    in_memory = _Images(dtype)
    in_memory.images, in_memory.labels = pixels, np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="dataset.images must be floating-point pixels"):
        DataLoader(in_memory, 2)


def test_float64_images_are_converted_to_float32_as_documented():
    images, _ = next(iter(DataLoader(_Images(np.float64), 2)))
    assert images.dtype == np.float32 and float(images.data[0, 0, 0, 0]) == 200.0


# ---- model keywords and images, where they enter the model --------------------------------------
@pytest.mark.parametrize(
    ("name", "keywords", "message"),
    [
        ("vit_tiny_patch16_224", {"embed_dim": 0}, "VisionTransformer: embed_dim must be a positive int, got 0"),
        ("vit_tiny_patch16_224", {"mlp_ratio": 0.0}, "VisionTransformer: mlp_ratio must be a finite number > 0"),
        ("mae_vit_base_patch16", {"num_heads": 0}, "MaskedAutoencoderViT: num_heads must be a positive int, got 0"),
        ("mae_vit_base_patch16", {"decoder_depth": -1}, "MaskedAutoencoderViT: decoder_depth must be an int >= 0"),
        ("swin_tiny_patch4_window7_224", {"embed_dim": 0}, "SwinTransformer: embed_dim must be a positive int"),
        ("swin_tiny_patch4_window7_224", {"num_heads": 3}, "SwinTransformer: num_heads must be a sequence"),
        (
            "swin_tiny_patch4_window7_224",
            {"depths": (2, -1, 2, 2)},
            r"SwinTransformer: depths\[1\] must be an int >= 0",
        ),
    ],
)
def test_bad_model_keywords_are_refused_naming_them(name, keywords, message):
    with pytest.raises(ValueError, match=message):
        sv.create_model(name, img_size=32, **keywords)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, object])
def test_integer_or_object_images_are_refused_where_they_enter_the_model(dtype):
    model = sv.create_model("vit_tiny_patch16_224", img_size=16, patch_size=8, depth=1)
    with pytest.raises(TypeError, match=rf"images must be floating point, got dtype {np.dtype(dtype)}"):
        model(np.zeros((1, 3, 16, 16), dtype))
