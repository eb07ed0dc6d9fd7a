"""Images in folders, one sub-folder per class (the layout of torchvision's ImageFolder).

    root/cat/0001.png      label 0 ("cat": class names are the sub-folder names, sorted)
    root/dog/a.jpg         label 1

Images are read with Pillow when asked for, converted to RGB and resized, so a folder larger
than memory is fine; only the list of files and the labels are held.
"""

from __future__ import annotations

import numpy as np

from .base import DatasetError, existing_path

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
_INSTALL_HINT = "image folders are read with Pillow: pip install 'scratchvit[demo]' (or pillow)"


def _pillow_image():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return Image


class ImageFolder:
    """A data set of image files, one sub-folder of `root` per class.

    image_size: (H, W) or an int for square images; every image is resized to it (bilinear,
    Pillow) so that they stack into batches. None keeps each file's own size.
    dataset[i] -> (image (3, H, W) float32 in [0, 1], label int). `.paths` and `.labels` (N,)
    int64 list the files; `.classes` the sorted sub-folder names.
    """

    def __init__(self, root, image_size: int | tuple[int, int] | None = None):
        _pillow_image()  # fail here, not at the first batch, when Pillow is missing
        root = existing_path(root)
        if not root.is_dir():
            raise NotADirectoryError(f"root {str(root)!r} is not a folder (expected one sub-folder per class)")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
            raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
        self.root = root
        self.image_size = None if image_size is None else tuple(int(side) for side in image_size)
        self.classes = sorted(
            entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")
        )
        if not self.classes:
            raise DatasetError(f"root {str(root)!r} has no sub-folders: expected one sub-folder of images per class")
        self.paths, labels = [], []
        for label, name in enumerate(self.classes):
            files = sorted(path for path in (root / name).rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS)
            self.paths.extend(files)
            labels.extend([label] * len(files))
        if not self.paths:
            raise DatasetError(
                f"root {str(root)!r} has no images in its sub-folders {self.classes} "
                f"(looked for files ending in {', '.join(IMAGE_EXTENSIONS)})"
            )
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """-> (image (3, H, W) float32 in [0, 1], label int)"""
        Image = _pillow_image()
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if self.image_size is not None:
                    height, width = self.image_size
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
        except (OSError, Image.DecompressionBombError) as error:
            raise DatasetError(f"{path}: not a readable image ({error})") from error
        pixels *= np.float32(1 / 255)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)), int(self.labels[index])

    def __repr__(self) -> str:
        size = "own sizes" if self.image_size is None else "x".join(map(str, self.image_size))
        return f"ImageFolder({len(self)} images, {size}, {len(self.classes)} classes, root={str(self.root)!r})"
