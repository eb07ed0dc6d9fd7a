"""DataLoader: every sample once per epoch, batch shapes, drop_last, seeded epochs, set_epoch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit.data import ArrayDataset, DataLoader
from scratchvit.data import transforms as T


def array_dataset(count=23, channels=2, size=4):
    images = np.arange(count * channels * size * size, dtype=np.float32).reshape(count, channels, size, size)
    return ArrayDataset(images, np.arange(count) % 5, [f"class{k}" for k in range(5)])


class ListDataset:
    """A data set without .images: the loader must read it sample by sample."""

    def __init__(self, count=11, shapes=None):
        self.count = count
        self.shapes = shapes or {}
        self.classes = ["a", "b", "c"]

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.full(self.shapes.get(index, (1, 3, 3)), index, np.float32), index % 3


def sample_ids(images):
    """The sample index of each image in a batch of array_dataset() images (its first pixel / pixels per image)."""
    return (images.data[:, 0, 0, 0] // images.data[0].size).astype(int)


@given(count=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(), drop_last=st.booleans())
def test_each_sample_once_per_epoch(count, batch_size, shuffle, drop_last):
    loader = DataLoader(array_dataset(count), batch_size, shuffle=shuffle, drop_last=drop_last)
    seen = []
    batches = list(loader)
    for images, labels in batches:
        assert isinstance(images, sv.Tensor) and images.dtype == np.float32
        assert images.shape[1:] == (2, 4, 4) and labels.dtype == np.int64 and labels.shape == (images.shape[0],)
        ids = sample_ids(images)
        assert np.array_equal(labels, ids % 5)  # the label of each image travels with it
        seen.extend(ids.tolist())
    assert len(batches) == len(loader)
    if drop_last:
        assert len(loader) == count // batch_size
        assert all(images.shape[0] == batch_size for images, _ in batches)
        assert len(set(seen)) == len(seen) == (count // batch_size) * batch_size
    else:
        assert len(loader) == -(-count // batch_size)
        assert sorted(seen) == list(range(count))
    if not shuffle:
        assert seen == list(range(len(seen)))


def test_last_batch_is_partial_unless_dropped():
    sizes = [images.shape[0] for images, _ in DataLoader(array_dataset(23), 5)]
    assert sizes == [5, 5, 5, 5, 3]
    assert [images.shape[0] for images, _ in DataLoader(array_dataset(23), 5, drop_last=True)] == [5, 5, 5, 5]


def epoch_orders(loader, epochs):
    return [np.concatenate([sample_ids(images) for images, _ in loader]).tolist() for _ in range(epochs)]


def test_shuffle_is_seeded_and_changes_every_epoch():
    first = epoch_orders(DataLoader(array_dataset(), 4, shuffle=True, seed=7), 3)
    again = epoch_orders(DataLoader(array_dataset(), 4, shuffle=True, seed=7), 3)
    other = epoch_orders(DataLoader(array_dataset(), 4, shuffle=True, seed=8), 3)
    assert first == again
    assert first != other
    assert len({tuple(order) for order in first}) == 3


def test_set_epoch_replays_an_epoch_order_and_augmentation():
    transform = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip()])
    loader = DataLoader(array_dataset(), 4, shuffle=True, seed=3, transform=transform)
    epochs = [[(images.data.copy(), labels) for images, labels in loader] for _ in range(3)]
    resumed = DataLoader(array_dataset(), 4, shuffle=True, seed=3, transform=transform)
    resumed.set_epoch(2)
    replay = [(images.data, labels) for images, labels in resumed]
    for (expected_images, expected_labels), (images, labels) in zip(epochs[2], replay, strict=True):
        assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    assert resumed.epoch == 3
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epochs[0], epochs[1], strict=True))


def test_an_interrupted_epoch_still_counts():
    loader = DataLoader(array_dataset(), 4, shuffle=True, seed=1)
    next(iter(loader))  # epoch 0, abandoned
    assert loader.epoch == 1
    reference = DataLoader(array_dataset(), 4, shuffle=True, seed=1)
    reference.set_epoch(1)
    assert epoch_orders(loader, 1) == epoch_orders(reference, 1)


def test_transform_draws_per_image_and_keeps_the_source_intact():
    dataset = ArrayDataset(
        np.zeros((16, 1, 1, 4), np.float32) + np.arange(4, dtype=np.float32), np.zeros(16, int), ["x"]
    )
    original = dataset.images.copy()
    ((images, _),) = list(DataLoader(dataset, 16, transform=T.RandomHorizontalFlip()))
    rows = {tuple(row) for row in images.data[:, 0, 0]}
    assert rows == {(0, 1, 2, 3), (3, 2, 1, 0)}
    assert np.array_equal(dataset.images, original)


def test_a_dataset_without_arrays_is_read_sample_by_sample():
    loader = DataLoader(ListDataset(11), 4, shuffle=True, seed=0, transform=T.Normalize(0.0, 2.0))
    ids, labels = [], []
    for images, batch_labels in loader:
        assert images.shape[1:] == (1, 3, 3)
        ids.extend((images.data[:, 0, 0, 0] * 2).astype(int).tolist())
        labels.extend(batch_labels.tolist())
    assert sorted(ids) == list(range(11)) and labels == [i % 3 for i in ids]


def test_images_of_different_shapes_in_one_batch_are_an_error():
    loader = DataLoader(ListDataset(4, shapes={2: (1, 5, 5)}), 4)
    with pytest.raises(ValueError, match="the images of one batch have different shapes"):
        next(iter(loader))


def test_images_go_to_the_device(device):
    images, _ = next(iter(DataLoader(array_dataset(), 4, device=device)))
    assert images.device == device


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(array_dataset(), batch_size)


def test_bad_epoch_and_transform():
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        DataLoader(array_dataset(), 2).set_epoch(-1)
    with pytest.raises(TypeError, match="transform must be callable"):
        DataLoader(array_dataset(), 2, transform="flip")
