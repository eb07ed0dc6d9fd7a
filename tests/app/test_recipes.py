"""The recipes behind the training commands, on tiny models and synthetic MNIST files (NumPy alone):
schedules, data fitted to the model, pretrained weights with a new head, the MAE chain (pre-train,
probe, fine-tune) rebuilt from checkpoints, evaluation, the benchmark, and the op profiler."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import scratchvit as sv
from scratchvit.app import recipes
from scratchvit.autograd import Function
from scratchvit.check.profile import profile_ops
from scratchvit.data import ArrayDataset, load_dataset
from scratchvit.io import CheckpointError, read_checkpoint
from scratchvit.models import load_checkpoint
from scratchvit.models.mae import MaskedAutoencoderViT
from scratchvit.ops.products import LinearFn
from scratchvit.train import CosineSchedule, OneCycleSchedule, read_metrics

TINY_VIT = {"patch_size": 7, "embed_dim": 16, "depth": 1, "num_heads": 2}  # 28x28 MNIST: a 4x4 grid of patches
TINY_MAE = {**TINY_VIT, "decoder_embed_dim": 8, "decoder_depth": 1, "decoder_num_heads": 2}


def _idx(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder: Path, train_count: int = 48, test_count: int = 24, seed: int = 0) -> Path:
    """The four MNIST idx files (gzipped) with random 28x28 digits whose brightness says the label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for stem, count in (("train", train_count), ("t10k", test_count)):
        labels = np.arange(count, dtype=np.uint8) % 10
        pixels = rng.integers(0, 40, (count, 28, 28)) + 20 * labels[:, None, None]
        (folder / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(pixels.astype(np.uint8))))
        (folder / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return folder


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def mae_checkpoint(mnist, tmp_path_factory) -> Path:
    """A tiny MAE pre-trained for one epoch on the synthetic MNIST."""
    out = tmp_path_factory.mktemp("mae")
    run = recipes.pretrain_mae(
        "mae_vit_base_patch16",
        "mnist",
        data_root=mnist,
        out_dir=out,
        epochs=1,
        batch_size=16,
        model_kwargs=TINY_MAE,
        progress=False,
    )
    return run["checkpoint"]


# ---- schedules ------------------------------------------------------------------------------
def test_make_schedule_warms_up_for_a_tenth_of_the_epochs_by_default():
    schedule = recipes.make_schedule("cosine", 1e-3, epochs=10, steps_per_epoch=5)
    assert isinstance(schedule, CosineSchedule) and schedule.warmup_steps == 5 and schedule.total_steps == 50
    assert recipes.make_schedule("cosine", 1e-3, epochs=4, steps_per_epoch=5, warmup_epochs=2).warmup_steps == 10
    onecycle = recipes.make_schedule("onecycle", 1e-3, epochs=4, steps_per_epoch=5, warmup_epochs=1)
    assert isinstance(onecycle, OneCycleSchedule) and onecycle.peak_step == pytest.approx(0.25 * 20 - 1)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0 and less than epochs 2, got 2"):
        recipes.make_schedule("cosine", 1e-3, epochs=2, steps_per_epoch=5, warmup_epochs=2)
    with pytest.raises(ValueError, match="schedule must be one of cosine, onecycle, got 'step'"):
        recipes.make_schedule("step", 1e-3, epochs=2, steps_per_epoch=5)


# ---- data fitted to the model -----------------------------------------------------------------
def test_grey_images_are_repeated_to_the_model_channels_and_resized_to_its_size():
    dataset = ArrayDataset(np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32), np.arange(4), "abcd")
    model = sv.create_model(
        "vit_tiny_patch16_224",
        img_size=16,
        patch_size=4,
        in_chans=3,
        **{"embed_dim": 16, "depth": 1, "num_heads": 2, "num_classes": 4},
    )
    loader = recipes._loader(dataset, model, batch_size=2, device="cpu")
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 16, 16) and list(labels) == [0, 1]
    np.testing.assert_array_equal(images.numpy()[:, 0], images.numpy()[:, 2])
    wrong = ArrayDataset(np.zeros((2, 2, 8, 8), np.float32), np.arange(2), "ab")
    with pytest.raises(ValueError, match="the data set's images have 2 channels but the model takes in_chans=3"):
        recipes._loader(wrong, model, batch_size=2, device="cpu")


