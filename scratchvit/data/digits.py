"""scikit-learn's handwritten digits: 1,797 images of 8x8 pixels, 10 classes, no download.

The data ship inside scikit-learn (`sklearn.datasets.load_digits`, the UCI "Optical Recognition of
Handwritten Digits" test set), so this is the data set every demo and test can count on.
"""

from __future__ import annotations

import numpy as np

from .base import ArrayDataset, to_float_images
from .split import stratified_split

DIGITS_MAXIMUM = 16  # the pixels are counts of set bits in 4x4 blocks: 0..16
_INSTALL_HINT = "the digits data set ships with scikit-learn: pip install 'scratchvit[demo]' (or scikit-learn)"


def load_digits(
    split: str = "train", channels: int = 1, test_fraction: float = 0.2, split_seed: int = 0
) -> ArrayDataset:
    """The digits, split the same way every time.

    -> ArrayDataset with images (N, channels, 8, 8) float32 in [0, 1] (the 0..16 pixels divided
    by 16), labels (N,) int64 in 0..9, classes "0".."9".

    split: "train" (1,437 images with the defaults) or "test" (360), a stratified split
    (`stratified_split(labels, test_fraction, split_seed)`), so each digit keeps its share.
    channels: 1, or 3 to repeat the grey channel (for models built for RGB, e.g. the MAE demo).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    bunch = sklearn_load_digits()
    pixels = np.asarray(bunch.images).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = stratified_split(labels, test_fraction=test_fraction, seed=split_seed)
    indices = train if split == "train" else test
    images = to_float_images(pixels[indices], DIGITS_MAXIMUM, channels)
    return ArrayDataset(images, labels[indices], [str(digit) for digit in range(10)])
