"""CIFAR-10 / CIFAR-100 readers and the restricted unpickler, on pickles the tests write.

The real files are protocol-2 pickles written by Python 2; `python2_style_batch` writes one
opcode by opcode (Python 2 strings, numpy.core.multiarray._reconstruct) to check that path too.
"""

import os
import pickle
import struct

import numpy as np
import pytest

from scratchvit.data import DatasetError, load_cifar10, load_cifar100, load_dataset, safe_unpickle

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def random_batch(count, seed, label_keys=("labels",), classes=(10,)):
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % index for index in range(count)],
    }
    for key, class_count in zip(label_keys, classes, strict=True):
        batch[key.encode()] = [int(label) for label in rng.integers(0, class_count, count)]
    return batch


def make_cifar10(folder, protocol=2, counts=(4, 3, 5, 2, 3, 6)):
    """cifar-10-batches-py/ under folder, as the archive unpacks; returns {file name: batch}."""
    folder = folder / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]
    batches = {name: random_batch(count, seed) for seed, (name, count) in enumerate(zip(names, counts, strict=True))}
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches


def make_cifar100(folder):
    batches = {}
    for seed, split in enumerate(("train", "test")):
        batches[split] = random_batch(7 - seed, seed, ("fine_labels", "coarse_labels"), (100, 20))
        (folder / split).write_bytes(pickle.dumps(batches[split], protocol=2))
    meta = {
        b"fine_label_names": [b"fine_%d" % k for k in range(100)],
        b"coarse_label_names": [b"coarse_%d" % k for k in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def expected_images(batches):
    return np.concatenate([batch[b"data"] for batch in batches]).reshape(-1, 3, 32, 32) / 255


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_train_and_test(tmp_path, protocol):
    batches = make_cifar10(tmp_path, protocol)
    train = load_cifar10(tmp_path, "train")
    train_batches = [batches[f"data_batch_{number}"] for number in range(1, 6)]
    assert train.images.shape == (4 + 3 + 5 + 2 + 3, 3, 32, 32) and train.images.dtype == np.float32
    np.testing.assert_allclose(train.images, expected_images(train_batches), rtol=1e-6)
    assert np.array_equal(train.labels, np.concatenate([batch[b"labels"] for batch in train_batches]))
    assert train.labels.dtype == np.int64
    assert train.classes == [name.decode() for name in CIFAR10_NAMES]
    test = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", split="test")
    assert len(test) == 6 and np.array_equal(test.labels, batches["test_batch"][b"labels"])


def test_cifar10_pixel_layout_is_red_green_blue_planes_in_row_order(tmp_path):
    make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    row = np.zeros(3072, np.uint8)
    row[1024 + 32 * 5 + 7] = 255  # green plane, y=5, x=7
    batch = {b"data": row[None], b"labels": [3]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    image, label = load_cifar10(tmp_path, "test")[0]
    assert label == 3 and image[1, 5, 7] == 1.0 and image.sum() == 1.0


def test_cifar100_fine_and_coarse_labels(tmp_path):
    batches = make_cifar100(tmp_path)
    fine = load_cifar100(tmp_path, "train")
    assert len(fine.classes) == 100 and fine.classes[3] == "fine_3"
    assert np.array_equal(fine.labels, batches["train"][b"fine_labels"])
    coarse = load_dataset("cifar100", root=tmp_path, split="test", label_mode="coarse")
    assert len(coarse.classes) == 20 and np.array_equal(coarse.labels, batches["test"][b"coarse_labels"])
    with pytest.raises(ValueError, match="label_mode must be 'fine' or 'coarse'"):
        load_cifar100(tmp_path, label_mode="both")


# ---- Python 2 pickles, opcode by opcode ----------------------------------------------------------
def py2_str(data: bytes) -> bytes:  # SHORT_BINSTRING / BINSTRING: a Python 2 str
    return b"U" + bytes([len(data)]) + data if len(data) < 256 else b"T" + struct.pack("<i", len(data)) + data


def py2_int(value: int) -> bytes:  # BININT1 / BININT
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


# fmt: off
def py2_uint8_array(array: np.ndarray) -> bytes:
    """numpy.core.multiarray._reconstruct(ndarray, (0,), 'b') + __setstate__, as NumPy 1.x on Python 2 wrote it."""
    dtype = (b"cnumpy\ndtype\n" + py2_str(b"u1") + py2_int(0) + py2_int(1) + b"\x87R"  # dtype('u1', 0, 1)
             + b"(" + py2_int(3) + py2_str(b"|") + b"NNN" + py2_int(-1) + py2_int(-1) + py2_int(0) + b"tb")
    shape = b"(" + b"".join(py2_int(side) for side in array.shape) + b"t"
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + py2_int(0) + b"\x85" + py2_str(b"b")
            + b"\x87R" + b"(" + py2_int(1) + shape + dtype + b"\x89" + py2_str(array.tobytes()) + b"tb")


def python2_style_batch(data: np.ndarray, labels: list) -> bytes:
    label_list = b"](" + b"".join(py2_int(label) for label in labels) + b"e"
    return (b"\x80\x02}(" + py2_str(b"data") + py2_uint8_array(data) + py2_str(b"labels") + label_list
            + py2_str(b"batch_label") + py2_str(b"testing batch 1 of 1") + b"u.")
# fmt: on


def test_a_python2_numpy1_pickle_loads(tmp_path):
    make_cifar10(tmp_path)
    data = np.random.default_rng(5).integers(0, 256, (2, 3072), dtype=np.uint8)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(python2_style_batch(data, [7, 1]))
    content = safe_unpickle(path)
    assert set(content) == {b"data", b"labels", b"batch_label"}  # Python 2 str -> bytes
    test = load_cifar10(tmp_path, "test")
    np.testing.assert_allclose(test.images.reshape(2, -1), data / 255, rtol=1e-6)
    assert test.labels.tolist() == [7, 1]


# ---- refusing what is not a CIFAR batch ------------------------------------------------------------
class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class RunsPython:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("payload", [RunsShell, RunsPython])
def test_a_malicious_pickle_is_refused_and_does_not_run(tmp_path, payload, protocol):
    make_cifar10(tmp_path)
    marker = tmp_path / "marker"
    batch = random_batch(2, 0)
    batch[b"labels"] = payload(marker)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    global_name = r"(posix|nt)\.system" if payload is RunsShell else r"(builtins|__builtin__)\.exec"
    with pytest.raises(DatasetError, match=rf"data_batch_3: refused to load the global {global_name}"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_a_numpy_global_outside_the_list_is_refused(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02cnumpy\nload\nU\x03abc\x85R.")  # numpy.load('abc')
    with pytest.raises(DatasetError, match="refused to load the global numpy.load"):
        safe_unpickle(path)


def test_codecs_encode_is_allowed_only_for_latin1(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(DatasetError, match=r"refused _codecs.encode\(str, 'base64'\)"):
        safe_unpickle(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a pickle at all", "not a readable pickle"),
        (pickle.dumps([1, 2, 3], protocol=2), "expected a pickled dict with keys"),
        (pickle.dumps({b"labels": [1]}, protocol=2), r"the dict lacks \['data'\]"),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, protocol=2),
            r"'data' must be a uint8 array of shape \(N, 3072\), got float32 array \(1, 3072\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, protocol=2),
            r"'labels' must be 2 integers",
        ),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, protocol=2),
            "label 12 is out of range for 10 classes",
        ),
    ],
    ids=["garbage", "list", "no-data", "float-data", "label-count", "label-range"],
)
def test_wrong_format_names_the_file_and_what_was_expected(tmp_path, content, message):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(DatasetError, match=f"test_batch: {message}"):
        load_cifar10(tmp_path, "test")


def test_a_truncated_pickle_is_reported(tmp_path):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DatasetError, match="data_batch_2: not a readable pickle"):
        load_cifar10(tmp_path)


def test_missing_files_say_which(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4 does not exist"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="meta does not exist"):
        load_cifar100(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "absent")