def test_an_image_folder_is_read_at_the_model_size(tmp_path):
    image = pytest.importorskip("PIL.Image")
    for name, size in (("cat", (10, 14)), ("dog", (20, 12))):  # two sizes: they only batch once resized
        (tmp_path / name).mkdir()
        image.new("RGB", size, color=(200, 10, 10)).save(tmp_path / name / "a.png")
    dataset = load_dataset("folder", tmp_path)
    model = sv.create_model(
        "vit_tiny_patch16_224", img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=2
    )
    images, labels = next(iter(recipes._loader(dataset, model, batch_size=2, device="cpu")))
    assert images.shape == (2, 3, 8, 8) and list(labels) == [0, 1]


# ---- training a classifier --------------------------------------------------------------------
def test_train_classifier_writes_a_checkpoint_and_metrics_and_resumes(mnist, tmp_path, capsys):
    run = recipes.train_classifier(
        "vit_tiny_patch16_224",
        "mnist",
        data_root=mnist,
        out_dir=tmp_path,
        epochs=1,
        batch_size=16,
        model_kwargs=TINY_VIT,
        progress=False,
    )
    assert run["checkpoint"] == tmp_path / "checkpoint.npz" and run["checkpoint"].is_file()
    saved = read_checkpoint(run["checkpoint"])
    assert saved.model_name == "vit_tiny_patch16_224" and saved.epoch == 0
    assert saved.model_kwargs == {"num_classes": 10, "in_chans": 1, "img_size": 28, **TINY_VIT}  # from the data
    out = capsys.readouterr().out
    assert f"checkpoint: {tmp_path / 'checkpoint.npz'}" in out and f"metrics:    {tmp_path / 'metrics.jsonl'}" in out
    resumed = recipes.train_classifier(
        "vit_tiny_patch16_224",
        "mnist",
        data_root=mnist,
        out_dir=tmp_path,
        epochs=2,
        batch_size=16,
        model_kwargs=TINY_VIT,
        resume=run["checkpoint"],
        allow_config_change=True,  # epochs 1 -> 2 changes the schedule
        progress=False,
    )
    assert [record["epoch"] for record in resumed["history"]] == [0, 1]  # epoch 0 from the checkpoint, 1 trained
    epochs = [record for record in read_metrics(tmp_path / "metrics.jsonl") if record["kind"] == "epoch"]
    assert [record["epoch"] for record in epochs] == [0, 1]
    assert read_checkpoint(run["checkpoint"]).epoch == 1


