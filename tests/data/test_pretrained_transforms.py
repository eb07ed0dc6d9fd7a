"""data/pretrained_transforms.py equals timm's evaluation transform, create_transform(**resolve_data_config(...)),
on fixed images: tests/golden/pretrained_transforms.npz, made by tools/make_golden.py, for ViT's AugReg
configuration (mean/std 0.5, crop_pct 0.9 and 1.0), Swin's (ImageNet statistics, bicubic and bilinear) and
the MAE notebook's squash; to 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scratchvit.data.pretrained_transforms import eval_transform, load_image, resolved_data_config

Image = pytest.importorskip("PIL.Image")

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "pretrained_transforms.npz"
with np.load(GOLDEN) as _archive:
    ARRAYS = {name: _archive[name] for name in _archive.files}
CASES = json.loads(str(ARRAYS["config"]))["cases"]
IMAGES = sorted(int(name.split("/")[1]) for name in ARRAYS if name.startswith("image/"))


@pytest.mark.parametrize("case", CASES, ids=[case["label"] for case in CASES])
@pytest.mark.parametrize("index", IMAGES)
def test_equals_timms_transform(case, index, tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(ARRAYS[f"image/{index}"]).save(path)  # read back through the file, as predict does
    ours = eval_transform(load_image(path), case["config"])
    reference = ARRAYS[f"{case['label']}/{index}"]
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_the_cases_cover_vit_and_swin_statistics():
    means = {tuple(case["config"]["mean"]) for case in CASES}
    assert means == {(0.5, 0.5, 0.5), (0.485, 0.456, 0.406)}
    assert {case["config"]["crop_pct"] for case in CASES} == {0.9, 1.0}


def test_grey_and_transparent_images_become_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((10, 12), 128, np.uint8), mode="L").save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((10, 12, 4), 128, np.uint8), mode="RGBA").save(rgba)
    config = {**CASES[0]["config"], "input_size": [3, 8, 8]}
    for path in (grey, rgba):
        image = eval_transform(load_image(path), config)
        np.testing.assert_allclose(image, (128 / 255 - 0.5) / 0.5, atol=1e-6)


def test_resolved_config_takes_the_models_size():
    config = resolved_data_config(CASES[0]["config"], img_size=(48, 48), in_chans=3)
    assert config["input_size"] == (3, 48, 48) and config["crop_pct"] == CASES[0]["config"]["crop_pct"]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"crop_mode": "border"}, "crop_mode must be one of center, squash, got 'border'"),
        ({"interpolation": "cubic"}, "interpolation must be one of"),
        ({"crop_pct": 0}, r"crop_pct must be in \(0, 1\], got 0"),
        ({"input_size": [1, 8, 8]}, "photos have 3 channels"),
        ({"input_size": [3, 8, 10]}, "takes a square input_size here, got 8x10"),
    ],
)
def test_bad_configs_are_named(change, words):
    image = Image.fromarray(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=words):
        eval_transform(image, {**CASES[0]["config"], **change})


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(OSError, match="missing.png: no such image file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(OSError, match="text.jpg: not an image Pillow can read"):
        load_image(tmp_path / "text.jpg")
