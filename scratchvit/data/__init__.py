"""Data: data sets (digits, MNIST idx, CIFAR pickles, image folders), the loader, transforms, download.

>>> from scratchvit.data import DataLoader, load_dataset, transforms as T
>>> train = load_dataset("digits", split="train", channels=3)          # 1,437 images (3, 8, 8)
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
...                     transform=T.Compose([T.RandomCrop(8, padding=1), T.RandomHorizontalFlip()]))
>>> for images, labels in loader: ...                                   # Tensor (64, 3, 8, 8), int64 (64,)
"""

from ..io.download import ChecksumError, download, sha256_of
from . import transforms
from .base import ArrayDataset, DatasetError, to_float_images
from .cifar import load_cifar10, load_cifar100, safe_unpickle
from .datasets import DATASET_NAMES, load_dataset
from .digits import load_digits
from .distributed_sampler import DistributedSampler
from .folder import ImageFolder
from .idx import load_mnist, read_idx
from .loader import DataLoader
from .split import stratified_split

__all__ = [
    "DATASET_NAMES",
    "ArrayDataset",
    "ChecksumError",
    "DataLoader",
    "DatasetError",
    "DistributedSampler",
    "ImageFolder",
    "download",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "read_idx",
    "safe_unpickle",
    "sha256_of",
    "stratified_split",
    "to_float_images",
    "transforms",
]