def test_pretrained_weights_for_other_classes_get_a_new_head(mnist, tmp_path, capsys):
    sv.manual_seed(5)
    source = sv.create_model("vit_tiny_patch16_224", num_classes=3, in_chans=1, img_size=28, **TINY_VIT)
    np.savez(tmp_path / "weights.npz", **source.state_dict())  # plain arrays named by the state_dict keys
    run = recipes.train_classifier(
        "vit_tiny_patch16_224",
        "mnist",
        data_root=mnist,
        out_dir=tmp_path,
        epochs=1,
        batch_size=16,
        lr=0.0,
        weight_decay=0.0,
        pretrained=tmp_path / "weights.npz",
        model_kwargs=TINY_VIT,
        progress=False,
    )
    state = run["model"].state_dict()
    for name, array in source.state_dict().items():
        if not name.startswith("head."):
            np.testing.assert_array_equal(state[name], array, err_msg=name)  # lr 0: still the loaded weights
    assert state["head.weight"].shape == (10, 16)
    assert "loaded all but its 3-class head; the model has a new 10-class one" in capsys.readouterr().out
    other = sv.create_model("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28, **{**TINY_VIT, "depth": 2})
    np.savez(tmp_path / "deeper.npz", **other.state_dict())
    with pytest.raises(CheckpointError, match=r"unexpected keys \['blocks\.1\.attn\.proj\.bias'"):
        recipes.train_classifier(
            "vit_tiny_patch16_224",
            "mnist",
            data_root=mnist,
            out_dir=tmp_path,
            epochs=1,
            pretrained=tmp_path / "deeper.npz",
            model_kwargs=TINY_VIT,
            progress=False,
        )


def test_train_refuses_an_mae_and_pretrain_refuses_a_classifier(mnist, tmp_path):
    with pytest.raises(ValueError, match="mae_vit_base_patch16 is a masked autoencoder"):
        recipes.train_classifier("mae_vit_base_patch16", "mnist", data_root=mnist, out_dir=tmp_path)
    with pytest.raises(ValueError, match="pretrain trains a masked autoencoder"):
        recipes.pretrain_mae("vit_tiny_patch16_224", "mnist", data_root=mnist, out_dir=tmp_path)


# ---- the MAE chain ----------------------------------------------------------------------------
def test_pretrain_writes_an_mae_checkpoint_with_the_data_sizes(mae_checkpoint):
    saved = read_checkpoint(mae_checkpoint)
    assert saved.model_name == "mae_vit_base_patch16_dec512d8b" and saved.model_class == "MaskedAutoencoderViT"
    assert saved.model_kwargs == {"in_chans": 1, "img_size": 28, "norm_pix_loss": False, **TINY_MAE}
    lines = read_metrics(Path(mae_checkpoint).parent / "metrics.jsonl")
    assert lines[-1]["kind"] == "epoch" and np.isfinite(lines[-1]["train_loss"]) and "eval_loss" not in lines[-1]


def test_linear_probe_trains_the_head_only_and_its_checkpoint_rebuilds(mae_checkpoint, mnist, tmp_path):
    mae = load_checkpoint(mae_checkpoint).model
    run = recipes.linear_probe(
        mae_checkpoint, "mnist", data_root=mnist, out_dir=tmp_path, epochs=1, batch_size=8, progress=False
    )
    model = run["model"]
    assert sorted(name for name, p in model.named_parameters() if p.requires_grad) == ["head.1.bias", "head.1.weight"]
    for name, array in mae.state_dict().items():
        if name in model.state_dict():
            np.testing.assert_array_equal(model.state_dict()[name], array, err_msg=name)  # frozen encoder
    assert int(model.state_dict()["head.0.num_batches_tracked"]) == 48 // 8  # one epoch of 48 images, batch 8
    rebuilt = load_checkpoint(run["checkpoint"]).model
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[name], array, err_msg=name)
    results = recipes.evaluate_model("mnist", checkpoint=run["checkpoint"], data_root=mnist, out_dir=tmp_path)
    assert results["acc1"] == pytest.approx(run["history"][-1]["eval_acc1"])
    assert json.loads((tmp_path / "eval.json").read_text())["acc1"] == pytest.approx(results["acc1"])


