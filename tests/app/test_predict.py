"""`scratchvit predict` and `scratchvit mae-visualize` on weights served by a stand-in hub on 127.0.0.1
(tests/hub_server.py), no network.

tests/golden/predict/ (tools/make_golden.py): tiny timm-initialised ViT and Swin classifiers with
ImageNet's 1000 classes as timm's model.safetensors, a PNG, and what timm makes of it with
create_transform(**resolve_data_config(model=model)) and softmax: the input and the probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hub_server import hub_environment, serve, start, stop

import scratchvit as sv
from scratchvit.app.cli import main
from scratchvit.app.predict import (
    class_names,
    data_config_for,
    mae_reconstruction_panels,
    predict_probabilities,
    prepare_images,
    swin_last_window_attention,
)
from scratchvit.models import hub

pytest.importorskip("PIL")
pytest.importorskip("matplotlib")

TESTS = Path(__file__).resolve().parent.parent
PREDICT = TESTS / "golden" / "predict"
with np.load(PREDICT / "references.npz") as _archive:
    REFERENCES = {name: _archive[name] for name in _archive.files}
MODELS = json.loads(str(REFERENCES["config"]))["models"]
PHOTO = PREDICT / "photo.png"
MAE_CASE = next(
    case
    for case in json.loads((TESTS / "io" / "fixtures" / "cases.json").read_text())["cases"]
    if case["name"] == "mae_pretrain"
)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """The stand-in hub with both tiny classifiers at their models' default repositories, and the
    official-MAE-format fixture as the ViT-B visualisation checkpoint."""
    httpd = start()
    for spec in MODELS.values():
        repo = hub.pretrained_weights(spec["model_name"]).repo
        serve(httpd, f"/{repo}/resolve/main/model.safetensors", (PREDICT / spec["file"]).read_bytes())
    mae_file = TESTS / "io" / "fixtures" / "mae_pretrain.pth"
    serve(httpd, "/mae/visualize/mae_visualize_vit_base.pth", mae_file.read_bytes())
    hub_environment(monkeypatch, httpd, tmp_path / "cache")
    yield httpd
    stop(httpd)


def kwargs_of(label: str) -> dict:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in MODELS[label]["kwargs"].items()}


def model_arguments(kwargs: dict) -> list:
    return [argument for key, value in kwargs.items() for argument in ("--model-arg", f"{key}={value!r}")]


@pytest.mark.parametrize("label", ["vit", "swin"])
def test_probabilities_equal_timms(server, label):
    model = sv.create_model(MODELS[label]["model_name"], pretrained=True, **kwargs_of(label))
    images = prepare_images([PHOTO], data_config_for(model))
    np.testing.assert_allclose(images[0], REFERENCES[f"{label}/input"], rtol=0, atol=1e-6)
    probabilities = predict_probabilities(model, images)[0]
    np.testing.assert_allclose(probabilities, REFERENCES[f"{label}/probabilities"], rtol=1e-5, atol=0)


@pytest.mark.parametrize("label", ["vit", "swin"])
def test_predict_prints_timms_top_classes_and_draws(server, label, tmp_path, capsys):
    attention = tmp_path / "attention.png"
    argv = ["predict", str(PHOTO), str(PHOTO), "--model", MODELS[label]["model_name"], "--pretrained", "hub"]
    argv += ["--top", "3", "--attention", str(attention), *model_arguments(MODELS[label]["kwargs"])]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    reference = REFERENCES[f"{label}/probabilities"]
    best = np.argsort(-reference, kind="stable")[:3]
    names = class_names()
    expected = [f"  {reference[index]:7.2%}  {index:4d}  {names[index]}" for index in best]
    assert lines == [f"{PHOTO}:", *expected, f"{PHOTO}:", *expected, f"wrote {attention}"]
    assert attention.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_swin_window_attention_is_a_distribution_per_window():
    sv.manual_seed(0)
    model = sv.create_model("swin_tiny_patch4_window7_224", **kwargs_of("swin"))
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    maps = swin_last_window_attention(model, images)
    assert maps.shape == (2, 4, 4)  # the last stage's map, one window of 4 x 4
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert not np.allclose(maps[0], maps[1])


def test_class_names_are_imagenets():
    names = class_names()
    assert len(names) == 1000 and names[0] == "tench, Tinca tinca" and names[999].startswith("toilet tissue")
    assert class_names(3) == ["class 0", "class 1", "class 2"]


def mae_model(pretrained=True):
    return sv.create_model("mae_vit_base_patch16", pretrained=pretrained, **MAE_CASE["kwargs"])


def test_mae_panels_are_the_notebooks(server):
    model = mae_model()
    image = prepare_images([PHOTO], data_config_for(model, "mae_vit_base_patch16"))[0]
    assert image.shape == (3, 16, 16)
    panels = mae_reconstruction_panels(model, image, mask_ratio=0.75, seed=4)
    original, masked, reconstruction, pasted = panels.values()
    assert list(panels) == ["original", "masked 75%", "reconstruction", "reconstruction + visible"]
    removed = np.all(masked == 0, axis=0)  # (16, 16): whole 4 x 4 patches, 12 of the 16 removed
    assert removed.reshape(4, 4, 4, 4).all(axis=(1, 3)).sum() == 12
    np.testing.assert_array_equal(pasted[:, ~removed], original[:, ~removed])
    np.testing.assert_array_equal(pasted[:, removed], reconstruction[:, removed])
    again = mae_reconstruction_panels(model, image, mask_ratio=0.75, seed=4)
    np.testing.assert_array_equal(again["reconstruction + visible"], pasted)
    other = mae_reconstruction_panels(model, image, mask_ratio=0.75, seed=5)
    assert not np.array_equal(np.all(other["masked 75%"] == 0, axis=0), removed)


def test_mae_visualize_writes_the_four_panels(server, tmp_path, capsys):
    out = tmp_path / "mae.png"
    kwargs = {key: value for key, value in MAE_CASE["kwargs"].items()}
    argv = ["mae-visualize", str(PHOTO), "--model", "mae_vit_base_patch16", "--output", str(out), "--seed", "2"]
    assert main(argv + model_arguments(kwargs)) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_offline_without_the_file_is_one_line_and_exit_2(server, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["predict", str(PHOTO), "--model", "vit_tiny_patch16_224", *model_arguments(MODELS["vit"]["kwargs"])]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("scratchvit predict: error: HF_HUB_OFFLINE is set and timm/vit_tiny_patch16_224")
    assert error.count("\n") == 1 and server.requests == []


def test_predict_refuses_an_mae_and_a_missing_image(server, tmp_path, capsys):
    argv = ["predict", str(PHOTO), "--model", "mae_vit_base_patch16", *model_arguments(MAE_CASE["kwargs"])]
    assert main(argv) == 2
    assert "predict takes a VisionTransformer or SwinTransformer, but 'mae_vit_base_patch16' is a Masked" in (
        capsys.readouterr().err
    )
    argv = ["predict", str(tmp_path / "none.jpg"), "--model", "vit_tiny_patch16_224"]
    assert main(argv + model_arguments(MODELS["vit"]["kwargs"])) == 2
    assert capsys.readouterr().err == f"scratchvit predict: error: {tmp_path / 'none.jpg'}: no such image file\n"
    assert server.requests == []  # nothing downloaded for an image that is not there


def test_without_pillow_the_error_names_the_extra(server, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "PIL", None)
    argv = ["predict", str(PHOTO), "--model", "vit_tiny_patch16_224", *model_arguments(MODELS["vit"]["kwargs"])]
    assert main(argv) == 2
    assert "reading images needs Pillow: pip install 'scratchvit[demo]'" in capsys.readouterr().err
