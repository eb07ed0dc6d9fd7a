"""scratchvit's own checkpoints: round trips in both containers, rebuilding the model from its
stored name, bit-exact resume in a fresh process, atomic writes that survive a crash, and a clear
CheckpointError naming the file for every kind of bad file."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import backend, nn
from scratchvit.io import Checkpoint, CheckpointError, read_checkpoint, save_checkpoint, write_safetensors
from scratchvit.io import checkpoint as checkpoint_module
from scratchvit.io import files as files_module
from scratchvit.models import create_model, load_checkpoint, registry
from scratchvit.train import AdamW, CosineSchedule

REPO_ROOT = Path(sv.__file__).resolve().parent.parent


@pytest.fixture(params=[".npz", ".safetensors"])
def suffix(request):
    """Each container format (both NumPy alone)."""
    return request.param


@pytest.fixture
def no_safetensors(monkeypatch):
    """Make `import safetensors` fail, as on a machine without the package."""
    monkeypatch.setitem(sys.modules, "safetensors", None)


class TinyNet(nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.fc = nn.Linear(2, width)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 2)
        self.register_buffer("index", sv.Tensor(np.arange(4, dtype=np.int64)))

    def forward(self, x):
        return self.head(self.norm(self.fc(x)))


def trained(width: int = 3, steps: int = 3):
    """A TinyNet, an AdamW with state after `steps` steps, and a schedule at that position."""
    sv.manual_seed(0)
    model = TinyNet(width)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    schedule = CosineSchedule(1e-2, total_steps=10, warmup_steps=2)
    x = sv.Tensor(np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32))
    for _ in range(steps):
        schedule.step(optimizer)
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()
    return model, optimizer, schedule


def test_round_trip_restores_model_optimizer_schedule_and_counters(tmp_path, suffix):
    model, optimizer, schedule = trained()
    path = save_checkpoint(
        tmp_path / f"ckpt{suffix}",
        model,
        optimizer,
        schedule,
        epoch=4,
        step=3,
        extra={"history": [{"epoch": 4, "loss": 0.5}], "note": "hi"},
    )
    assert path == tmp_path / f"ckpt{suffix}"
    stored = read_checkpoint(path)
    assert isinstance(stored, Checkpoint) and stored.model is None
    assert (stored.epoch, stored.step, stored.model_class) == (4, 3, "TinyNet")
    assert stored.extra == {"history": [{"epoch": 4, "loss": 0.5}], "note": "hi"}
    assert stored.schedule == {"step_count": 3}
    assert stored.rng_state == backend.get_rng_state()
    for name, array in model.state_dict().items():
        assert stored.state_dict[name].dtype == array.dtype
        np.testing.assert_array_equal(stored.state_dict[name], array, err_msg=name)

    fresh_model = TinyNet()
    fresh_optimizer = AdamW(fresh_model.parameters(), lr=1e-2)
    fresh_schedule = CosineSchedule(1e-2, total_steps=10, warmup_steps=2)
    loaded = load_checkpoint(path, fresh_model, fresh_optimizer, fresh_schedule)
    assert loaded.model is fresh_model and fresh_schedule.step_count == 3
    original, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert restored["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]
    for before, after in zip(original["state"], restored["state"], strict=True):
        assert before["step"] == after["step"] == 3
        np.testing.assert_array_equal(before["exp_avg"], after["exp_avg"])
        np.testing.assert_array_equal(before["exp_avg_sq"], after["exp_avg_sq"])


def test_a_path_without_suffix_gets_safetensors(tmp_path):
    model, _, _ = trained(steps=0)
    assert save_checkpoint(tmp_path / "a", model).name == "a.safetensors"


def test_another_suffix_is_a_clear_error(tmp_path):
    model, _, _ = trained(steps=0)
    with pytest.raises(ValueError, match=r"must end in \.safetensors or \.npz"):
        save_checkpoint(tmp_path / "ckpt.pt", model)
    assert list(tmp_path.iterdir()) == []


def test_safetensors_checkpoints_need_no_package(tmp_path, no_safetensors):
    model, optimizer, _ = trained()
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, optimizer)
    loaded = read_checkpoint(path)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict[name], array)


def test_float16_arrays_come_back_as_float16(tmp_path, suffix):
    model = TinyNet()
    model.register_buffer("half", sv.Tensor(np.array([0.5, -1.25], np.float16)))
    loaded = read_checkpoint(save_checkpoint(tmp_path / f"ckpt{suffix}", model))
    assert loaded.state_dict["half"].dtype == np.float16


def tiny_test_net(**kwargs):
    return TinyNet(**kwargs)


def test_load_checkpoint_rebuilds_a_registered_model_from_its_name(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._MODELS, "tiny_test_net", tiny_test_net)
    model = create_model("tiny_test_net", width=5)
    path = save_checkpoint(tmp_path / "model.npz", model, rng_state=False)
    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, TinyNet) and loaded.model.fc.out_features == 5
    assert (loaded.model_name, loaded.model_kwargs, loaded.rng_state) == ("tiny_test_net", {"width": 5}, None)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.model.state_dict()[name], array, err_msg=name)


def test_load_checkpoint_rebuilds_a_vision_transformer(tmp_path):
    model = sv.create_model(
        "vit_tiny_patch16_224", img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=3
    )
    path = save_checkpoint(tmp_path / "vit.npz", model)
    rebuilt = load_checkpoint(path).model
    assert type(rebuilt) is type(model) and rebuilt.model_kwargs == model.model_kwargs
    images = sv.Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    model.eval(), rebuilt.eval()
    np.testing.assert_array_equal(rebuilt(images).data, model(images).data)


def test_a_model_without_a_name_needs_model_given(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    with pytest.raises(CheckpointError, match="holds no model name .*TinyNet.*pass model="):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(path, TinyNet(), optimizer=AdamW(TinyNet().parameters()))


def test_restore_rng_replays_the_random_numbers(tmp_path):
    sv.manual_seed(3)
    backend.device_rng(backend.CPU).random(5)
    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    expected = backend.device_rng(backend.CPU).random(4), backend.host_rng().random(4)
    sv.manual_seed(1234)
    load_checkpoint(path, TinyNet(), restore_rng=True)
    np.testing.assert_array_equal(backend.device_rng(backend.CPU).random(4), expected[0])
    np.testing.assert_array_equal(backend.host_rng().random(4), expected[1])


# ---- resume in a fresh process is bit-exact --------------------------------------------------
RESUME_SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np

    import scratchvit as sv
    from scratchvit import nn
    from scratchvit import ops as F
    from scratchvit.train import SGD, AdamW, CosineSchedule, fit, param_groups_weight_decay


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 16)
            self.drop = nn.Dropout(0.3)  # its masks come from the RNG: the resume must restore it
            self.fc2 = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc2(self.drop(F.gelu(self.fc1(x))))


    class Loader:
        def __init__(self):
            rng = np.random.default_rng(7)
            self.x = rng.standard_normal((40, 4)).astype(np.float32)
            self.y = rng.integers(0, 3, 40)
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return 5

        def __iter__(self):
            order = np.random.default_rng((0, self.epoch)).permutation(40)
            self.epoch += 1
            for start in range(0, 40, 8):
                yield sv.Tensor(self.x[order[start:start + 8]]), self.y[order[start:start + 8]]


    mode, optimizer_name, checkpoint, out = sys.argv[1:5]
    sv.manual_seed(123 if mode == "resume" else 0)  # the resumed run starts from other weights and RNG
    model = Net()
    groups = param_groups_weight_decay(model, weight_decay=0.05)
    if optimizer_name == "adamw":
        optimizer = AdamW(groups, lr=1e-2)
    else:
        optimizer = SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
    schedule = CosineSchedule(optimizer.defaults["lr"], total_steps=10, warmup_steps=3)
    common = dict(schedule=schedule, label_smoothing=0.1, clip_grad=1.0, progress=False)
    if mode == "straight":
        fit(model, Loader(), optimizer, epochs=2, **common)
    elif mode == "first":
        fit(model, Loader(), optimizer, epochs=1, checkpoint=checkpoint, **common)
    else:
        fit(model, Loader(), optimizer, epochs=2, resume=checkpoint, **common)
    np.savez(out, **model.state_dict())
    """
)


