"""Batches of (images Tensor (B, C, H, W) float32, labels (B,) int64) from a data set."""

from __future__ import annotations

import queue
import threading

import numpy as np

from .. import backend
from ..autograd import Tensor
from .distributed_sampler import DistributedSampler


def prefetched(batches, depth: int = 2):
    """Iterate over `batches` while a background thread makes the next `depth` of them: the
    host's gathering, augmenting and copying overlap the device's work on the current batch.
    An error in the thread is raised where the batch it was making would have come."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def hand_over(item) -> bool:
        """Queue `item` for the consumer; False once the consumer has stopped iterating."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(finished)
        except BaseException as error:  # handed to the consumer, raised there
            hand_over(error)
        finally:
            batches.close()  # in this thread, whose current device `batches` may have set

    worker = threading.Thread(target=produce, name="scratchvit-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class DataLoader:
    """Iterate over `dataset` in batches; each `iter()` is one epoch.

    >>> loader = DataLoader(load_dataset("digits"), batch_size=64, shuffle=True, seed=0, device="cuda")
    >>> for images, labels in loader: ...        # Tensor (64, 1, 8, 8) on cuda, np int64 (64,)

    Epoch k (counted from 0; each `iter()` starts the next one) shuffles with a generator
    seeded by (seed, k), and the transform draws from another seeded by (seed, k), so an epoch
    is a function of seed and k alone: `set_epoch(k)` before iterating replays epoch k, e.g.
    when resuming from a checkpoint.

    transform: called on each batch as `transform(images (B, C, H, W), rng)` (see transforms.py,
    each image gets its own draw). device: where the batches go (None: the default device,
    `sv.default_device()`). On the CPU the labels are a NumPy array; on a GPU images and labels
    are copied there by a background thread that prepares the next batches while the current
    one trains (`prefetched`), so the training step never waits for the host.

    A data set with `.images` and `.labels` arrays (an ArrayDataset) is batched by indexing those
    arrays; any other is read sample by sample with `dataset[i]`, and its images must all have one shape.
    Images must be floating point (float16, float32 or float64; batches are float32): integer
    pixels have no one scale (255? 65535?) and object arrays no numbers, so either is refused,
    naming `dataset.images` or the sample (`to_float_images` converts integer pixels).

    num_replicas, rank: in a data-parallel job of num_replicas processes, this loader yields rank
    `rank`'s part of each batch of `batch_size` (the global batch), as DistributedSampler
    splits it; every rank gets the same number of batches, and a part may be empty. Each rank
    draws its own augmentations.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform=None,
        device=None,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(images, rng), got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.device = backend.get_device(device)
        self.epoch = 0
        self.sampler = DistributedSampler(
            len(dataset),
            self.batch_size,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=self.shuffle,
            seed=self.seed,
            drop_last=self.drop_last,
        )
        self._in_memory = isinstance(getattr(dataset, "images", None), np.ndarray) and isinstance(
            getattr(dataset, "labels", None), np.ndarray
        )
        if self._in_memory:
            _check_image_dtype(dataset.images, "dataset.images")

    def set_epoch(self, epoch: int) -> None:
        """Make the next `iter()` epoch `epoch` (its order and augmentations are replayed exactly)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """The number of batches in an epoch."""
        return len(self.sampler)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self.device.kind == "cpu":
            return self._host_batches(epoch)
        return prefetched(self._device_batches(epoch))

    def _host_batches(self, epoch: int):
        """(images (B, C, H, W) float32, labels (B,) int64) NumPy arrays, gathered and augmented."""
        # Independent streams of (seed, epoch): 0 orders the epoch (in the sampler), 1 + rank draws this
        # rank's augmentations, so the order does not depend on the transform and ranks crop differently.
        transform_rng = np.random.default_rng([self.seed, epoch, 1 + self.sampler.rank])
        for indices in self.sampler.batches(epoch):
            images, labels = self._gather(indices)
            if self.transform is not None:
                images = self.transform(images, transform_rng)
            yield Tensor(np.ascontiguousarray(images, dtype=np.float32)), labels

    def _device_batches(self, epoch: int):
        """The host batches copied to the GPU, images and labels: made in prefetched()'s thread,
        on a stream of its own that it waits for, so the training step never waits for a copy."""
        cupy = self.device.xp
        with backend.on_device(self.device):
            copies = cupy.cuda.Stream(non_blocking=True)
            for images, labels in self._host_batches(epoch):
                with copies:
                    batch = Tensor(backend.to_device(images.data, self.device)), backend.to_device(labels, self.device)
                copies.synchronize()
                yield batch

    def _gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (images (B, C, H, W) float32, a fresh array; labels (B,) int64)"""
        if self._in_memory:  # one fancy index per array, no Python loop over samples
            return self.dataset.images[indices], self.dataset.labels[indices].astype(np.int64)
        samples = [self.dataset[int(index)] for index in indices]
        for index, (image, _) in zip(indices, samples, strict=True):
            _check_image_dtype(np.asarray(image), f"the image of dataset[{index}]")
        if not samples:  # a rank's empty part of a small batch (num_replicas > 1): shaped as the images are
            return np.zeros((0, *np.shape(self.dataset[0][0])), np.float32), np.zeros(0, np.int64)
        shapes = {np.shape(image) for image, _ in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"the images of one batch have different shapes {sorted(shapes)}: give the data set a fixed "
                "size, e.g. ImageFolder(root, image_size=224)"
            )
        images = np.stack([np.asarray(image, dtype=np.float32) for image, _ in samples])
        return images, np.array([label for _, label in samples], dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, device={self.device}"
            + (f", rank {self.sampler.rank} of {self.sampler.num_replicas})" if self.sampler.num_replicas > 1 else ")")
        )


def _check_image_dtype(images: np.ndarray, argument: str) -> None:
    """TypeError naming `argument` unless `images` hold floating-point pixels."""
    if images.dtype.kind != "f":
        hint = (
            " (integer pixels: scratchvit.data.base.to_float_images(pixels, maximum))"
            if images.dtype.kind in "iub"
            else ""
        )
        raise TypeError(f"{argument} must be floating-point pixels (float32 in [0, 1]), got dtype {images.dtype}{hint}")
