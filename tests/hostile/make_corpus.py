"""A hostile corpus of weights and checkpoint files, generated from code: malicious pickles that would run
code if unpickled, truncated, overlapping, overflowing and oversized files, zip bombs, FIFOs and other
files that are not regular, in every format scratchvit reads (torch .pth zips, legacy pickles, .npz,
safetensors, our own checkpoints).

Each Case says which readers take its file and what the one-line error must say:
    "weights"     read_state_dict: create_model(pretrained=), `scratchvit convert`, `--pretrained`
    "checkpoint"  read_checkpoint: load_checkpoint, `--checkpoint`, `--resume`
and `message`, a regular expression the error must match besides naming the file. Safetensors cases
are marked, so tests can hold the `safetensors` package to the same verdict.

Malicious pickles call `touch <folder>/CANARY` (or write it with exec): if any reader ran one, the
canary file would appear. Nothing here unpickles anything.

    python tests/hostile/make_corpus.py FOLDER     writes the corpus into FOLDER and lists it
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANARY = "CANARY"
BOMB_BYTES = 80 * 2**20  # what a zip bomb inflates to: over the 64 MiB every small file may decode to
WEIGHTS, CHECKPOINT = "weights", "checkpoint"
BOTH = (WEIGHTS, CHECKPOINT)
# the small ViT of the corpus's checkpoints, and the command-line flags that build it
SMALL_VIT = {"img_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "in_chans": 1}
SMALL_VIT_FLAGS = ("--img-size", "8", "--patch-size", "4", "--embed-dim", "16", "--depth", "1", "--num-heads", "2")


@dataclass(frozen=True)
class Case:
    """One hostile file: `build(folder)` writes it there and returns its path."""

    name: str
    build: object
    message: str
    readers: tuple = (WEIGHTS,)
    safetensors: bool = False


# ---- pickles, written opcode by opcode (protocol 2), so nothing need be importable to write them ---------
def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _integer(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1: any size


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _call(module: str, name: str, *arguments: bytes) -> bytes:
    return f"c{module}\n{name}\n".encode() + _tuple(*arguments) + b"R"  # GLOBAL, args, REDUCE


def _dict(items: dict) -> bytes:
    return b"}(" + b"".join(_text(key) + value for key, value in items.items()) + b"u"  # EMPTY_DICT MARK SETITEMS


def _pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _storage(key: str, numel: int, storage_type: str = "FloatStorage") -> bytes:
    """The persistent id torch.save writes for a storage: ('storage', torch.FloatStorage, key, 'cpu', numel)."""
    record = _tuple(_text("storage"), f"ctorch\n{storage_type}\n".encode(), _text(key), _text("cpu"), _integer(numel))
    return record + b"Q"  # BINPERSID


def _tensor(storage: bytes, offset: int, size: tuple, stride: tuple) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return _call(
        "torch._utils",
        "_rebuild_tensor_v2",
        storage,
        _integer(offset),
        _tuple(*map(_integer, size)),
        _tuple(*map(_integer, stride)),
        b"\x89",  # NEWFALSE
        _call("collections", "OrderedDict"),
    )


def _system(folder: Path) -> bytes:
    return _call("os", "system", _text(f"touch {folder / CANARY}"))


def _exec(folder: Path) -> bytes:
    return _call("builtins", "exec", _text(f"open({str(folder / CANARY)!r}, 'w').close()"))


# ---- containers --------------------------------------------------------------------------------------
def _torch_zip(path: Path, data_pkl: bytes, storages: dict | None = None, byteorder: bytes = b"little") -> Path:
    """A zip laid out as torch.save writes it around the given data.pkl; storages: key -> bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", byteorder)
        for key, data in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def _npy(array: np.ndarray | None = None, header: dict | None = None, data: bytes = b"") -> bytes:
    """.npy bytes of `array`, or of a hand-written header dict (descr, fortran_order, shape) and data."""
    buffer = io.BytesIO()
    if array is not None:
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def _zip(path: Path, members, compression: int = zipfile.ZIP_STORED) -> Path:
    """A zip of (name, bytes) members; bytes of None stand for a bomb: BOMB_BYTES of zeros behind an
    honest .npy header, deflated to about 80 kB."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            if data is None:
                _write_bomb(
                    archive, name, _npy(header={"descr": "<f4", "fortran_order": False, "shape": (BOMB_BYTES // 4,)})
                )
            else:
                archive.writestr(name, data)
    return path


def _write_bomb(archive: zipfile.ZipFile, name: str, head: bytes = b"") -> None:
    """A deflated member of `head` and then BOMB_BYTES zeros, written a MiB at a time."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        member.write(head)
        zeros = bytes(2**20)
        for _ in range(BOMB_BYTES // len(zeros)):
            member.write(zeros)


def _safetensors(path: Path, header, data: bytes = b"", raw_header: bytes | None = None) -> Path:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _truncated(path: Path, make) -> Path:
    """`make(path)`, then cut to half its bytes."""
    make(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ---- our own checkpoints -----------------------------------------------------------------------------
def _checkpoint(path: Path) -> Path:
    """A real checkpoint of SMALL_VIT (container by suffix), as `scratchvit train` writes one."""
    import scratchvit as sv
    from scratchvit.io import save_checkpoint

    sv.manual_seed(0)
    return save_checkpoint(path, sv.create_model("vit_tiny_patch16_224", num_classes=10, **SMALL_VIT), epoch=0, step=1)


def _metadata(path: Path) -> dict:
    """The JSON metadata of an .npz checkpoint."""
    with np.load(path) as archive:
        return json.loads(str(archive["__scratchvit__"]))


def _tampered(path: Path, change, extra: tuple = (), metadata_npy: bytes | None = None) -> Path:
    """A real .npz checkpoint whose metadata is change(metadata) (a dict, or the JSON text itself),
    with `extra` (name, bytes) members added and optionally a raw metadata member."""
    _checkpoint(path)
    metadata = change(_metadata(path)) if change else _metadata(path)
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    with zipfile.ZipFile(path) as archive:
        members = [(name, archive.read(name)) for name in archive.namelist() if name != "__scratchvit__.npy"]
    members.append(("__scratchvit__.npy", metadata_npy or _npy(np.array(text))))
    return _zip(path, [*members, *extra])


def _kwargs(**changes):
    def change(metadata: dict) -> dict:
        metadata["model_kwargs"].update(changes)
        return metadata

    return change


def _tampered_safetensors(path: Path, change) -> Path:
    """A real .safetensors checkpoint whose metadata JSON is change(metadata)."""
    from scratchvit.io.safetensors import read_safetensors, read_safetensors_header, write_safetensors

    _checkpoint(path)
    _, metadata, _, _ = read_safetensors_header(path)
    text = change(json.loads(metadata["scratchvit"]))
    text = text if isinstance(text, str) else json.dumps(text)
    return write_safetensors(path, read_safetensors(path, widen_half=False), {"scratchvit": text})


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_metadata(metadata: dict) -> str:
    return json.dumps(metadata)[:-1] + f', "deep": {_deep(100_000)}}}'


def _not_regular(kind: str):
    def build(folder: Path) -> Path:
        path = folder / f"{kind}.pth"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        else:
            path.symlink_to(os.devnull if kind == "null_device" else "/dev/zero")
        return path

    return build


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def _cases() -> list:
    w = (WEIGHTS,)
    return [
        # -- files that are not regular, missing or empty: every reader
        Case("fifo", _not_regular("fifo"), r"a FIFO \(named pipe\), not a regular", BOTH),
        Case("folder", _not_regular("folder"), r"a folder, not a regular", BOTH),
        Case("zero_device", _not_regular("zero_device"), r"a character device, not a regular", BOTH),
        Case("missing", lambda d: d / "missing.pth", r"no such", BOTH),
        Case("empty", lambda d: _write(d / "empty.pth", b""), r"empty \(0 bytes\)", BOTH),
        # -- torch .pth zips
        Case("pth_os_system", lambda d: _torch_zip(d / "os_system.pth", _pickle(_system(d))), r"global os\.system", w),
        Case("pth_exec", lambda d: _torch_zip(d / "exec.pth", _pickle(_exec(d))), r"global builtins\.exec", w),
        Case(
            "pth_payload_in_a_tensor",
            lambda d: _torch_zip(
                d / "payload_in_a_tensor.pth", _pickle(_dict({"w": _tensor(_system(d), 0, (1,), (1,))}))
            ),
            r"global os\.system",
            w,
        ),
        Case("pth_truncated", lambda d: _truncated(d / "truncated.pth", _valid_pth), r"truncated or damaged", w),
        Case(
            "pth_stride0_view",
            lambda d: _torch_zip(
                d / "stride0_view.pth",
                _pickle(_dict({"w": _tensor(_storage("0", 1), 0, (8192, 8192), (0, 0))})),
                {"0": bytes(4)},
            ),
            r"would decode to 268,435,456 bytes",
            w,
        ),
        Case(
            "pth_zip_bomb",
            lambda d: _torch_bomb(d / "zip_bomb.pth"),
            r"storage data/0 would decode to",
            w,
        ),
        Case(
            "pth_shape_overflow",
            lambda d: _torch_zip(
                d / "shape_overflow.pth",
                _pickle(_dict({"w": _tensor(_storage("0", 1), 0, (2**64, 0), (1, 1))})),
                {"0": bytes(4)},
            ),
            r"too large for any array",
            w,
        ),
        Case(
            "pth_huge_view",
            lambda d: _torch_zip(
                d / "huge_view.pth",
                _pickle(_dict({"w": _tensor(_storage("0", 1), 0, (2**40, 2**40), (0, 0))})),
                {"0": bytes(4)},
            ),
            r"too large for any array",
            w,
        ),
        Case(
            "pth_byteorder_not_utf8",
            lambda d: _torch_zip(d / "byteorder.pth", _pickle(_dict({})), byteorder=b"\xff\xfel\x00i\x00"),
            r"byteorder record",
            w,
        ),
        Case(
            "pth_storage_missing",
            lambda d: _torch_zip(
                d / "storage_missing.pth", _pickle(_dict({"w": _tensor(_storage("0", 4), 0, (4,), (1,))}))
            ),
            r"storage data/0 is missing",
            w,
        ),
        Case(
            "pth_storage_short",
            lambda d: _torch_zip(
                d / "storage_short.pth",
                _pickle(_dict({"w": _tensor(_storage("0", 1000), 0, (1000,), (1,))})),
                {"0": bytes(4)},
            ),
            r"truncated torch checkpoint",
            w,
        ),
        Case(
            "pth_view_past_storage",
            lambda d: _torch_zip(
                d / "view_past_storage.pth",
                _pickle(_dict({"w": _tensor(_storage("0", 4), 3, (2, 2), (2, 1))})),
                {"0": bytes(16)},
            ),
            r"reaches element",
            w,
        ),
        Case(
            "pth_bad_persistent_id",
            lambda d: _torch_zip(d / "bad_persistent_id.pth", _pickle(_text("x") + b"Q")),
            r"unknown persistent id",
            w,
        ),
        # -- legacy and plain pickles
        Case(
            "legacy_torch",
            lambda d: _write(
                d / "legacy.pth",
                b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + _system(d) + b".",
            ),
            r"legacy format",
            w,
        ),
        Case("plain_pickle", lambda d: _write(d / "plain.pkl", _pickle(_system(d))), r"a plain pickle", w),
        Case(
            "protocol0_pickle",
            lambda d: _write(d / "protocol0.pth", f"cos\nsystem\n(S'touch {d / CANARY}'\ntR.".encode()),
            r"not a weights file",
            w,
        ),
        # -- .npz
        Case(
            "npz_object_array",
            lambda d: _zip(d / "object_array.npz", [("w.npy", _npy(np.array([_Payload(d)], dtype=object)))]),
            r"holds Python objects",
            w,
        ),
        Case(
            "npz_member_not_npy_data",
            lambda d: _zip(d / "member_not_npy.npz", [("w.npy", b"this is not .npy data at all")]),
            r"member 'w\.npy' is not \.npy data",
            w,
        ),
        Case("npz_truncated", lambda d: _truncated(d / "truncated.npz", _valid_npz), r"truncated or damaged", w),
        Case(
            "npz_zip_bomb",
            lambda d: _zip(d / "zip_bomb.npz", [("w.npy", None)], zipfile.ZIP_DEFLATED),
            r"member 'w\.npy' would decode to",
            w,
        ),
        Case(
            "npz_header_lies",
            lambda d: _zip(
                d / "header_lies.npz",
                [("w.npy", _npy(header={"descr": "<f4", "fortran_order": False, "shape": (2**40,)}, data=bytes(16)))],
            ),
            r"its header says shape",
            w,
        ),
        Case(
            "npz_header_overflow",
            lambda d: _zip(
                d / "header_overflow.npz",
                [("w.npy", _npy(header={"descr": "<f4", "fortran_order": False, "shape": (2**64,)}, data=bytes(4)))],
            ),
            r"too large for any array",
            w,
        ),
        Case(
            "npz_duplicate_member",
            lambda d: _duplicate_member(d / "duplicate.npz"),
            r"appears twice",
            w,
        ),
        # -- safetensors (each also refused by the safetensors package)
        *_safetensors_cases(),
        # -- our own checkpoints
        Case(
            "ckpt_pretrained_path",
            lambda d: _tampered(d / "pretrained_path.npz", _kwargs(pretrained=str(d / "secret.txt"))),
            r"refused: .*pretrained=",
            BOTH,
        ),
        Case(
            "ckpt_pretrained_hub",
            lambda d: _tampered(d / "pretrained_hub.npz", _kwargs(pretrained=True)),
            r"refused: .*pretrained=True",
            BOTH,
        ),
        Case(
            "ckpt_embed_dim_1e7",
            lambda d: _tampered(d / "embed_dim.npz", _kwargs(embed_dim=10**7, num_heads=2)),
            r"embed_dim=10000000, larger than the [\d,]+ numbers",
            BOTH,
        ),
        Case(
            "ckpt_embed_dim_1e7_safetensors",
            lambda d: _tampered_safetensors(d / "embed_dim.safetensors", _kwargs(embed_dim=10**7)),
            r"embed_dim=10000000, larger than the [\d,]+ numbers",
            BOTH,
        ),
        Case(
            "ckpt_deep_metadata",
            lambda d: _tampered(d / "deep_metadata.npz", _deep_metadata),
            r"nests too deeply",
            BOTH,
        ),
        Case(
            "ckpt_deep_metadata_safetensors",
            lambda d: _tampered_safetensors(d / "deep_metadata.safetensors", _deep_metadata),
            r"nests too deeply",
            BOTH,
        ),
        Case(
            "ckpt_nested_metadata",
            lambda d: _tampered(d / "nested_metadata.npz", lambda m: {**m, "extra": json.loads(_deep(200))}),
            r"nests deeper than 64 levels",
            BOTH,
        ),
        Case(
            "ckpt_metadata_not_json",
            lambda d: _tampered(d / "not_json.npz", lambda m: json.dumps(m)[:-5]),
            r"metadata is not valid JSON",
            BOTH,
        ),
        Case(
            "ckpt_metadata_not_a_string",
            lambda d: _tampered(d / "metadata_not_string.npz", None, metadata_npy=_npy(np.zeros(3))),
            r"'__scratchvit__' entry is a float64 array",
            BOTH,
        ),
        Case(
            "ckpt_missing_array",
            lambda d: _tampered(d / "missing_array.npz", lambda m: {**m, "extra": {"x": {"__array__": "nowhere"}}}),
            r"names the array 'nowhere'",
            BOTH,
        ),
        Case(
            "ckpt_weights_not_arrays",
            lambda d: _tampered(d / "weights_not_arrays.npz", lambda m: {**m, "model": {"w": 5}}),
            r"no model state_dict",
            BOTH,
        ),
        Case(
            "ckpt_member_not_npy",
            lambda d: _tampered(d / "member_not_npy.npz", None, extra=(("notes.txt", b"hello"),)),
            r"member 'notes\.txt' is not \.npy data",
            BOTH,
        ),
        Case(
            "ckpt_object_array",
            lambda d: _tampered(d / "object_array.npz", None, extra=(("x.npy", _npy(np.array([_Payload(d)]))),)),
            r"holds Python objects",
            BOTH,
        ),
        Case(
            "ckpt_zip_bomb",
            lambda d: _tampered(d / "zip_bomb.npz", None, extra=(("bomb.npy", None),)),
            r"member 'bomb\.npy' would decode to",
            BOTH,
        ),
        Case("ckpt_truncated", lambda d: _truncated(d / "truncated_checkpoint.npz", _checkpoint), r"truncated", BOTH),
    ]


def _safetensors_cases() -> list:
    def case(name: str, message: str, header=None, data: bytes = b"", raw: bytes | None = None) -> Case:
        def build(folder: Path) -> Path:
            return _safetensors(folder / f"{name}.safetensors", header, data, raw)

        return Case(f"st_{name}", build, message, BOTH, safetensors=True)

    return [
        case("overlap", r"overlaps", {"a": F32, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
        case(
            "shape_2_64",
            r"too large for any array",
            {"a": {"dtype": "F32", "shape": [2**64, 0], "data_offsets": [0, 0]}},
        ),
        case(
            "shape_overflow",
            r"too large for any array",
            {"a": {"dtype": "F32", "shape": [2**32, 2**32, 2], "data_offsets": [0, 8]}},
            bytes(8),
        ),
        case("deep_json", r"nests too deeply", raw=b'{"a":' + _deep(100_000).encode() + b"}"),
        case("truncated_data", r"truncated safetensors file", {"a": {**F32, "data_offsets": [0, 8]}}, bytes(4)),
        Case(
            "st_header_length_huge",
            lambda d: _write(d / "header_length_huge.safetensors", struct.pack("<Q", 2**63) + b'{"a":{}}'),
            r"header (length )?says 9223372036854775808 bytes",
            BOTH,
            safetensors=True,
        ),
        case("header_not_utf8", r"not valid JSON", raw=b'{"a\xff":' + json.dumps(F32).encode() + b"}", data=bytes(8)),
        case("header_utf16", r"not valid JSON", raw=json.dumps({"a": F32}).encode("utf-16-le"), data=bytes(8)),
        case(
            "gap",
            r"leaves bytes 0\.\.4 unused",
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            bytes(8),
        ),
        case("trailing_bytes", r"the tensors hold 8 bytes of data, the file has 12", {"a": F32}, bytes(12)),
        case(
            "negative_offset", r"data_offsets", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, bytes(4)
        ),
        case(
            "unknown_dtype",
            r"unsupported dtype F8_E4M3",
            {"a": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}},
            bytes(1),
        ),
        case("metadata_not_string", r"__metadata__\['x'\] is a int", {"__metadata__": {"x": 1}, "a": F32}, bytes(8)),
        case(
            "huge_integer",
            r"not valid JSON",
            raw=b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,8]}}',
            data=bytes(8),
        ),
    ]