def run_fresh_python(script: Path, *args) -> None:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("suffix, optimizer_name", [(".npz", "adamw"), (".npz", "sgd"), (".safetensors", "adamw")])
def test_resume_in_a_fresh_process_is_bit_identical(tmp_path, suffix, optimizer_name):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    checkpoint = tmp_path / f"epoch{suffix}"
    run_fresh_python(script, "straight", optimizer_name, checkpoint, tmp_path / "straight.npz")  # 2N steps at once
    run_fresh_python(script, "first", optimizer_name, checkpoint, tmp_path / "first.npz")  # N steps, save
    run_fresh_python(script, "resume", optimizer_name, checkpoint, tmp_path / "resumed.npz")  # load, N more
    with (
        np.load(tmp_path / "straight.npz") as straight,
        np.load(tmp_path / "resumed.npz") as resumed,
        np.load(tmp_path / "first.npz") as first,
    ):
        assert sorted(straight.files) == sorted(resumed.files)
        for name in straight.files:
            np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
        assert not np.array_equal(first["fc1.weight"], straight["fc1.weight"])  # the second half did train


# ---- atomic writes ---------------------------------------------------------------------------
def test_a_crash_before_the_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.npz", TinyNet(), epoch=0)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(files_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, TinyNet(width=7), epoch=1)
    monkeypatch.undo()
    assert path.read_bytes() == before and read_checkpoint(path).epoch == 0
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]


