"""torch.save zip checkpoints read without torch: tensors rebuilt exactly (views, offsets, shared
storages, float16 / bfloat16 widened), and every hostile or broken file refused with a CheckpointError
that names the file, before anything in it runs."""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scratchvit.io.errors import CheckpointError
from scratchvit.io.torch_zip import read_torch_zip

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _round_to_bfloat16(array: np.ndarray) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), as float32: what torch's .bfloat16() keeps."""
    bits = array.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def _torch_zip(path: Path, data_pkl: bytes, storages: dict | None = None) -> Path:
    """A zip laid out as torch.save writes it, around the given data.pkl bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def _pickled_call(module: str, name: str, argument: str) -> bytes:
    """Protocol-2 pickle bytes of module.name(argument), written opcode by opcode (so no module need
    be importable here, torch included)."""
    text = argument.encode()
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(text).to_bytes(4, "little") + text + b"\x85R."


def test_a_plain_state_dict_comes_back_as_float32_arrays():
    state = read_torch_zip(FIXTURES / "vit.pth")
    assert list(state)[:3] == ["cls_token", "pos_embed", "patch_embed.proj.weight"]
    assert state["patch_embed.proj.weight"].shape == (32, 3, 8, 8)
    assert all(
        array.dtype == np.float32 and array.flags.c_contiguous and array.flags.writeable for array in state.values()
    )


def test_views_offsets_and_shared_storages_are_rebuilt_exactly():
    plain = read_torch_zip(FIXTURES / "vit.pth")
    views = read_torch_zip(FIXTURES / "vit_views.pth")  # 2-D weights saved as transposed offset views
    assert views.keys() == plain.keys()
    for name in plain:
        np.testing.assert_array_equal(views[name], plain[name], err_msg=name)
        assert views[name].flags.c_contiguous and views[name].flags.writeable
    views["cls_token"][...] = 0  # cls_token and pos_embed shared one storage; the copies do not
    np.testing.assert_array_equal(views["pos_embed"], plain["pos_embed"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_tensors_are_widened_to_float32_exactly(dtype):
    plain = read_torch_zip(FIXTURES / "vit.pth")
    low = read_torch_zip(FIXTURES / f"vit_{dtype}.pth")["model"]
    for name, array in plain.items():
        expected = array.astype(np.float16).astype(np.float32) if dtype == "float16" else _round_to_bfloat16(array)
        assert low[name].dtype == np.float32
        np.testing.assert_array_equal(low[name], expected, err_msg=name)


def test_wrappers_and_plain_values_survive():
    content = read_torch_zip(FIXTURES / "vit_train_checkpoint.pth")
    assert content["epoch"] == 3 and content["arch"] == "vit_tiny_patch16_224" and content["metric"] == 0.5
    assert set(content) == {"epoch", "arch", "state_dict", "state_dict_ema", "metric"}


def test_zero_byte_and_truncated_files_are_refused(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth"):
        read_torch_zip(empty)
    data = (FIXTURES / "vit.pth").read_bytes()
    for fraction in (0.3, 0.9):
        cut = tmp_path / f"cut_{fraction}.pth"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(CheckpointError, match=f"cut_{fraction}.pth"):
            read_torch_zip(cut)


def test_a_zip_that_is_not_a_torch_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"notes\.pth.*not a torch checkpoint.*readme\.txt"):
        read_torch_zip(path)


def test_a_torchscript_archive_is_named(tmp_path):
    path = tmp_path / "scripted.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("scripted/data.pkl", _pickled_call("__torch__.torch.nn.modules.linear", "Linear", ""))
        archive.writestr("scripted/constants.pkl", b"")
        archive.writestr("scripted/code/__torch__.py", "")
    with pytest.raises(CheckpointError, match="TorchScript"):
        read_torch_zip(path)


class _Exploit:
    """Unpickling this runs `command` through os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize(
    "make_pickle, refused",
    [
        (lambda marker: pickle.dumps({"weight": _Exploit(f"touch {marker}")}, protocol=2), "system"),
        (lambda marker: pickle.dumps(_Exploit(f"touch {marker}"), protocol=4), "system"),
        (lambda marker: _pickled_call("builtins", "exec", f"open({str(marker)!r}, 'w').write('ran')"), "builtins.exec"),
        (lambda marker: _pickled_call("torch.storage", "_load_from_bytes", str(marker)), "_load_from_bytes"),
        (lambda marker: _pickled_call("torch._utils", "_rebuild_tensor_v3", str(marker)), "_rebuild_tensor_v3"),
    ],
    ids=[
        "os.system in a dict",
        "os.system protocol 4",
        "builtins.exec",
        "torch.storage._load_from_bytes",
        "torch._utils._rebuild_tensor_v3",
    ],
)
def test_a_malicious_global_is_refused_before_it_runs(tmp_path, make_pickle, refused):
    marker = tmp_path / "marker"
    path = _torch_zip(tmp_path / "evil.pth", make_pickle(marker))
    with pytest.raises(CheckpointError, match=r"evil\.pth") as error:
        read_torch_zip(path)
    assert refused in str(error.value)
    assert not marker.exists()
    assert "torch" not in sys.modules


def test_an_unsupported_dtype_is_named():
    with pytest.raises(CheckpointError, match=r"bad_complex\.pth.*unsupported dtype torch\.ComplexFloatStorage"):
        read_torch_zip(FIXTURES / "bad_complex.pth")


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    # {'w': _rebuild_tensor_v2(storage '0' of 4 floats, offset 0, size (3, 2), stride (2, 1), False,
    # OrderedDict())}: its last element is 0 + 2 * 2 + 1 * 1 = 5, past the storage
    data_pkl = (
        b"\x80\x02}X\x01\x00\x00\x00w"
        b"ctorch._utils\n_rebuild_tensor_v2\n"
        b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
        b"K\x00K\x03K\x02\x86K\x02K\x01\x86\x89ccollections\nOrderedDict\n)RtRs."
    )
    path = _torch_zip(tmp_path / "overrun.pth", data_pkl, {"0": np.arange(4, dtype=np.float32).tobytes()})
    with pytest.raises(CheckpointError, match=r"overrun\.pth.*reaches element 5 of a storage of 4"):
        read_torch_zip(path)
    # the same record with a storage of 6 elements reads fine, with the stride applied
    path = _torch_zip(
        tmp_path / "fits.pth", data_pkl.replace(b"K\x04tQ", b"K\x06tQ"), {"0": np.arange(6, dtype=np.float32).tobytes()}
    )
    np.testing.assert_array_equal(read_torch_zip(path)["w"], np.arange(6, dtype=np.float32).reshape(3, 2))


def test_a_missing_storage_is_refused(tmp_path):
    with zipfile.ZipFile(FIXTURES / "vit.pth") as source, zipfile.ZipFile(tmp_path / "hole.pth", "w") as target:
        for item in source.infolist():
            if not item.filename.endswith("/data/3"):
                target.writestr(item, source.read(item))
    with pytest.raises(CheckpointError, match=r"hole\.pth.*storage data/3 is missing"):
        read_torch_zip(tmp_path / "hole.pth")