def test_fine_tune_uses_layer_decay_and_drop_path_and_rebuilds(mae_checkpoint, mnist, tmp_path):
    run = recipes.fine_tune(
        mae_checkpoint,
        "mnist",
        data_root=mnist,
        out_dir=tmp_path,
        epochs=1,
        batch_size=16,
        drop_path=0.2,
        progress=False,
    )
    model = run["model"]
    assert model.global_pool == "avg" and model.model_kwargs["drop_path_rate"] == 0.2  # one block: its rate is 0
    assert all(p.requires_grad for p in model.parameters())
    saved = read_checkpoint(run["checkpoint"])
    lr_scales = sorted({group["lr_scale"] for group in saved.optimizer["param_groups"]})
    assert lr_scales == pytest.approx([0.75**2, 0.75, 1.0])  # patch embed, block 0, head (depth 1)
    rebuilt = load_checkpoint(run["checkpoint"]).model
    assert type(rebuilt) is type(model) and rebuilt.global_pool == "avg"
    images = sv.Tensor(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    np.testing.assert_allclose(rebuilt.eval()(images).numpy(), model.eval()(images).numpy(), rtol=1e-6, atol=1e-6)


def test_probe_and_fine_tune_need_an_mae_checkpoint(mnist, tmp_path):
    run = recipes.train_classifier(
        "vit_tiny_patch16_224",
        "mnist",
        data_root=mnist,
        out_dir=tmp_path,
        epochs=1,
        batch_size=16,
        model_kwargs=TINY_VIT,
        progress=False,
    )
    with pytest.raises(ValueError, match="holds a VisionTransformer; expected an MAE"):
        recipes.fine_tune(run["checkpoint"], "mnist", data_root=mnist, out_dir=tmp_path)
    mae = sv.create_model("mae_vit_base_patch16", in_chans=1, img_size=28, norm_eps=1e-5, **TINY_MAE)
    assert isinstance(mae, MaskedAutoencoderViT)
    with pytest.raises(ValueError, match="built with norm_eps=1e-05; its classifier needs 1e-6"):
        recipes._classifier_from_mae(mae, 10, "token")


def test_evaluate_a_registered_model_with_pretrained_weights(mnist, tmp_path):
    sv.manual_seed(1)
    model = sv.create_model("vit_tiny_patch16_224", num_classes=10, in_chans=1, img_size=28, **TINY_VIT)
    np.savez(tmp_path / "weights.npz", **model.state_dict())
    kwargs = {"in_chans": 1, "img_size": 28, **TINY_VIT}
    results = recipes.evaluate_model(
        "mnist",
        model_name="vit_tiny_patch16_224",
        pretrained=tmp_path / "weights.npz",
        model_kwargs=kwargs,
        data_root=mnist,
    )
    assert set(results) == {"loss", "acc1", "acc5"} and 0 <= results["acc1"] <= results["acc5"] <= 100
    with pytest.raises(ValueError, match="give exactly one"):
        recipes.evaluate_model("mnist", data_root=mnist)
    three = sv.create_model("vit_tiny_patch16_224", num_classes=3, in_chans=1, img_size=28, **TINY_VIT)
    np.savez(tmp_path / "three.npz", **three.state_dict())
    with pytest.raises(ValueError, match="the model has 3 classes but the data set has 10"):
        recipes.evaluate_model(
            "mnist",
            model_name="vit_tiny_patch16_224",
            pretrained=tmp_path / "three.npz",
            model_kwargs={**kwargs, "num_classes": 3},
            data_root=mnist,
        )


# ---- benchmark and profile ----------------------------------------------------------------------
def test_benchmark_times_the_phases_and_profiles_the_ops(tmp_path, capsys):
    result = recipes.benchmark("vit_digits_b64", steps=2, warmup=0, profile=True, out_dir=tmp_path)
    assert len(result["times_s"]) == 2 and result["median_s"] > 0
    assert set(result["phases_s"]) == {"forward", "backward", "optimizer"}
    families = result["profile"]["families"]
    assert {"products", "attention", "norm", "activation", "loss"} <= set(families)
    assert families["products"]["forward"] > 0 and families["products"]["backward"] > 0
    linear_calls = result["profile"]["ops"]["products.LinearFn"]["calls"]
    assert linear_calls == 4 * 4 + 2  # qkv, proj, fc1, fc2 in each of 4 blocks; the patch embedding, the head
    # which implementation ran: the fast tier's kernel, or the textbook op where none is registered
    assert result["profile"]["ops"]["products.LinearFn"]["ran"] == "LinearOnThreads"
    assert result["profile"]["ops"]["vision.Rearrange"]["ran"] == "textbook"
    out = capsys.readouterr().out
    assert "vit_digits_b64: vit_tiny_patch16_224, batch 64, on cpu: median step" in out and "outside ops" in out
    assert json.loads((tmp_path / "bench.json").read_text())["workload"] == "vit_digits_b64"
    with pytest.raises(ValueError, match="unknown workload 'nope'; known: vit_s16_224_b8"):
        recipes.benchmark("nope")


def test_profile_ops_wraps_only_inside_the_block_and_counts_nested_calls_once():
    original = LinearFn.__dict__["forward"]

    class Doubled(LinearFn):  # a Function whose forward calls its parent's, itself timed
        def forward(self, x, weight, bias):
            return 2 * super().forward(x, weight, bias)

    x = sv.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    weight = sv.Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    with profile_ops() as profile:
        assert LinearFn.__dict__["forward"] is not original
        Doubled.apply(x, weight, None).sum().backward()
        with pytest.raises(RuntimeError, match="profiles do not nest"), profile_ops():
            pass
    assert LinearFn.__dict__["forward"] is original and "forward" in Doubled.__dict__
    assert profile.calls[("test_recipes", "Doubled", "forward")] == 1
    assert ("products", "LinearFn", "forward") not in profile.calls  # inside Doubled's forward: counted there
    assert set(profile.by_family()) == {"test_recipes", "reduce"}
    assert profile.total() == pytest.approx(sum(profile.seconds.values()))
    assert all(
        cls.__dict__.get("forward") is None or not hasattr(cls.__dict__["forward"], "__wrapped__")
        for cls in Function.__subclasses__()
    )
