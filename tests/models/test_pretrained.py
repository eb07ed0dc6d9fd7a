"""Foreign weights into scratchvit models (scratchvit.models.pretrained, key_maps): every fixture of
tools/make_checkpoints.py -- timm / official MAE / official Swin models saved by torch.save, as
safetensors and as JAX .npz -- loaded with `sv.create_model(name, pretrained=path, **kwargs)`
reproduces the torch model's output; resampling on load matches timm's; a file of another model is
refused with the keys named; convert_checkpoint writes timm-keyed safetensors.

Error measure throughout: max |ours - reference| / max |reference| over the whole output, <= 1e-5.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit import backend
from scratchvit.io import CheckpointError, read_state_dict, save_checkpoint, unwrap_state_dict
from scratchvit.models.key_maps import adapt_state_dict, resize_relative_position_bias_table
from scratchvit.models.pos_embed import resample_abs_pos_embed
from scratchvit.models.pretrained import convert_checkpoint, load_pretrained

FIXTURES = Path(__file__).resolve().parent.parent / "io" / "fixtures"
MANIFEST = json.loads((FIXTURES / "cases.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}
with np.load(FIXTURES / "references.npz") as _archive:
    REFERENCES = {name: _archive[name] for name in _archive.files}
TOLERANCE = 1e-5  # relative to the largest reference value


def relative_error(ours, reference) -> float:
    ours = backend.to_numpy(ours.data if isinstance(ours, sv.Tensor) else ours)
    return float(np.abs(ours.astype(np.float64) - reference).max() / np.abs(reference).max())


def run(model, case: dict):
    """The model's output on the case's reference input (MAE: pred, with the reference noise),
    with the input on the model's device."""
    images = sv.Tensor(REFERENCES[case["input"]], device=next(iter(model.parameters())).device)
    with sv.no_grad():
        if case["model_name"].startswith("mae"):
            name = case["name"]
            mask_ratio = float(REFERENCES[f"{name}/mask_ratio"])
            loss, pred, _ = model(images, mask_ratio=mask_ratio, noise=REFERENCES[f"{name}/noise"])
            assert relative_error(loss, REFERENCES[f"{name}/loss"]) <= TOLERANCE
            return pred
        return model(images)


def build(case: dict, **overrides):
    return sv.create_model(case["model_name"], **{**case["kwargs"], **overrides}).eval()


# ---- every fixture, loaded the way a user would ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fixture_reproduces_the_torch_output(name):
    case = CASES[name]
    model = sv.create_model(case["model_name"], pretrained=FIXTURES / case["file"], **case["kwargs"]).eval()
    assert relative_error(run(model, case), REFERENCES[f"{name}/output"]) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(name for name in CASES if CASES[name]["extra"] in (["pos_embed"], ["table"])))
def test_resampled_tables_match_timm(name):
    case = CASES[name]
    model = build(case)
    state, source = read_state_dict(FIXTURES / case["file"])
    state = adapt_state_dict(state, model, source)
    if case["extra"] == ["pos_embed"]:
        ours = state["pos_embed"]
    else:
        ours = state["layers.0.blocks.0.attn.relative_position_bias_table"]
    assert relative_error(ours, REFERENCES[f"{name}/{case['extra'][0]}"]) <= 1e-6


def test_loading_onto_a_device(device):
    case = CASES["vit_pth"]
    model = build(case).to(device)
    assert load_pretrained(model, FIXTURES / case["file"]) is model
    assert model.pos_embed.device == device
    assert relative_error(run(model, case), REFERENCES["vit_pth/output"]) <= TOLERANCE


def test_the_format_is_told_by_content_not_by_name(tmp_path):
    formats = {
        "vit.pth": "torch",
        "vit.safetensors": "safetensors",
        "vit_augreg.npz": "big_vision",
        "vit_big_vision.npz": "big_vision",
        "swin_official.pth": "torch",
    }
    for file, expected in formats.items():
        misnamed = tmp_path / f"{file}.bin"
        shutil.copyfile(FIXTURES / file, misnamed)
        assert read_state_dict(misnamed)[1] == expected
    shutil.copyfile(FIXTURES / "vit.safetensors", tmp_path / "weights.pth")
    model = sv.create_model("vit_tiny_patch16_224", pretrained=tmp_path / "weights.pth", **CASES["vit_pth"]["kwargs"])
    assert relative_error(run(model.eval(), CASES["vit_pth"]), REFERENCES["vit_pth/output"]) <= TOLERANCE


