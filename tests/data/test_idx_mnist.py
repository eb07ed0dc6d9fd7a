"""The idx reader and MNIST / Fashion-MNIST, on small idx files the tests write (raw and .gz)."""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchvit.data import DatasetError, load_dataset, load_mnist, read_idx

TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of `array`: magic (0, 0, type code, ndim), big-endian dims, big-endian values."""
    header = bytes([0, 0, TYPE_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data: bytes):
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_mnist(folder, gz: bool, train_count=12, test_count=5, seed=0):
    """The four MNIST files with random 28x28 images; returns {split: (pixels, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    made = {}
    for split, stem, count in (("train", "train", train_count), ("test", "t10k", test_count)):
        pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write(folder / f"{stem}-images-idx3-ubyte{suffix}", idx_bytes(pixels))
        write(folder / f"{stem}-labels-idx1-ubyte{suffix}", idx_bytes(labels))
        made[split] = (pixels, labels)
    return made


dtypes = st.sampled_from(list(TYPE_CODES))


@given(array=dtypes.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5))))
def test_read_idx_round_trips_every_type(tmp_path_factory, array):
    path = write(tmp_path_factory.mktemp("idx") / "data.idx", idx_bytes(array))
    read = read_idx(path)
    assert read.shape == array.shape and read.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_mnist_from_raw_and_gz_files(tmp_path, gz):
    made = make_mnist(tmp_path, gz)
    for split in ("train", "test"):
        dataset = load_mnist(tmp_path, split)
        pixels, labels = made[split]
        assert dataset.images.shape == (len(labels), 1, 28, 28) and dataset.images.dtype == np.float32
        np.testing.assert_allclose(dataset.images[:, 0], pixels / 255, rtol=1e-6)
        assert dataset.labels.dtype == np.int64 and np.array_equal(dataset.labels, labels)
        assert dataset.classes == [str(digit) for digit in range(10)]


def test_fashion_mnist_names_its_classes_and_channels_repeat(tmp_path):
    make_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)  # torchvision's layout
    dataset = load_dataset("fashion_mnist", root=tmp_path, split="test", channels=3)
    assert dataset.classes[0] == "T-shirt/top" and dataset.classes[9] == "Ankle boot"
    assert dataset.images.shape == (5, 3, 28, 28)
    assert np.array_equal(dataset.images[:, 0], dataset.images[:, 2])


def test_load_dataset_mnist(tmp_path):
    made = make_mnist(tmp_path / "raw", gz=False)
    dataset = load_dataset("mnist", root=tmp_path)
    image, label = dataset[3]
    assert image.shape == (1, 28, 28) and label == int(made["train"][1][3])


def test_bad_magic_number_names_the_file_and_the_expected_magic(tmp_path):
    make_mnist(tmp_path, gz=True)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((12, 28), np.int16)))
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte\.gz: bad magic number 0x00000b02, "
        r"expected 0x00000803 for unsigned-byte images",
    ):
        load_mnist(tmp_path)


def test_a_file_that_is_not_idx_is_refused(tmp_path):
    path = write(tmp_path / "notes.txt", b"hello, this is text")
    with pytest.raises(DatasetError, match=r"notes\.txt: bad magic number 0x68656c6c.*not an idx file"):
        read_idx(path)


@pytest.mark.parametrize("cut", [2, 9, 4 + 3 * 4 + 100])
def test_truncated_idx_file_is_reported(tmp_path, cut):
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8))[:cut]
    path = write(tmp_path / "train-images-idx3-ubyte", data)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: truncated"):
        read_idx(path)


def test_truncated_idx_data_says_how_much_was_expected(tmp_path):
    path = write(tmp_path / "images", idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-1])
    with pytest.raises(
        DatasetError,
        match=r"truncated: the header says unsigned-byte data of shape \(3, 28, 28\), "
        r"2352 bytes, but 2351 bytes follow it",
    ):
        read_idx(path)


def test_extra_bytes_after_the_data_are_refused(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="too long"):
        read_idx(path)


def test_truncated_gzip_stream_is_reported(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:-12])
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: not a readable gzip file"):
        read_idx(path)


def test_not_gzip_although_named_gz(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(np.zeros((1, 2, 2), np.uint8)))
    with pytest.raises(DatasetError, match="not a readable gzip file"):
        read_idx(path)


def test_images_and_labels_must_agree_in_count(tmp_path):
    make_mnist(tmp_path, gz=False)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(DatasetError, match="holds 11 labels but train-images-idx3-ubyte 12 images"):
        load_mnist(tmp_path)


def test_labels_must_be_digits(tmp_path):
    make_mnist(tmp_path, gz=False)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(DatasetError, match="labels must be 0..9, found 10"):
        load_mnist(tmp_path, "test")


def test_missing_root_and_missing_files_say_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="root .*nowhere.* does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no train-images-idx3-ubyte or train-images-idx3-ubyte\.gz"):
        load_mnist(tmp_path)
    with pytest.raises(TypeError, match="root is required"):
        load_dataset("mnist")
