"""safetensors read and written with NumPy alone (float16 / bfloat16 widened to float32, damaged files
refused with the file named), held to the safetensors package's verdicts where it is installed."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchvit.io.errors import CheckpointError
from scratchvit.io.safetensors import bfloat16_to_float32, read_safetensors, write_safetensors
from scratchvit.io.torch_zip import read_torch_zip

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_timm_files_read_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors now fails
    state = read_safetensors(FIXTURES / "vit.safetensors")
    reference = read_torch_zip(FIXTURES / "vit.pth")
    assert state.keys() == reference.keys()
    for name, array in reference.items():
        np.testing.assert_array_equal(state[name], array, err_msg=name)
        assert state[name].flags.writeable


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_widened_as_torch_rounded_it(dtype):
    state = read_safetensors(FIXTURES / f"vit_{dtype}.safetensors")
    from_torch = read_torch_zip(FIXTURES / f"vit_{dtype}.pth")["model"]  # the same tensors, torch.save'd
    for name, array in from_torch.items():
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], array, err_msg=name)


def test_bfloat16_widening_is_exact():
    values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0, np.inf, 2.0**-130], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # these values are exact in bfloat16
    np.testing.assert_array_equal(bfloat16_to_float32(bits), values)


def test_the_same_arrays_as_the_package_reads():
    numpy_api = pytest.importorskip("safetensors.numpy")
    for name in ("vit.safetensors", "vit_float16.safetensors", "swin.safetensors"):
        ours, theirs = read_safetensors(FIXTURES / name), numpy_api.load_file(str(FIXTURES / name))
        assert ours.keys() == theirs.keys()
        for key, array in theirs.items():
            np.testing.assert_array_equal(ours[key], array.astype(np.float32) if array.dtype == np.float16 else array)


def test_every_dtype_and_an_empty_tensor(tmp_path):
    arrays = {
        "f64": np.array([1.5, -2.0]),
        "i64": np.array([-3, 4], np.int64),
        "i8": np.array([-1], np.int8),
        "u8": np.array([255], np.uint8),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 3), np.float32),
    }
    names = {"f64": "F64", "i64": "I64", "i8": "I8", "u8": "U8", "bool": "BOOL", "empty": "F32"}
    header, data = {}, b""
    for key, array in arrays.items():
        raw = array.tobytes()
        header[key] = {
            "dtype": names[key],
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    path = tmp_path / "all.safetensors"
    path.write_bytes(_safetensors_bytes(header, data))
    state = read_safetensors(path)
    for key, array in arrays.items():
        assert state[key].dtype == array.dtype and state[key].shape == array.shape
        np.testing.assert_array_equal(state[key], array)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "shorter than the 8-byte header length"),
        (struct.pack("<Q", 1000) + b"{}", "header length says 1000 bytes"),
        (struct.pack("<Q", 4) + b"{no}", "not valid JSON"),
        (
            _safetensors_bytes({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"),
            "unsupported dtype F8_E4M3",
        ),
        (
            _safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
            "truncated safetensors file: tensor 'w' ends at byte 16",
        ),
        (
            _safetensors_bytes({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16),
            "needs 12 bytes",
        ),
        (_safetensors_bytes({"w": {"dtype": "F32", "shape": [2]}}, b""), "lacks dtype, shape or data_offsets"),
        (_safetensors_bytes({"__metadata__": ["x"]}, b""), "__metadata__ is a list"),
    ],
    ids=[
        "empty",
        "header past the end",
        "header not JSON",
        "float8",
        "data cut",
        "size mismatch",
        "no offsets",
        "bad metadata",
    ],
)
def test_damaged_files_name_the_file_and_the_fault(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors") as error:
        read_safetensors(path)
    assert message in str(error.value)


def test_a_truncated_timm_file_is_refused(tmp_path):
    data = (FIXTURES / "vit.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: truncated"):
        read_safetensors(path)


def test_write_then_read_round_trips_with_metadata(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open

    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3).T, "b": np.array([1, 2], np.int64)}
    path = write_safetensors(tmp_path / "w.safetensors", arrays, metadata={"format": "pt"})
    state = read_safetensors(path)
    np.testing.assert_array_equal(state["a"], arrays["a"])
    np.testing.assert_array_equal(state["b"], arrays["b"])
    with safe_open(str(path), framework="numpy") as file:
        assert file.metadata() == {"format": "pt"}
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left behind


def test_writing_needs_no_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    arrays = {
        "f16": np.array([0.5, -2.0], np.float16),
        "big_endian": np.arange(3, dtype=">i4"),
        "bool": np.array([[True], [False]]),
        "scalar": np.float64(2.5),
        "empty": np.zeros((2, 0), np.uint8),
    }
    path = write_safetensors(tmp_path / "w.safetensors", arrays, metadata={"format": "pt"})
    assert (len(path.read_bytes()) - sum(np.asarray(a).nbytes for a in arrays.values())) % 8 == 0  # aligned data
    state = read_safetensors(path, widen_half=False)
    for name, array in arrays.items():
        assert state[name].dtype == np.asarray(array).dtype.newbyteorder("=")
        np.testing.assert_array_equal(state[name], array)


def test_what_cannot_be_written_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="'z' of dtype complex64"):
        write_safetensors(tmp_path / "w.safetensors", {"a": np.zeros(2), "z": np.zeros(2, np.complex64)})
    with pytest.raises(TypeError, match="metadata must map str to str"):
        write_safetensors(tmp_path / "w.safetensors", {"a": np.zeros(2)}, metadata={"epoch": 3})
    assert list(tmp_path.iterdir()) == []


def _f32(name_offsets: dict) -> dict:
    """A header of float32 tensors at the given (begin, end) byte offsets."""
    return {
        name: {"dtype": "F32", "shape": [(end - begin) // 4], "data_offsets": [begin, end]}
        for name, (begin, end) in name_offsets.items()
    }


def _padded(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode() + b"       "
    return struct.pack("<Q", len(text)) + text + data


BOOL_SHAPE = {"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}
# files the package and this reader both refuse, with the words of ours; None: both read them
VERDICT_CASES = {
    "gap between tensors": (_safetensors_bytes(_f32({"a": (0, 4), "b": (8, 12)}), b"\0" * 12), "leaves bytes 4..8"),
    "overlapping tensors": (_safetensors_bytes(_f32({"a": (0, 8), "b": (4, 12)}), b"\0" * 12), "overlaps"),
    "bytes after the data": (_safetensors_bytes(_f32({"a": (0, 4)}), b"\0" * 8), "the file has 8"),
    "not starting at 0": (_safetensors_bytes(_f32({"a": (4, 8)}), b"\0" * 8), "leaves bytes 0..4"),
    "header a list": (_safetensors_bytes([], b""), "its header is a list, not a map"),
    "metadata not strings": (_safetensors_bytes({"__metadata__": {"epoch": 3}}, b""), "not a string"),
    "shape of a bool": (_safetensors_bytes(BOOL_SHAPE, b"\0" * 4), "has the shape"),
    "out of order but tiling": (_safetensors_bytes(_f32({"b": (4, 8), "a": (0, 4)}), b"\0" * 8), None),
    "padded header": (_padded(_f32({"a": (0, 4)}), b"\0" * 4), None),
    "header with a space first": (struct.pack("<Q", 3) + b" {}", None),
    "shape of 2**64": (_safetensors_bytes({"a": {**_f32({"a": (0, 0)})["a"], "shape": [2**64, 0]}}, b""), "too large"),
    "shape whose bytes overflow": (
        _safetensors_bytes({"a": {"dtype": "F32", "shape": [2**32, 2**32, 2], "data_offsets": [0, 8]}}, b"\0" * 8),
        "too large for any array",
    ),
    "a huge extent of an empty tensor": (
        _safetensors_bytes({"a": {**_f32({"a": (0, 0)})["a"], "shape": [2**40, 0]}}, b""),
        None,
    ),
    "header 100,000 deep": (
        struct.pack("<Q", 200_005) + b'{"a":' + b"[" * 100_000 + b"]" * 100_000,
        "nests too deeply",
    ),
    "header in UTF-16": (struct.pack("<Q", 4) + "{}".encode("utf-16-le"), "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(VERDICT_CASES))
def test_the_same_verdicts_as_the_package(tmp_path, case):
    content, message = VERDICT_CASES[case]
    path = tmp_path / "case.safetensors"
    path.write_bytes(content)
    if message is None:
        read_safetensors(path)
    else:
        with pytest.raises(CheckpointError, match=r"case\.safetensors") as error:
            read_safetensors(path)
        assert message in str(error.value)
    numpy_api = pytest.importorskip("safetensors.numpy")
    if message is None:
        numpy_api.load_file(str(path))
    else:
        with pytest.raises(Exception):  # noqa: B017 (the package raises SafetensorError and others)
            numpy_api.load_file(str(path))


def test_a_file_of_empty_tensors_only(tmp_path):
    path = tmp_path / "empty_tensors.safetensors"
    path.write_bytes(_safetensors_bytes({"w": {"dtype": "BF16", "shape": [0, 2], "data_offsets": [0, 0]}}, b""))
    state = read_safetensors(path)
    assert state["w"].shape == (0, 2) and state["w"].dtype == np.float32