# ---- small builders ----------------------------------------------------------------------------------
class _Payload:
    """Pickles as os.system("touch <folder>/CANARY"): what an object array of a hostile .npz holds."""

    def __init__(self, folder: Path):
        self.command = f"touch {folder / CANARY}"

    def __reduce__(self):
        return os.system, (self.command,)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _valid_pth(path: Path) -> Path:
    """A well-formed torch.save zip of {"w": a 2x2 float32 tensor}."""
    pickled = _pickle(_dict({"w": _tensor(_storage("0", 4), 0, (2, 2), (2, 1))}))
    return _torch_zip(path, pickled, {"0": np.arange(4, dtype="<f4").tobytes()})


def _valid_npz(path: Path) -> Path:
    np.savez(path, w=np.arange(64, dtype=np.float32))
    return path


def _duplicate_member(path: Path) -> Path:
    with warnings.catch_warnings():  # zipfile warns of the duplicate name it is asked to write
        warnings.simplefilter("ignore", UserWarning)
        return _zip(path, [("w.npy", _npy(np.zeros(2))), ("w.npy", _npy(np.ones(2)))])


def _torch_bomb(path: Path) -> Path:
    """A torch zip whose one storage inflates to BOMB_BYTES of zeros from about 80 kB."""
    numel = BOMB_BYTES // 4
    _torch_zip(path, _pickle(_dict({"w": _tensor(_storage("0", numel), 0, (numel,), (1,))})))
    with zipfile.ZipFile(path, "a") as archive:
        _write_bomb(archive, "archive/data/0")
    return path


CASES = _cases()


def build_corpus(folder) -> dict:
    """Write each case's file into a folder of its own under `folder` (the case's name); returns
    name -> path (a path that does not exist for the "missing" case)."""
    paths = {}
    for case in CASES:
        case_folder = Path(folder) / case.name
        case_folder.mkdir(parents=True)
        paths[case.name] = case.build(case_folder)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/hostile/make_corpus.py FOLDER")
    for name, path in build_corpus(sys.argv[1]).items():
        print(f"{name:34} {path}")
