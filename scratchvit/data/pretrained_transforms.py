"""Photos prepared as pretrained weights expect them, as timm's evaluation transform does
(timm.data.create_transform(**resolve_data_config(model=model)), is_training=False):

    centre mode (classifiers):  resize the shorter side to floor(size / crop_pct) (the longer one
                                keeps the aspect ratio), then crop the centre size x size;
    squash mode (the MAE notebook): resize to size x size, the aspect ratio not kept;
    then pixels / 255 and (x - mean) / std per channel, float32, (C, H, W).

The resize is Pillow's, with the weights' interpolation (bicubic for every timm ViT and Swin), so
the pixels are those timm feeds its models. Images are read with Pillow (the `demo` extra), JPEG,
PNG or any format it knows, and converted to RGB.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["eval_transform", "load_image", "resolved_data_config"]

_CROP_MODES = ("center", "squash")
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("reading images needs Pillow: pip install 'scratchvit[demo]'") from error
    return Image


def load_image(path):
    """The image file at `path` as an RGB Pillow image; OSError naming the file when it is missing or
    not an image Pillow reads."""
    Image = _pillow()
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise OSError(f"{path}: no such image file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise OSError(f"{path}: not an image Pillow can read ({error})") from None


def resolved_data_config(config: dict, img_size=None, in_chans: int | None = None) -> dict:
    """`config` (timm's data-config keys: input_size, interpolation, mean, std, crop_pct, crop_mode)
    for a model built at another size: input_size (C, H, W) replaced by (in_chans, *img_size) where given,
    crop_pct and the rest kept (as timm keeps them when a model is made at another img_size)."""
    config = dict(config)
    channels, height, width = config["input_size"]
    if img_size is not None:
        height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    config["input_size"] = (in_chans or channels, height, width)
    return config


def _check(config: dict) -> None:
    if config["crop_mode"] not in _CROP_MODES:
        raise ValueError(f"crop_mode must be one of {', '.join(_CROP_MODES)}, got {config['crop_mode']!r}")
    if config["interpolation"] not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {config['interpolation']!r}")
    if not 0 < config["crop_pct"] <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {config['crop_pct']}")
    channels, height, width = config["input_size"]
    if channels != 3:
        raise ValueError(f"photos have 3 channels (RGB), but the model takes in_chans {channels}")
    if config["crop_mode"] == "center" and height != width:
        raise ValueError(f"crop_mode 'center' takes a square input_size here, got {height}x{width}")


def eval_transform(image, config: dict) -> np.ndarray:
    """A Pillow image -> (3, H, W) float32 as timm's evaluation transform makes it (module docstring).

    config: timm's data-config keys (hub.PretrainedWeights.data_config(), resolved_data_config).
    """
    _check(config)
    Image = _pillow()
    resample = getattr(Image.Resampling, config["interpolation"].upper())
    _, height, width = config["input_size"]
    if config["crop_mode"] == "squash":
        image = image.resize(
            (math.floor(width / config["crop_pct"]), math.floor(height / config["crop_pct"])), resample
        )
    else:  # torchvision's Resize(int): the shorter side to `short`, the longer truncated to an int
        short = math.floor(height / config["crop_pct"])
        old_width, old_height = image.size
        if old_width <= old_height:
            image = image.resize((short, int(short * old_height / old_width)), resample)
        else:
            image = image.resize((int(short * old_width / old_height), short), resample)
    # torchvision's center_crop: the offset rounded half to even, zero padding when the image is smaller
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = _centre_crop(pixels, height, width)
    array = pixels.astype(np.float32) / np.float32(255)
    mean, std = np.asarray(config["mean"], np.float32), np.asarray(config["std"], np.float32)
    return np.ascontiguousarray(((array - mean) / std).transpose(2, 0, 1))


def _centre_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) -> (height, width, 3): the centre, offsets round((h - height) / 2) as torchvision;
    an image smaller than the crop is zero-padded around first, as torchvision pads."""
    pad_h, pad_w = max(height - pixels.shape[0], 0), max(width - pixels.shape[1], 0)
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
    top = int(round((pixels.shape[0] - height) / 2.0))
    left = int(round((pixels.shape[1] - width) / 2.0))
    return pixels[top : top + height, left : left + width]
