"""A stratified train/test split: every class keeps (nearly) the data set's test fraction."""

from __future__ import annotations

import math

import numpy as np


def stratified_split(labels, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so each class has the same share in the test part.

    labels: (N,) integers -> (train_indices (N - T,), test_indices (T,)), both int64 and sorted,
    with T = ceil(test_fraction * N) as scikit-learn's `train_test_split(..., stratify=labels)`.

    Class c of n_c samples gives floor(test_fraction * n_c) test samples; the few left to reach T
    go one each to the classes with the largest remainders (ties: the lower class first). Which
    samples of a class go to test is a permutation drawn from `np.random.default_rng(seed)`, class
    by class in increasing order, so one seed always gives one split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    quotas = test_fraction * counts
    per_class = np.floor(quotas).astype(np.int64)
    missing = math.ceil(round(test_fraction * labels.size, 9)) - int(per_class.sum())
    largest_remainders = np.argsort(-(quotas - per_class), kind="stable")[:missing]
    per_class[largest_remainders] += 1

    rng = np.random.default_rng(seed)
    test_parts = []
    for label, take in zip(classes, per_class, strict=True):
        members = np.flatnonzero(labels == label)
        test_parts.append(rng.permutation(members)[:take])
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train = np.setdiff1d(np.arange(labels.size, dtype=np.int64), test, assume_unique=True)
    return train, test
