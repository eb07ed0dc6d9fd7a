"""stratified_split (numpy only) and the embedded digits data set (scikit-learn, skipped without it)."""

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvit.data import ArrayDataset, load_dataset, load_digits, stratified_split

label_arrays = st.lists(st.integers(0, 5), min_size=2, max_size=200).map(lambda values: np.array(values, np.int64))


@given(labels=label_arrays, test_fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_stratified_split_partitions_and_keeps_each_class_share(labels, test_fraction, seed):
    train, test = stratified_split(labels, test_fraction, seed)
    assert train.dtype == test.dtype == np.int64
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))  # a partition
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, no repeats
    assert test.size == int(np.ceil(round(test_fraction * labels.size, 9)))
    for label in np.unique(labels):
        count = int(np.sum(labels == label))
        in_test = int(np.sum(labels[test] == label))
        assert abs(in_test - test_fraction * count) < 1  # floor or floor + 1 of the class's quota
    again_train, again_test = stratified_split(labels, test_fraction, seed)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)


def test_stratified_split_depends_on_the_seed():
    labels = np.repeat(np.arange(4), 50)
    splits = {tuple(stratified_split(labels, 0.2, seed)[1]) for seed in range(5)}
    assert len(splits) == 5


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_stratified_split_rejects_a_fraction_outside_0_1(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.arange(10) % 2, bad)


def test_stratified_split_rejects_non_integer_labels():
    with pytest.raises(ValueError, match="labels must be a 1-D integer array"):
        stratified_split(np.zeros(10, np.float32))


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'scratchvit\[demo\]'"):
        load_digits()


def test_digits_split_sizes_values_and_stratification():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    train, test = load_digits("train"), load_digits("test")
    assert isinstance(train, ArrayDataset)
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 8, 8) and train.images.dtype == np.float32
    assert train.labels.dtype == np.int64 and train.classes == [str(digit) for digit in range(10)]
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    all_labels = sklearn_datasets.load_digits().target
    for digit in range(10):  # each digit keeps its share (within one image) in the test part
        assert abs(np.sum(test.labels == digit) - 0.2 * np.sum(all_labels == digit)) < 1
    image, label = test[0]
    assert image.shape == (1, 8, 8) and isinstance(label, int)


def test_digits_split_is_fixed_and_disjoint():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    train_indices, test_indices = stratified_split(bunch.target, 0.2, 0)
    train, test = load_digits("train"), load_digits("test")
    assert np.array_equal(train.images[:, 0] * 16, bunch.images[train_indices])
    assert np.array_equal(test.labels, bunch.target[test_indices])
    assert np.array_equal(load_digits("test").images, test.images)  # the same split every time
    assert not np.array_equal(load_digits("test", split_seed=1).labels, test.labels)


def test_digits_three_channels_repeat_the_grey_one():
    pytest.importorskip("sklearn")
    grey, rgb = load_digits("test"), load_dataset("digits", split="test", channels=3)
    assert rgb.images.shape == (360, 3, 8, 8)
    assert np.array_equal(rgb.images, np.repeat(grey.images, 3, axis=1))


def test_digits_rejects_a_bad_split_and_bad_channels():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_digits("validation")
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="channels"):
        load_digits(channels=0)