def test_no_torch_was_imported():
    read_state_dict(FIXTURES / "vit.pth")
    assert "torch" not in sys.modules


# ---- scratchvit's own checkpoints and plain .npz ------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_our_own_checkpoints_load_and_resample_like_timm_files(tmp_path, suffix):
    case = CASES["vit_pth"]
    source = sv.create_model(case["model_name"], pretrained=FIXTURES / case["file"], **case["kwargs"])
    path = save_checkpoint(tmp_path / f"own{suffix}", source)
    assert read_state_dict(path)[1] == "scratchvit"
    model = sv.create_model(case["model_name"], pretrained=path, **case["kwargs"]).eval()
    assert relative_error(run(model, case), REFERENCES["vit_pth/output"]) <= TOLERANCE
    bigger = CASES["vit_pth_resample_48"]  # same weights, a 6x6 grid: timm's resampling as for the .pth
    model = sv.create_model(bigger["model_name"], pretrained=path, **bigger["kwargs"]).eval()
    assert relative_error(run(model, bigger), REFERENCES["vit_pth_resample_48/output"]) <= TOLERANCE


def test_a_plain_npz_of_state_dict_arrays_loads(tmp_path):
    state, _ = read_state_dict(FIXTURES / "vit.pth")
    np.savez(tmp_path / "plain.npz", **state)
    assert read_state_dict(tmp_path / "plain.npz")[1] == "npz"
    case = CASES["vit_pth"]
    model = sv.create_model(case["model_name"], pretrained=tmp_path / "plain.npz", **case["kwargs"]).eval()
    assert relative_error(run(model, case), REFERENCES["vit_pth/output"]) <= TOLERANCE


def test_an_npz_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "objects.npz", weight=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match=r"objects\.npz: cannot read it as \.npz"):
        read_state_dict(tmp_path / "objects.npz")


# ---- unwrapping and key maps ----------------------------------------------------------------------
def test_unwrapping_prefers_the_plain_weights_and_strips_dataparallel():
    weights, ema = {"module.a": np.zeros(2)}, {"module.a": np.ones(2)}
    state = unwrap_state_dict({"epoch": 1, "state_dict_ema": ema, "state_dict": weights}, "f.pth")
    assert list(state) == ["a"] and not state["a"].any()
    assert list(unwrap_state_dict({"model": {"state_dict": {"b": np.ones(1)}}}, "f.pth")) == ["b"]
    with pytest.raises(CheckpointError, match=r"f\.pth: no state_dict found.*'epoch' is a int"):
        unwrap_state_dict({"epoch": 1, "weights": {"a": np.ones(1)}}, "f.pth")
    with pytest.raises(CheckpointError, match=r"f\.pth: holds a list, not a state_dict"):
        unwrap_state_dict([np.ones(1)], "f.pth")


def test_the_train_checkpoint_loads_the_weights_not_the_ema():
    state, _ = read_state_dict(FIXTURES / "vit_train_checkpoint.pth")
    plain, _ = read_state_dict(FIXTURES / "vit.pth")
    np.testing.assert_array_equal(state["pos_embed"], plain["pos_embed"])


def test_official_swin_keys_are_mapped_to_timm():
    raw, _ = read_state_dict(FIXTURES / "swin_official.pth")
    assert "layers.0.downsample.reduction.weight" in raw and "head.weight" in raw
    assert any(name.endswith("relative_position_index") for name in raw)
    assert any(name.endswith("attn_mask") for name in raw)
    model = build(CASES["swin_official_pth"])
    state = adapt_state_dict(raw, model)
    assert set(state) == set(model.state_dict())
    timm, _ = read_state_dict(FIXTURES / "swin.safetensors")
    for name, array in timm.items():
        np.testing.assert_array_equal(state[name], array, err_msg=name)


def test_big_vision_npz_maps_to_the_timm_arrays():
    ours, _ = read_state_dict(FIXTURES / "vit_augreg.npz")
    timm, _ = read_state_dict(FIXTURES / "vit.pth")
    assert ours.keys() == timm.keys()  # pre_logits dropped
    for name, array in timm.items():
        np.testing.assert_array_equal(ours[name], array, err_msg=name)


