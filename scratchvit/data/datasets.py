"""One entry point for every data set: `load_dataset(name, root, split, **options)`."""

from __future__ import annotations

from pathlib import Path

from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .folder import ImageFolder
from .idx import load_mnist


def _digits(root, split, **options):
    if root is not None:
        raise ValueError(f"the digits data set ships with scikit-learn and takes no root, got root={str(root)!r}")
    return load_digits(split, **options)


def _folder(root, split, **options):
    root = Path(root) if root is not None else None
    if root is not None and (root / split).is_dir():  # root/train/<class>/..., root/test/<class>/...
        root = root / split
    return ImageFolder(root, **options)


_LOADERS = {
    "digits": _digits,
    "mnist": lambda root, split, **options: load_mnist(root, split, variant="mnist", **options),
    "fashion_mnist": lambda root, split, **options: load_mnist(root, split, variant="fashion_mnist", **options),
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "folder": _folder,
}
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, root=None, split: str = "train", **options):
    """A data set by name; each yields (image float32 (C, H, W) in [0, 1], label int).

    name      root                                        options
    digits    none: ships with scikit-learn               channels=1|3, test_fraction=0.2, split_seed=0
    mnist     folder of the four idx files (raw or .gz)    channels=1|3
    fashion_mnist  the same, Fashion-MNIST's files         channels=1|3
    cifar10   folder of data_batch_1..5, test_batch, batches.meta
    cifar100  folder of train, test, meta                  label_mode="fine"|"coarse"
    folder    one sub-folder per class (root/<split> when  image_size=None|int|(H, W)
              that exists, else root)

    split: "train" or "test". The in-memory ones (all but folder) are ArrayDatasets with
    `.images` (N, C, H, W) float32 and `.labels` (N,) int64; every one has `.classes`.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASET_NAMES)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _LOADERS[name](root, split, **options)
