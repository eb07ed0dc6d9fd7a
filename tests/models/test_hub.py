"""models/hub.py against a stand-in hub on 127.0.0.1 (tests/hub_server.py), no network: the download,
the cache layout of huggingface_hub, reuse and resume, a hash mismatch, offline mode, a server that
answers 404 or 500 or hangs; the table of weights against timm's pretrained configurations
(tests/golden/pretrained_cfgs.json, made by tools/make_golden.py); create_model(pretrained=True).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from hub_server import COMMIT, hub_environment, serve, start, stop

import scratchvit as sv
from scratchvit import backend
from scratchvit.data import ChecksumError
from scratchvit.io import write_safetensors
from scratchvit.models import hub

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURES = Path(__file__).resolve().parent.parent / "io" / "fixtures"
REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
RESOLVE = f"/{REPO}/resolve/main/model.safetensors"
CONTENT = bytes(range(256)) * 2048 + b"end"  # 512 KiB + 3: more than one read chunk is not needed, a cut is
SHA256 = hashlib.sha256(CONTENT).hexdigest()
TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)


@pytest.fixture
def server(tmp_path, monkeypatch):
    httpd = start()
    serve(httpd, RESOLVE, CONTENT)
    hub_environment(monkeypatch, httpd, tmp_path / "cache")
    yield httpd
    stop(httpd)


def repo_folder(tmp_path) -> Path:
    return tmp_path / "cache" / "hub" / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"


@pytest.mark.parametrize("lfs", [False, True], ids=["direct", "lfs-redirect"])
def test_download_lays_out_the_hub_cache(tmp_path, server, lfs):
    server.lfs = lfs
    path = hub.hub_download(REPO, "model.safetensors", progress=False)
    folder = repo_folder(tmp_path)
    assert path == folder / "snapshots" / COMMIT / "model.safetensors"
    assert path.is_symlink() and os.readlink(path) == f"../../blobs/{SHA256}"
    assert path.read_bytes() == CONTENT
    assert (folder / "refs" / "main").read_text() == COMMIT
    assert sorted(p.name for p in (folder / "blobs").iterdir()) == [SHA256]  # no .part left
    expected = ["HEAD", "GET", "GET"] if lfs else ["HEAD", "GET"]  # the redirect to /blobs/<sha256> followed
    assert [method for method, _, _ in server.requests] == expected


def test_the_progress_bar_names_the_repository_and_file_not_the_blob_hash(server, capsys):
    pytest.importorskip("tqdm")
    hub.hub_download(REPO, "model.safetensors", progress=True)
    shown = capsys.readouterr().err
    assert f"{REPO}/model.safetensors" in shown and SHA256 not in shown


def test_a_cached_file_is_reused_without_the_network(tmp_path, server, monkeypatch):
    first = hub.hub_download(REPO, "model.safetensors", progress=False)
    count = len(server.requests)
    assert hub.hub_download(REPO, "model.safetensors", progress=False) == first
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_download(REPO, "model.safetensors", progress=False) == first
    assert len(server.requests) == count


def test_hub_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "direct"))
    assert hub.hub_cache_dir() == tmp_path / "direct"


def test_an_interrupted_download_resumes(tmp_path, server):
    server.cut_after = 100_000
    with pytest.raises(OSError, match="stopped after 100000 of 524291 bytes; .*part is kept"):
        hub.hub_download(REPO, "model.safetensors", progress=False)
    partial = repo_folder(tmp_path) / "blobs" / f"{SHA256}.part"
    assert partial.stat().st_size == 100_000
    assert not (repo_folder(tmp_path) / "snapshots").exists()
    server.cut_after = None
    path = hub.hub_download(REPO, "model.safetensors", progress=False)
    assert path.read_bytes() == CONTENT
    assert server.requests[-1] == ("GET", RESOLVE, "bytes=100000-")


def test_a_partial_file_left_in_the_cache_is_completed(tmp_path, server):
    blobs = repo_folder(tmp_path) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{SHA256}.part").write_bytes(CONTENT[:1234])
    assert hub.hub_download(REPO, "model.safetensors", progress=False).read_bytes() == CONTENT
    assert server.requests[-1][2] == "bytes=1234-"


def test_a_hash_mismatch_keeps_nothing(tmp_path, server):
    server.corrupt = True
    with pytest.raises(ChecksumError, match=f"expected {SHA256}; the download was deleted"):
        hub.hub_download(REPO, "model.safetensors", progress=False)
    folder = repo_folder(tmp_path)
    assert list((folder / "blobs").iterdir()) == [] and not (folder / "snapshots").exists()


def test_offline_names_the_file_and_the_cache(tmp_path, server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as caught:
        hub.hub_download(REPO, "model.safetensors", progress=False)
    message = str(caught.value)
    assert "\n" not in message and f"{server.url}{RESOLVE}" in message and str(repo_folder(tmp_path)) in message
    assert server.requests == []


@pytest.mark.parametrize("status, words", [(404, "answered 404: no file model.safetensors"), (500, "answered 500")])
def test_a_server_error_is_one_clear_line(tmp_path, server, status, words):
    server.status = status
    with pytest.raises(OSError, match=words) as caught:
        hub.hub_download(REPO, "model.safetensors", progress=False)
    assert "\n" not in str(caught.value) and not (repo_folder(tmp_path) / "blobs").exists()


def test_a_missing_file_is_404(server):
    with pytest.raises(OSError, match="answered 404: no file other.bin in the hub repository"):
        hub.hub_download(REPO, "other.bin", progress=False)


def test_a_hanging_server_times_out(server, monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "0.3")
    server.delay = 3
    began = time.monotonic()
    with pytest.raises(OSError, match="cannot download .*timed out"):
        hub.hub_download(REPO, "model.safetensors", progress=False)
    assert time.monotonic() - began < 2


def test_no_server_at_all(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub_environment(monkeypatch, type("S", (), {"url": f"http://127.0.0.1:{port}"}), tmp_path / "cache")
    with pytest.raises(OSError, match="cannot download .*with no network, put the file into"):
        hub.hub_download(REPO, "model.safetensors", progress=False)


def test_a_plain_file_server_works_too(tmp_path, server):
    server.plain = True
    path = hub.hub_download(REPO, "model.safetensors", progress=False)
    assert path == repo_folder(tmp_path) / "snapshots" / "main" / "model.safetensors"
    assert os.readlink(path) == f"../../blobs/{SHA256}" and path.read_bytes() == CONTENT
    assert (repo_folder(tmp_path) / "refs" / "main").read_text() == "main"
    count = len(server.requests)
    assert hub.hub_download(REPO, "model.safetensors", progress=False) == path
    assert len(server.requests) == count  # reused


# ---- the table -----------------------------------------------------------------------------------
def test_the_table_has_timms_default_weights_and_preprocessing():
    golden = json.loads((GOLDEN / "pretrained_cfgs.json").read_text())["models"]
    assert len(golden) == 15
    for name, cfg in golden.items():
        weights = hub.pretrained_weights(name)
        assert weights.repo == cfg["hf_hub_id"] and weights.filename == "model.safetensors"
        assert weights.num_classes == cfg["num_classes"]
        ours = {key: list(value) if isinstance(value, tuple) else value for key, value in weights.data_config().items()}
        assert ours == {key: cfg[key] for key in ours}, name
    vit_names = {name for name in sv.list_models("vit_*")} | set(sv.list_models("swin_*"))
    assert vit_names == set(golden)  # every registered classifier has its weights in the table


def test_the_mae_names_take_the_official_files(monkeypatch):
    monkeypatch.delenv("SCRATCHVIT_MAE_ENDPOINT", raising=False)
    large = hub.pretrained_weights("mae_vit_large_patch16")  # an alias
    assert large.url.format(mae=hub.DEFAULT_MAE_ENDPOINT) == (
        "https://dl.fbaipublicfiles.com/mae/visualize/mae_visualize_vit_large.pth"
    )
    assert large.crop_mode == "squash" and large.mean == (0.485, 0.456, 0.406)
    ganloss = hub.pretrained_weights("mae_vit_large_patch16.visualize_ganloss")
    assert ganloss.filename == "mae_visualize_vit_large_ganloss.pth"
    assert hub.pretrained_weights("mae_vit_base_patch16.pretrain").url.endswith("/pretrain/mae_pretrain_vit_base.pth")
    with pytest.raises(ValueError, match="no published weights with its decoder, only the encoder"):
        hub.pretrained_weights("mae_vit_huge_patch14")


def test_unknown_tags_and_names_are_named():
    with pytest.raises(ValueError, match="has no weights tagged 'nope'; it has vit_base_patch16_224.augreg2_in21k"):
        hub.pretrained_weights("vit_base_patch16_224.nope")
    with pytest.raises(ValueError, match="unknown model 'vit_giant'"):
        hub.pretrained_weights("vit_giant")


# ---- create_model(pretrained=True) -----------------------------------------------------------------
def tiny_vit_file(tmp_path) -> tuple:
    sv.manual_seed(3)
    model = sv.create_model("vit_tiny_patch16_224", **TINY_VIT)
    state = {name: backend.to_numpy(array) for name, array in model.state_dict().items()}
    return write_safetensors(tmp_path / "served.safetensors", state, metadata={"format": "pt"}), state


def test_create_model_pretrained_true_loads_the_hub_weights(tmp_path, server):
    path, state = tiny_vit_file(tmp_path)
    serve(server, RESOLVE, path.read_bytes())
    model = sv.create_model("vit_tiny_patch16_224", pretrained=True, **TINY_VIT)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(array), state[name])
    assert model.model_name == "vit_tiny_patch16_224"


def test_create_model_with_a_tag_fetches_that_repository(tmp_path, server):
    path, _ = tiny_vit_file(tmp_path)
    serve(server, "/timm/vit_base_patch16_224.augreg_in1k/resolve/main/model.safetensors", path.read_bytes())
    kwargs = dict(TINY_VIT, embed_dim=16)
    model = sv.create_model("vit_base_patch16_224.augreg_in1k", pretrained="hub", **kwargs)
    assert model.model_name == "vit_base_patch16_224"
    assert (tmp_path / "cache" / "hub" / "models--timm--vit_base_patch16_224.augreg_in1k" / "refs" / "main").is_file()


def test_the_official_mae_file_goes_to_the_torch_hub_folder(tmp_path, server):
    case = next(c for c in json.loads((FIXTURES / "cases.json").read_text())["cases"] if c["name"] == "mae_pretrain")
    serve(server, "/mae/visualize/mae_visualize_vit_base.pth", (FIXTURES / "mae_pretrain.pth").read_bytes())
    model = sv.create_model("mae_vit_base_patch16", pretrained=True, **case["kwargs"])
    cached = tmp_path / "cache" / "torch" / "hub" / "checkpoints" / "mae_visualize_vit_base.pth"
    assert cached.read_bytes() == (FIXTURES / "mae_pretrain.pth").read_bytes()
    reference = sv.create_model("mae_vit_base_patch16", pretrained=cached, **case["kwargs"])
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(array), backend.to_numpy(reference.state_dict()[name]))
    count = len(server.requests)
    sv.create_model("mae_vit_base_patch16", pretrained=True, **case["kwargs"])
    assert len(server.requests) == count  # fetched once


def test_huggingface_hub_finds_our_file(server):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    path = hub.hub_download(REPO, "model.safetensors", progress=False)
    found = huggingface_hub.try_to_load_from_cache(REPO, "model.safetensors", cache_dir=os.environ["HF_HUB_CACHE"])
    assert Path(found) == path