def test_big_vision_entries_outside_the_model_tree_are_ignored(tmp_path):
    with np.load(FIXTURES / "vit_big_vision.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["opt/state/mu/embedding/kernel"] = np.zeros(3, np.float32)  # an optimizer's state, not the ViT's
    np.savez(tmp_path / "with_opt.npz", **arrays)
    ours, _ = read_state_dict(tmp_path / "with_opt.npz")
    expected, _ = read_state_dict(FIXTURES / "vit_big_vision.npz")
    assert ours.keys() == expected.keys()


def test_unknown_big_vision_entries_are_named(tmp_path):
    with np.load(FIXTURES / "vit_augreg.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["MAPHead_0/probe"] = np.zeros((1, 1, 32), np.float32)
    np.savez(tmp_path / "map.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"map\.npz: JAX ViT entries .* no place for: MAPHead_0/probe"):
        read_state_dict(tmp_path / "map.npz")
    del arrays["MAPHead_0/probe"], arrays["Transformer/encoderblock_1/LayerNorm_2/scale"]
    np.savez(tmp_path / "holed.npz", **arrays)
    with pytest.raises(
        CheckpointError, match=r"holed\.npz: incomplete .* 'Transformer/encoderblock_1/LayerNorm_2/scale'"
    ):
        read_state_dict(tmp_path / "holed.npz")


# ---- files that must be refused --------------------------------------------------------------------
def test_bad_files_name_the_file_and_the_fault(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("not weights")
    (tmp_path / "plain.pkl").write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    data = (FIXTURES / "vit_augreg.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    expected = {
        tmp_path / "missing.pth": "no such weights file",
        tmp_path / "empty.pth": "the file is empty",
        tmp_path / "text.pth": "not a weights file scratchvit reads",
        tmp_path / "plain.pkl": "a plain pickle",
        tmp_path / "cut.npz": "truncated or damaged zip",
        FIXTURES / "bad_legacy.pth": "the legacy format",
        FIXTURES / "bad_complex.pth": "unsupported dtype torch.ComplexFloatStorage",
    }
    for path, message in expected.items():
        with pytest.raises(CheckpointError) as error:
            read_state_dict(path)
        assert str(path) in str(error.value) and message in str(error.value)


def test_a_checkpoint_of_another_model_names_the_keys_and_shapes():
    vit = CASES["vit_pth"]
    with pytest.raises(CheckpointError) as error:
        sv.create_model(vit["model_name"], pretrained=FIXTURES / "swin.safetensors", **vit["kwargs"])
    message = str(error.value)
    assert str(FIXTURES / "swin.safetensors") in message
    assert "missing keys" in message and "cls_token" in message
    assert "unexpected keys" in message and "layers.0.blocks.0.attn.relative_position_bias_table" in message
    with pytest.raises(CheckpointError) as error:
        sv.create_model(vit["model_name"], pretrained=FIXTURES / "vit.pth", **{**vit["kwargs"], "embed_dim": 48})
    assert "wrong shapes" in str(error.value) and "cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)" in str(
        error.value
    )


@pytest.mark.parametrize(
    "case, overrides, hint",
    [
        ("vit_pth", dict(num_classes=5), "its classifier has 10 classes: build the model with num_classes=10"),
        ("swin_official_pth", dict(num_classes=3), "num_classes=10"),
        ("mae_pretrain_as_vit", dict(num_classes=4), "the checkpoint has no classifier"),
        ("mae_finetuned_vit", dict(global_pool="token"), "global_pool='avg'"),
        ("vit_pth", dict(global_pool="avg"), "global_pool='token'"),
    ],
)
def test_common_mismatches_come_with_a_hint(case, overrides, hint):
    case = CASES[case]
    with pytest.raises(CheckpointError, match="hint: ") as error:
        load_pretrained(build(case, **overrides), FIXTURES / case["file"])
    assert hint in str(error.value)


def test_an_encoder_only_mae_checkpoint_loads_into_a_headless_vit(tmp_path):
    # the released mae_pretrain_vit_*.pth hold the encoder only: timm's ViT keys without a head
    state, _ = read_state_dict(FIXTURES / "mae_pretrain.pth")
    encoder = {name: array for name, array in state.items() if not name.startswith(("decoder_", "mask_token"))}
    np.savez(tmp_path / "encoder.npz", **encoder)
    case = CASES["mae_pretrain_as_vit"]
    model = sv.create_model(case["model_name"], pretrained=tmp_path / "encoder.npz", **case["kwargs"]).eval()
    assert relative_error(run(model, case), REFERENCES["mae_pretrain_as_vit/output"]) <= TOLERANCE
    with pytest.raises(CheckpointError, match="holds no MAE decoder"):
        load_pretrained(build(CASES["mae_pretrain"]), tmp_path / "encoder.npz")


def test_a_non_square_position_grid_cannot_be_resampled(tmp_path):
    state, _ = read_state_dict(FIXTURES / "vit.pth")
    state["pos_embed"] = state["pos_embed"][:, :13]  # class token + 12 positions
    np.savez(tmp_path / "odd.npz", **state)
    with pytest.raises(CheckpointError, match=r"odd\.npz: cannot resample pos_embed \(1, 13, 32\).*not a square"):
        load_pretrained(build(CASES["vit_pth"]), tmp_path / "odd.npz")


# ---- resampling, as properties ---------------------------------------------------------------------
@given(
    old=st.integers(1, 9),
    new_h=st.integers(1, 12),
    new_w=st.integers(1, 12),
    prefix=st.integers(0, 2),
    interpolation=st.sampled_from([("bicubic", True), ("bicubic", False), ("bilinear", False)]),
)
def test_pos_embed_resampling_keeps_prefix_rows_and_constants(old, new_h, new_w, prefix, interpolation):
    rng = np.random.default_rng(old * 100 + new_h)
    pos_embed = np.concatenate([rng.standard_normal((1, prefix, 3)), np.full((1, old * old, 3), 2.5)], axis=1)
    antialias = interpolation[1]
    grid = sv.Tensor(pos_embed.astype(np.float32))
    resampled = resample_abs_pos_embed(grid, (new_h, new_w), None, prefix, antialias, interpolation[0])
    out = resampled.numpy()
    assert out.shape == (1, prefix + new_h * new_w, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :prefix], pos_embed[:, :prefix].astype(np.float32))
    np.testing.assert_allclose(out[:, prefix:], 2.5, rtol=1e-6)  # every row of weights sums to 1


@given(old=st.integers(1, 8), new_h=st.integers(1, 12), new_w=st.integers(1, 12))
def test_relative_bias_resizing_keeps_constants_and_the_centre(old, new_h, new_w):
    side = 2 * old - 1
    heads = 2
    table = np.full((side * side, heads), -1.5, np.float32)
    table[(side * side) // 2] = [3.0, 4.0]  # offset (0, 0), which stays at offset (0, 0)
    out = resize_relative_position_bias_table(table, (new_h, new_w))
    assert out.shape == ((2 * new_h - 1) * (2 * new_w - 1), heads)
    np.testing.assert_allclose(out[out.shape[0] // 2], [3.0, 4.0], rtol=1e-6)
    constant = resize_relative_position_bias_table(np.full_like(table, -1.5), (new_h, new_w))
    np.testing.assert_allclose(constant, -1.5, rtol=1e-6)


def test_relative_bias_table_of_a_non_square_window_is_refused():
    with pytest.raises(ValueError, match="not the table of a square window"):
        resize_relative_position_bias_table(np.zeros((21, 2), np.float32), (4, 4))


# ---- convert_checkpoint -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["swin_official_pth", "vit_augreg_npz", "mae_pretrain"])
def test_convert_writes_timm_keyed_safetensors(tmp_path, case):
    pytest.importorskip("safetensors")
    from safetensors import safe_open

    case = CASES[case]
    dst = convert_checkpoint(
        FIXTURES / case["file"], tmp_path / "converted.safetensors", case["model_name"], **case["kwargs"]
    )
    state, source = read_state_dict(dst)
    model = sv.create_model(case["model_name"], pretrained=dst, **case["kwargs"]).eval()
    assert source == "safetensors" and set(state) == set(model.state_dict())
    with safe_open(str(dst), framework="numpy") as file:
        assert file.metadata() == {"format": "pt"}
    assert relative_error(run(model, case), REFERENCES[f"{case['name']}/output"]) <= TOLERANCE


def test_convert_needs_a_safetensors_path_and_no_package(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="dst must be a .safetensors path"):
        convert_checkpoint(FIXTURES / "vit.pth", tmp_path / "out.pth", "vit_tiny_patch16_224")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    case = CASES["vit_pth"]
    dst = convert_checkpoint(
        FIXTURES / case["file"], tmp_path / "out.safetensors", case["model_name"], **case["kwargs"]
    )
    assert read_state_dict(dst)[1] == "safetensors"
