"""The idx format of MNIST and Fashion-MNIST, read by hand (LeCun et al., yann.lecun.com/exdb/mnist).

An idx file is a 4-byte magic number, then one big-endian uint32 per dimension, then the values,
big-endian, in C order. The magic number is two zero bytes, a type code and the number of
dimensions: 0x00000803 is unsigned-byte data of 3 dimensions (images N x H x W), 0x00000801
unsigned-byte data of 1 dimension (labels N). Files may be gzip-compressed (`.gz`).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .base import ArrayDataset, DatasetError, existing_path, to_float_images

# type code -> (name in the format's description, big-endian NumPy dtype)
IDX_TYPES = {
    0x08: ("unsigned-byte", ">u1"),
    0x09: ("signed-byte", ">i1"),
    0x0B: ("short", ">i2"),
    0x0C: ("int", ">i4"),
    0x0D: ("float", ">f4"),
    0x0E: ("double", ">f8"),
}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

MNIST_CLASSES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FILE_STEMS = {"train": "train", "test": "t10k"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when its name ends in .gz."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as file:
            return file.read()
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError; a cut-off stream an EOFError
        raise DatasetError(f"{path.name}: not a readable gzip file ({error}); download it again") from error


def read_idx(path, expected_magic: int | None = None, contents: str = "data") -> np.ndarray:
    """The array in an idx file, raw or `.gz`, in native byte order with the file's dims.

    expected_magic: e.g. IMAGES_MAGIC (0x00000803); another magic number raises DatasetError.
    contents: what the file should hold ("images", "labels"), for the error messages.
    """
    path = existing_path(path, "path")
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path.name}: truncated: {len(data)} bytes, an idx file starts with a 4-byte magic number")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if expected_magic is not None and magic != expected_magic:
        type_name = IDX_TYPES[(expected_magic >> 8) & 0xFF][0]
        raise DatasetError(
            f"{path.name}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for {type_name} {contents}"
        )
    if data[:2] != b"\x00\x00" or type_code not in IDX_TYPES or ndim == 0:
        raise DatasetError(
            f"{path.name}: bad magic number 0x{magic:08x}, expected 0x0000TTNN with type code TT in "
            f"{{08, 09, 0b, 0c, 0d, 0e}} and NN >= 1 dimensions: not an idx file"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(
            f"{path.name}: truncated: the header of {ndim} dimensions needs {header_size} bytes, got {len(data)}"
        )
    dims = tuple(int(size) for size in np.frombuffer(data, ">u4", count=ndim, offset=4))
    type_name, dtype = IDX_TYPES[type_code]
    dtype = np.dtype(dtype)
    expected_size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual_size = len(data) - header_size
    if actual_size != expected_size:
        problem = "truncated" if actual_size < expected_size else "too long"
        raise DatasetError(
            f"{path.name}: {problem}: the header says {type_name} data of shape {dims}, "
            f"{expected_size} bytes, but {actual_size} bytes follow it"
        )
    array = np.frombuffer(data, dtype, count=expected_size // dtype.itemsize, offset=header_size)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _find(root: Path, name: str, variant: str) -> Path:
    """`name` or `name.gz` in root, root/raw or torchvision's root/<MNIST|FashionMNIST>/raw."""
    folders = [root, root / "raw", root / ("FashionMNIST" if variant == "fashion_mnist" else "MNIST") / "raw"]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(folder) for folder in folders)
    raise FileNotFoundError(f"no {name} or {name}.gz for {variant} (looked in {looked})")


def load_mnist(root, split: str = "train", channels: int = 1, variant: str = "mnist") -> ArrayDataset:
    """MNIST or Fashion-MNIST from the four idx files a user has (raw or .gz).

    root: the folder with `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
    `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (or root/raw, or torchvision's
    root/MNIST/raw, root/FashionMNIST/raw). split: "train" (60,000) or "test" (10,000).
    variant: "mnist" or "fashion_mnist" (only the class names differ).
    -> ArrayDataset with images (N, channels, 28, 28) float32 in [0, 1] (pixels / 255), labels (N,) int64.
    """
    if split not in _FILE_STEMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if variant not in ("mnist", "fashion_mnist"):
        raise ValueError(f"variant must be 'mnist' or 'fashion_mnist', got {variant!r}")
    root = existing_path(root)
    stem = _FILE_STEMS[split]
    images_path = _find(root, f"{stem}-images-idx3-ubyte", variant)
    labels_path = _find(root, f"{stem}-labels-idx1-ubyte", variant)
    pixels = read_idx(images_path, IMAGES_MAGIC, "images")
    labels = read_idx(labels_path, LABELS_MAGIC, "labels")
    if labels.shape[0] != pixels.shape[0]:
        raise DatasetError(
            f"{labels_path.name} holds {labels.shape[0]} labels but {images_path.name} {pixels.shape[0]} images"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{labels_path.name}: labels must be 0..9, found {labels.max()}")
    classes = FASHION_MNIST_CLASSES if variant == "fashion_mnist" else MNIST_CLASSES
    images = to_float_images(pixels[:, None], 255, channels)
    return ArrayDataset(images, labels.astype(np.int64), classes)
