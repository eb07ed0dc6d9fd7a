"""Which samples each process reads in a data-parallel job: every global batch, split among the ranks.

The policy. Epoch k is the order one process would read: the sample indices, shuffled by a
generator seeded with (seed, k) when shuffle is on, cut into global batches of batch_size (the
last one smaller, or dropped with drop_last). Rank r of W takes the r-th of W contiguous parts of
every global batch; the parts differ in size by at most one (np.array_split: the first
len(batch) % W ranks get the extra sample). Nothing is padded and nothing more is dropped, so

- every sample is read exactly once per epoch across the ranks (with drop_last: all but those of
  the last partial batch, as in one process);
- at step k the ranks together read exactly the batch one process reads at step k. Averaging
  their gradients weighted by the size of each rank's part (`distributed.all_reduce_grads(...,
  weight=len(part))`) gives the gradient of that whole batch, so W processes make the same
  updates as one, to float rounding, whatever the data set size, batch size or W: that is what
  the 2-process == 1-process test checks, and why `--batch-size` means the global batch;
- every rank takes the same number of steps, len(sampler), which keeps their collective calls in
  step. A rank's part of a batch smaller than W is empty: the training loop skips the forward
  pass for it but still joins the all-reduce, with weight 0.

PyTorch's DistributedSampler pads instead: it repeats the first samples until the data set
divides by W and gives each rank a batch of its own size. Its parts are equal, but a few samples
are read twice per epoch, and W processes no longer train like one when the size does not divide.
"""

from __future__ import annotations

import math

import numpy as np


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class DistributedSampler:
    """Rank `rank`'s part of every batch of an epoch over `size` samples.

    >>> sampler = DistributedSampler(10, batch_size=4, num_replicas=2, rank=1)
    >>> [part.tolist() for part in sampler.batches(epoch=0)]
    [[2, 3], [6, 7], [9]]

    Rank 0 gets [[0, 1], [4, 5], [8]]: together the batches [0..3], [4..7], [8, 9] of one process.
    With num_replicas=1 (the default) it is the single-process order, which DataLoader uses.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ):
        self.size = _check_int("size", size, 0)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        rank = _check_int("rank", rank, 0)
        if rank >= self.num_replicas:
            raise ValueError(f"rank must be less than num_replicas {self.num_replicas}, got {rank}")
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        """The number of batches in an epoch, the same on every rank."""
        count = self.size / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def batches(self, epoch: int):
        """Yield this rank's sample indices (an int array, possibly empty) for each batch of `epoch`."""
        # Stream 0 of (seed, epoch) orders the epoch; the loader draws augmentations from others.
        order_rng = np.random.default_rng([self.seed, epoch, 0])
        order = order_rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        for batch_number in range(len(self)):
            batch = order[batch_number * self.batch_size : (batch_number + 1) * self.batch_size]
            yield np.array_split(batch, self.num_replicas)[self.rank]

    def __repr__(self) -> str:
        return (
            f"DistributedSampler({self.size} samples, batch_size={self.batch_size}, rank {self.rank} of "
            f"{self.num_replicas}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})"
        )
