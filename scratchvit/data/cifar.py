"""CIFAR-10 and CIFAR-100 from their "python version" files (Krizhevsky 2009), read safely.

Those files are pickles (protocol 2, written by Python 2) of dicts: "data" a uint8 array of
shape (N, 3072), each row the 1024 red, then green, then blue pixels of a 32x32 image in row
order; "labels" (CIFAR-10) or "fine_labels" / "coarse_labels" (CIFAR-100) lists of ints; and
the class names in `batches.meta` / `meta`.

A pickle can run any code while it loads, so these are read with `SafeUnpickler`, which
rebuilds only dicts, lists, strings, numbers and NumPy arrays: any other global the file asks
for (os.system, builtins.eval, ...) stops the load before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import ArrayDataset, DatasetError, existing_path, to_float_images

try:  # NumPy >= 1.26 (and 2.x, whose pickles name numpy._core)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - older NumPy
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

# (module, name) a NumPy array pickle refers to -> the object to use. NumPy 1.x wrote
# numpy.core.*, NumPy 2 writes numpy._core.*; protocol 5 uses _frombuffer instead of _reconstruct.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _multiarray._reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _multiarray.scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer for core in ("core", "_core")},
}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals NumPy arrays need; anything else raises DatasetError.

    Strings written by Python 2 come back as bytes (encoding="bytes", as the CIFAR page advises).
    Python 3 pickles of protocol < 3 store bytes as `_codecs.encode(text, "latin1")`; that one
    call is allowed, and checked to be exactly that.
    """

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[module, name]
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_encode
        raise DatasetError(
            f"{self.path.name}: refused to load the global {module}.{name}: a data file may hold only dicts, "
            "lists, strings, numbers and NumPy arrays (the file is not a CIFAR batch, or has been tampered with)"
        )

    def _latin1_encode(self, text, encoding="utf-8"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise DatasetError(f"{self.path.name}: refused _codecs.encode({type(text).__name__}, {encoding!r})")
        return text.encode("latin-1")


def safe_unpickle(path) -> object:
    """The object in the pickle at `path`, rebuilt by SafeUnpickler (no code runs)."""
    path = existing_path(path, "path")
    with open(path, "rb") as file:
        try:
            return SafeUnpickler(file, path).load()
        except DatasetError:
            raise
        except Exception as error:  # a broken pickle raises many kinds: UnpicklingError, EOFError, KeyError, ...
            raise DatasetError(f"{path.name}: not a readable pickle ({type(error).__name__}: {error})") from error


def _as_text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _read_dict(path: Path, keys: tuple[str, ...]) -> dict:
    """The pickled dict at `path` with str keys, checked to hold `keys`."""
    content = safe_unpickle(path)
    if not isinstance(content, dict):
        raise DatasetError(f"{path.name}: expected a pickled dict with keys {list(keys)}, got {type(content).__name__}")
    content = {_as_text(key): value for key, value in content.items()}
    missing = [key for key in keys if key not in content]
    if missing:
        raise DatasetError(f"{path.name}: the dict lacks {missing}; it has {sorted(content)}")
    return content


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (pixels (N, 3, 32, 32) uint8, labels (N,) int64)."""
    content = _read_dict(path, ("data", label_key))
    data = content["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        found = f"{data.dtype} array {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path.name}: 'data' must be a uint8 array of shape (N, 3072), got {found}")
    labels = np.asarray(content[label_key])
    if labels.shape != (data.shape[0],) or (labels.size and labels.dtype.kind not in "iu"):
        raise DatasetError(
            f"{path.name}: {label_key!r} must be {data.shape[0]} integers (one per row of 'data'), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _load(folder: Path, batch_names: list[str], label_key: str, classes: list[str]) -> ArrayDataset:
    pixels, labels = [], []
    for name in batch_names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (a CIFAR folder holds {', '.join(batch_names)})")
        batch_pixels, batch_labels = _read_batch(path, label_key)
        if batch_labels.size and batch_labels.max() >= len(classes):
            raise DatasetError(f"{name}: label {batch_labels.max()} is out of range for {len(classes)} classes")
        pixels.append(batch_pixels)
        labels.append(batch_labels)
    images = to_float_images(np.concatenate(pixels), 255)
    return ArrayDataset(images, np.concatenate(labels), classes)


def _folder(root, subfolder: str) -> Path:
    """root itself, or root/subfolder as the archive unpacks."""
    root = existing_path(root)
    return root / subfolder if (root / subfolder).is_dir() else root


def _class_names(path: Path, key: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (it holds the class names)")
    return [_as_text(name) for name in _read_dict(path, (key,))[key]]


def load_cifar10(root, split: str = "train") -> ArrayDataset:
    """CIFAR-10: root holds data_batch_1..5, test_batch and batches.meta (or root/cifar-10-batches-py does).

    split: "train" (50,000) or "test" (10,000).
    -> ArrayDataset with images (N, 3, 32, 32) float32 in [0, 1] (pixels / 255), labels (N,) int64 in 0..9.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _folder(root, "cifar-10-batches-py")
    classes = _class_names(folder / "batches.meta", "label_names")
    names = [f"data_batch_{number}" for number in range(1, 6)] if split == "train" else ["test_batch"]
    return _load(folder, names, "labels", classes)


def load_cifar100(root, split: str = "train", label_mode: str = "fine") -> ArrayDataset:
    """CIFAR-100: root holds train, test and meta (or root/cifar-100-python does).

    split: "train" (50,000) or "test" (10,000). label_mode: "fine" (100 classes) or "coarse" (20 superclasses).
    -> ArrayDataset with images (N, 3, 32, 32) float32 in [0, 1] (pixels / 255), labels (N,) int64.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    folder = _folder(root, "cifar-100-python")
    classes = _class_names(folder / "meta", f"{label_mode}_label_names")
    return _load(folder, [split], f"{label_mode}_labels", classes)
