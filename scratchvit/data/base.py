"""What every data set shares: the error for unreadable files, and the in-memory data set.

A data set is anything with `__len__`, `__getitem__(i) -> (image float32 (C, H, W), label int)`
and `.classes` (the class names, index = label). `ArrayDataset` holds all of its images in one
array, which lets the DataLoader fancy-index whole batches instead of looping over samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A data file exists but is not what it should be: wrong format, truncated, or unsafe."""


def existing_path(path, argument: str = "root") -> Path:
    """`path` as a Path, or FileNotFoundError naming the argument and the path."""
    if path is None:
        raise TypeError(f"{argument} is required: the folder that holds the data set's files")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{argument} {str(path)!r} does not exist")
    return path


class ArrayDataset:
    """A data set held in memory.

    images: (N, C, H, W) float32, labels: (N,) int64, classes: N_classes names (label k is
    classes[k]). `dataset[i]` is `(images[i], int(labels[i]))`. Images of any other dtype are
    refused: integer pixels have no one scale, so make them float32 in [0, 1] first
    (`to_float_images(pixels, maximum=255)`).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {images.shape}")
        if images.dtype != np.float32:
            raise TypeError(
                f"ArrayDataset: images must be float32 pixels in [0, 1], got dtype {images.dtype}"
                + (
                    f" (integer pixels: to_float_images(images, maximum={np.iinfo(images.dtype).max}))"
                    if images.dtype.kind in "iu"
                    else ""
                )
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},) to match images, got {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got {labels.dtype}")
        classes = list(classes)
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels must be in [0, {len(classes)}) for {len(classes)} classes, got {labels.min()}..{labels.max()}"
            )
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.classes = classes

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """-> (image (C, H, W) float32, label int)"""
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        shape = "x".join(str(side) for side in self.images.shape[1:])
        return f"{type(self).__name__}({len(self)} images {shape}, {len(self.classes)} classes)"


def to_float_images(pixels: np.ndarray, maximum: float, channels: int | None = None) -> np.ndarray:
    """Integer pixels (N, C, H, W) in [0, maximum] -> float32 in [0, 1], with C repeated to `channels`.

    channels: None keeps C; 3 repeats a single channel three times (grey -> RGB-shaped).
    """
    if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool) or channels < 1):
        raise ValueError(f"channels must be None or a positive int (1 or 3), got {channels!r}")
    if channels is not None and channels != pixels.shape[1] and pixels.shape[1] != 1:
        raise ValueError(f"channels={channels} needs single-channel images to repeat, these have {pixels.shape[1]}")
    images = pixels.astype(np.float32)
    images *= np.float32(1.0 / maximum)
    if channels is None or channels == images.shape[1]:
        return images
    return np.repeat(images, channels, axis=1)
