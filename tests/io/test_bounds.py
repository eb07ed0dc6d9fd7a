"""Reading within bounds: only regular files, the decode budget and its explicit limit, shapes checked
as NumPy would check them, and .npz files read exactly as np.load reads them (tests/hostile holds
the hostile files themselves)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from scratchvit.io import CheckpointError, read_checkpoint, read_state_dict, save_checkpoint
from scratchvit.io.files import MAX_DECODED_BYTES_VARIABLE, DecodeBudget, array_nbytes, load_json, open_regular
from scratchvit.io.npz import read_npz
from scratchvit.models import create_model

ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    "big_endian": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False, True]),
    "int8": np.array([-3, 0, 7], dtype=np.int8),
    "empty": np.zeros((0, 5), np.float16),
    "scalar": np.float32(2.5),
    "text": np.array("a string, as our checkpoints keep their metadata"),
}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_files_read_exactly_as_np_load_reads_them(tmp_path, save):
    path = tmp_path / "arrays.npz"
    save(path, **ARRAYS)
    ours = read_npz(path)
    with np.load(path) as theirs:
        assert list(ours) == list(theirs.files) == list(ARRAYS)
        for name in ARRAYS:
            assert ours[name].dtype == theirs[name].dtype and ours[name].shape == theirs[name].shape, name
            np.testing.assert_array_equal(ours[name], theirs[name])
            assert ours[name].flags.writeable
    assert ours["fortran"].flags.f_contiguous and ours["big_endian"].dtype == np.dtype(">i4")


def test_a_member_of_another_dtype_size_than_its_bytes_is_refused(tmp_path):
    """The header says float64 (16 bytes for 2 numbers); the member holds 8: refused before allocating."""
    path = tmp_path / "short.npz"
    np.savez(path, w=np.zeros(2, np.float32))
    with zipfile.ZipFile(path) as archive:
        data = archive.read("w.npy").replace(b"'<f4'", b"'<f8'")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", data)
    with pytest.raises(CheckpointError, match=r"short\.npz: damaged member 'w\.npy': .*16 bytes\), the member holds 8"):
        read_npz(path)


@pytest.mark.parametrize(
    ("size", "limit"),
    [(0, 64 * 2**20), (1000, 64 * 2**20), (4 * 2**20, 64 * 2**20), (10 * 2**20, 160 * 2**20)],
)
def test_the_budget_is_16_times_the_file_and_at_least_64_mib(tmp_path, size, limit):
    assert DecodeBudget(tmp_path / "f", size).limit == limit


def test_the_budget_is_spent_part_by_part_and_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_DECODED_BYTES_VARIABLE, "100")
    budget = DecodeBudget(tmp_path / "weights.pth", 10)
    budget.take(60, "storage data/0")
    budget.take(40, "storage data/1")
    with pytest.raises(CheckpointError, match=r"weights\.pth: storage data/2 would decode to 1 bytes, beyond the 100"):
        budget.take(1, "storage data/2")


def test_an_explicit_budget_lets_a_checkpoint_decode_to_more(tmp_path, monkeypatch):
    """A checkpoint compressed 1000-fold (all zeros) needs the explicit limit; with it, it loads."""
    model = create_model("vit_tiny_patch16_224", img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    path = save_checkpoint(tmp_path / "plain.npz", model)
    with zipfile.ZipFile(path) as archive:
        members = [(name, archive.read(name)) for name in archive.namelist()]
    big = np.lib.format.header_data_from_array_1_0(np.zeros(2**25, np.float32))
    header = tmp_path / "header.npy"
    with open(header, "wb") as file:
        np.lib.format.write_array_header_1_0(file, big)
    compressed = tmp_path / "compressed.npz"
    with zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        archive.writestr("zeros.npy", header.read_bytes() + bytes(2**27))
    assert os.path.getsize(compressed) < 2**20
    with pytest.raises(CheckpointError, match=r"compressed\.npz: member 'zeros\.npy' would decode to 134,217,"):
        read_checkpoint(compressed)
    monkeypatch.setenv(MAX_DECODED_BYTES_VARIABLE, str(2**28))
    np.testing.assert_array_equal(read_state_dict(compressed)[0]["pos_embed"], model.state_dict()["pos_embed"].data)


@pytest.mark.parametrize(
    "shape", [(2**61, 0), (2**62, 0), (2**63 - 1, 0), (2**63, 0), (0, 2**40, 2**20), (3, 0, 2**60)]
)
def test_shapes_are_refused_exactly_where_numpy_refuses_them(tmp_path, shape):
    """Zero-size shapes, so NumPy allocates nothing: it makes the array iff array_nbytes accepts it."""
    try:
        np.empty(shape, np.float32)
        numpy_accepts = True
    except ValueError:
        numpy_accepts = False
    if numpy_accepts:
        assert array_nbytes(tmp_path / "f", shape, 4, "tensor 'w'") == 0
    else:
        with pytest.raises(CheckpointError, match=r"f: tensor 'w' has the shape .* too large for any array"):
            array_nbytes(tmp_path / "f", shape, 4, "tensor 'w'")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=r"weights\.pth: a FIFO \(named pipe\), not a regular weights file"):
        open_regular(fifo, "weights")


def test_a_symlink_to_a_regular_file_is_read(tmp_path):
    target = tmp_path / "real.npz"
    np.savez(target, w=np.ones(3))
    (tmp_path / "link.npz").symlink_to(target)
    np.testing.assert_array_equal(read_npz(tmp_path / "link.npz")["w"], np.ones(3))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "it nests too deeply"),
        ("[" + "9" * 5000 + "]", "it holds a number too long to read"),
        (b'{"\xff": 1}', "can't decode byte 0xff"),
        ('{"a": 1', "Expecting ',' delimiter"),
    ],
)
def test_json_errors_are_one_line_naming_the_file(tmp_path, text, reason):
    with pytest.raises(CheckpointError, match=r"meta\.json: its metadata is not valid JSON \(") as caught:
        load_json(text, tmp_path / "meta.json", "its metadata")
    assert reason in str(caught.value)