def test_a_crash_half_way_through_writing_leaves_no_file(tmp_path, monkeypatch):
    def write_half_then_crash(file, arrays, metadata_json):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # even an interrupt removes the temporary file

    monkeypatch.setattr(checkpoint_module, "_write_npz", write_half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last.npz", TinyNet())
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_overwrites_atomically_and_is_readable_by_others(tmp_path):
    path = save_checkpoint(tmp_path / "last.npz", TinyNet(), epoch=0)
    save_checkpoint(path, TinyNet(), epoch=1)
    assert read_checkpoint(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    if os.name == "posix":
        assert path.stat().st_mode & 0o044 == 0o044


# ---- bad files: each a CheckpointError naming the file ---------------------------------------
def expect_error(path: Path, pattern: str):
    with pytest.raises(CheckpointError, match=pattern) as caught:
        load_checkpoint(path, TinyNet())
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    return caught.value


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    expect_error(path, r"empty \(0 bytes\)")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such checkpoint file")


@pytest.mark.parametrize("keep", [0.5, 20, -10])
def test_truncated_file(tmp_path, suffix, keep):
    path = save_checkpoint(tmp_path / f"ckpt{suffix}", *trained()[:2])
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    expect_error(path, "truncated")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(b"\x00\x01" + np.random.default_rng(0).bytes(998))
    expect_error(path, "not a checkpoint: neither an .npz")


def test_a_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hello")
    expect_error(path, "not a scratchvit checkpoint: .*no '__scratchvit__' entry .*hello.txt")


def test_a_plain_npz_of_weights_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, **{"fc.weight": np.zeros((3, 2), np.float32)})
    expect_error(path, "not a scratchvit checkpoint: .*fc.weight")


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = write_safetensors(tmp_path / "weights.safetensors", {"fc.weight": np.zeros((3, 2), np.float32)})
    expect_error(path, "not a scratchvit checkpoint: a safetensors file without 'scratchvit'")


def rewrite_npz(path: Path, change) -> None:
    """Rewrite a checkpoint .npz with change(members) applied to its {name: array} members."""
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    change(members)
    np.savez(path, **members)


def test_an_unknown_dtype(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    rewrite_npz(
        path, lambda members: members.update({"model.fc.weight": members["model.fc.weight"].astype(np.complex64)})
    )
    expect_error(path, "array 'model.fc.weight' has the unknown dtype complex64")


def test_damaged_metadata(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    rewrite_npz(path, lambda members: members.update({"__scratchvit__": np.array("{not json")}))
    expect_error(path, "metadata is not valid JSON")

    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    rewrite_npz(path, lambda members: members.pop("model.fc.bias"))
    expect_error(path, "names the array 'model.fc.bias', which the file lacks")

    def newer(members):
        metadata = json.loads(str(members["__scratchvit__"]))
        members["__scratchvit__"] = np.array(json.dumps(dict(metadata, version=99)))

    path = save_checkpoint(tmp_path / "ckpt.npz", TinyNet())
    rewrite_npz(path, newer)
    expect_error(path, "format version 99; this scratchvit reads versions up to 1")


def test_a_checkpoint_of_another_model_names_the_keys_and_shapes(tmp_path, suffix):
    path = save_checkpoint(tmp_path / f"ckpt{suffix}", TinyNet(width=3))
    with pytest.raises(CheckpointError, match="this checkpoint of TinyNet does not fit the TinyNet given") as caught:
        load_checkpoint(path, TinyNet(width=5))
    assert str(path) in str(caught.value)
    for wrong in ["fc.weight: checkpoint (3, 2) vs model (5, 2)", "head.weight: checkpoint (2, 3) vs model (2, 5)"]:
        assert wrong in str(caught.value)
    with pytest.raises(CheckpointError, match="missing keys .*weight.*unexpected keys .*fc.weight"):
        load_checkpoint(path, nn.Linear(2, 2))


def test_an_optimizer_of_another_model_is_named(tmp_path):
    model, optimizer, _ = trained()
    path = save_checkpoint(tmp_path / "ckpt.npz", model, optimizer)
    other = TinyNet()
    with pytest.raises(CheckpointError, match=f"{path}: its optimizer state does not fit"):
        load_checkpoint(path, other, AdamW(list(other.parameters())[:2]))


def test_sv_load_checkpoint_rebuilds_the_model_alone(tmp_path):
    """The public API: sv.save_checkpoint then sv.load_checkpoint(path) with nothing else."""
    import scratchvit as sv

    sv.manual_seed(0)
    model = sv.create_model(
        "vit_tiny_patch16_224", img_size=8, patch_size=4, embed_dim=12, depth=1, num_heads=2, num_classes=3
    )
    path = sv.save_checkpoint(tmp_path / "tiny.npz", model, epoch=0, step=0)
    rebuilt = sv.load_checkpoint(path).model
    assert type(rebuilt) is type(model) and rebuilt.model_name == "vit_tiny_patch16_224"
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
