"""Image transforms on NumPy arrays, one image (C, H, W) or a batch (B, C, H, W) at a time.

Every transform is called as `transform(images, rng)`: `rng` is a `np.random.Generator` that
the random ones draw from (None: a fresh, unseeded one), so one seed gives one augmentation.
On a batch each image gets its own draw, and the work is done for the whole batch at once.
Transforms return new arrays (the input is never written to) of the input's float dtype.

The names and defaults are torchvision's: Resize, RandomResizedCrop, RandomCrop (with
padding), RandomHorizontalFlip, Normalize, Compose.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..ops.vision import size_pair


@lru_cache(maxsize=256)
def _bilinear_matrix(in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out_size, in_size) float64 weights: output pixel o = sum_i weights[o, i] * input pixel i.

    Pixel i covers [i, i + 1); output pixel o is centred at (o + 0.5) * in_size / out_size. Its
    weights are the triangle (bilinear) filter around that centre, widened by the shrink factor
    when shrinking with antialias (as Pillow does), and normalised to sum to 1, which also
    clamps at the borders. Upsampling gives exactly bilinear interpolation with half-pixel centres.
    """
    scale = in_size / out_size
    support = max(scale, 1.0) if antialias else 1.0
    centres = (np.arange(out_size) + 0.5) * scale
    distance = (np.arange(in_size)[None, :] + 0.5 - centres[:, None]) / support
    weights = np.clip(1.0 - np.abs(distance), 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.setflags(write=False)
    return weights


class Transform:
    """Base class: `transform(images, rng=None)` on (C, H, W) or (B, C, H, W) arrays.

    Subclasses write `apply(batch (B, C, H, W), rng) -> (B, C, H', W')`; `random` says whether
    they draw from rng.
    """

    random = False

    def __call__(self, images: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim not in (3, 4):
            raise ValueError(
                f"{type(self).__name__}: images must be (C, H, W) or (B, C, H, W), got shape {images.shape}"
            )
        if images.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: images must be floating point (float32), got {images.dtype}")
        if rng is None and self.random:
            rng = np.random.default_rng()
        single = images.ndim == 3
        output = self.apply(images[None] if single else images, rng)
        return output[0] if single else output

    def apply(self, batch: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError


class Compose(Transform):
    """Apply `transforms` in order, each drawing from the same rng."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        self.random = any(transform.random for transform in self.transforms)

    def apply(self, batch, rng):
        for transform in self.transforms:
            batch = transform(batch, rng)
        return batch

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


class Resize(Transform):
    """Bilinear resize to `size` (an int for a square, or (H, W)): (B, C, H, W) -> (B, C, *size).

    antialias: when shrinking, widen the filter to cover every input pixel (Pillow's and
    torchvision's default); False gives plain bilinear sampling (F.interpolate's default).
    """

    def __init__(self, size, antialias: bool = True):
        self.size = size_pair("size", size)
        self.antialias = bool(antialias)

    def apply(self, batch, rng):
        rows = _bilinear_matrix(batch.shape[2], self.size[0], self.antialias).astype(batch.dtype)
        columns = _bilinear_matrix(batch.shape[3], self.size[1], self.antialias).astype(batch.dtype)
        return rows @ batch @ columns.T  # (H', H) @ (B, C, H, W) @ (W, W')

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, antialias={self.antialias})"


class RandomResizedCrop(Transform):
    """Crop a random part of each image and resize it to `size` (Szegedy et al. 2015, "Inception").

    The part has a random area fraction in `scale` and a random aspect ratio (width / height)
    log-uniform in `ratio`; ten tries per image, then a centre crop of the nearest allowed
    ratio, exactly as torchvision's RandomResizedCrop.get_params. (B, C, H, W) -> (B, C, *size).
    """

    random = True

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias: bool = True):
        self.size = size_pair("size", size)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.antialias = bool(antialias)

    def crop_boxes(self, batch_size: int, height: int, width: int, rng) -> np.ndarray:
        """(batch_size, 4) int64 boxes (top, left, crop_height, crop_width), one per image."""
        tries = 10
        areas = height * width * rng.uniform(*self.scale, size=(batch_size, tries))
        aspects = np.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), size=(batch_size, tries)))
        widths = np.round(np.sqrt(areas * aspects)).astype(np.int64)
        heights = np.round(np.sqrt(areas / aspects)).astype(np.int64)
        fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
        first = fits.argmax(axis=1)  # the first try that fits (0 when none does; see below)
        crop_heights = heights[np.arange(batch_size), first]
        crop_widths = widths[np.arange(batch_size), first]
        # No try fits: the whole image, cut to the nearest allowed aspect ratio, centred.
        fallback_height, fallback_width = height, width
        if width / height < self.ratio[0]:
            fallback_height = int(round(width / self.ratio[0]))
        elif width / height > self.ratio[1]:
            fallback_width = int(round(height * self.ratio[1]))
        none_fit = ~fits.any(axis=1)
        crop_heights[none_fit] = fallback_height
        crop_widths[none_fit] = fallback_width
        tops = rng.integers(0, height - crop_heights + 1)
        lefts = rng.integers(0, width - crop_widths + 1)
        tops[none_fit] = (height - fallback_height) // 2
        lefts[none_fit] = (width - fallback_width) // 2
        return np.stack([tops, lefts, crop_heights, crop_widths], axis=1)

    def apply(self, batch, rng):
        batch_size, _, height, width = batch.shape
        out_height, out_width = self.size
        # Crop + resize of image b is one matrix per axis: the resize weights placed at the crop's rows/columns.
        rows = np.zeros((batch_size, out_height, height), dtype=batch.dtype)
        columns = np.zeros((batch_size, out_width, width), dtype=batch.dtype)
        for b, (top, left, crop_height, crop_width) in enumerate(self.crop_boxes(batch_size, height, width, rng)):
            rows[b, :, top : top + crop_height] = _bilinear_matrix(int(crop_height), out_height, self.antialias)
            columns[b, :, left : left + crop_width] = _bilinear_matrix(int(crop_width), out_width, self.antialias)
        # (B, 1, H', H) @ (B, C, H, W) @ (B, 1, W, W') -> (B, C, H', W')
        return rows[:, None] @ batch @ columns[:, None].transpose(0, 1, 3, 2)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomCrop(Transform):
    """Pad each side by `padding` pixels, then cut a random `size` window from each image.

    padding_mode: "constant" (with `fill`), "reflect" or "edge", as np.pad.
    (B, C, H, W) -> (B, C, *size). The CIFAR recipe is RandomCrop(32, padding=4).
    """

    random = True

    def __init__(self, size, padding: int = 0, padding_mode: str = "constant", fill: float = 0.0):
        self.size = size_pair("size", size)
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        if padding_mode not in ("constant", "reflect", "edge"):
            raise ValueError(f"padding_mode must be 'constant', 'reflect' or 'edge', got {padding_mode!r}")
        self.padding, self.padding_mode, self.fill = int(padding), padding_mode, float(fill)

    def apply(self, batch, rng):
        pad = self.padding
        widths = ((0, 0), (0, 0), (pad, pad), (pad, pad))
        options = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
        padded = np.pad(batch, widths, mode=self.padding_mode, **options) if pad else batch
        batch_size, channels, height, width = padded.shape
        out_height, out_width = self.size
        if out_height > height or out_width > width:
            raise ValueError(f"RandomCrop: size {self.size} is larger than the padded image {(height, width)}")
        tops = rng.integers(0, height - out_height + 1, size=batch_size)
        lefts = rng.integers(0, width - out_width + 1, size=batch_size)
        rows = tops[:, None] + np.arange(out_height)  # (B, H')
        columns = lefts[:, None] + np.arange(out_width)  # (B, W')
        return padded[
            np.arange(batch_size)[:, None, None, None],
            np.arange(channels)[None, :, None, None],
            rows[:, None, :, None],
            columns[:, None, None, :],
        ]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p (one draw per image)."""

    random = True

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, batch, rng):
        flip = rng.random(batch.shape[0]) < self.p
        output = batch.copy()
        output[flip] = batch[flip, :, :, ::-1]
        return output

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize(Transform):
    """(x - mean[c]) / std[c] per channel c; mean and std have one value per channel (or one for all)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(
                f"mean and std must have one value per channel each, got {self.mean.size} and {self.std.size}"
            )
        if not np.all(self.std > 0):
            raise ValueError(f"std must be positive, got {self.std.tolist()}")

    def apply(self, batch, rng):
        channels = batch.shape[1]
        if self.mean.size not in (1, channels):
            raise ValueError(f"Normalize has {self.mean.size} means and stds but the images have {channels} channels")
        mean = self.mean.astype(batch.dtype).reshape(-1, 1, 1)
        inverse_std = (1.0 / self.std).astype(batch.dtype).reshape(-1, 1, 1)
        return (batch - mean) * inverse_std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
