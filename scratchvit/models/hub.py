"""Pretrained weights by model name, as timm's `create_model(name, pretrained=True)`: the table of
which file holds each registered model's weights, and its download into the standard caches.

The ViT and Swin names take timm's default weights on the Hugging Face hub, the repository
`timm/<name>.<tag>` and its `model.safetensors`; `<name>.<tag>` picks other weights of the table
(timm's tags). The MAE names take the official MAE files (He et al. 2022): `visualize`, the
checkpoints with the pixel decoder that the MAE visualisation notebook draws with (the default),
`visualize_ganloss` (ViT-L, trained with an extra GAN loss) and `pretrain`, the encoder-only
pre-training checkpoints (load them into a VisionTransformer with num_classes=0).

Hub files go to the cache of `huggingface_hub`, in its layout, so a file timm or huggingface_hub
downloaded is reused and the other way round:

    $HF_HUB_CACHE  (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
      models--timm--<name>.<tag>/
        blobs/<sha256>                        the file, named by its hash (the hub's ETag)
        snapshots/<commit>/model.safetensors  a relative link to ../../blobs/<sha256>
        refs/main                             the commit that `main` resolved to

The URL is `{HF_ENDPOINT}/{repo}/resolve/{revision}/{filename}` (HF_ENDPOINT default
https://huggingface.co), so a mirror or a local server can stand in for the hub. A file found in
the cache is used without asking the network. The official MAE files go where torch.hub keeps
them, `$TORCH_HOME/hub/checkpoints/` (default ~/.cache/torch), fetched from
`$SCRATCHVIT_MAE_ENDPOINT` (default https://dl.fbaipublicfiles.com/mae). With HF_HUB_OFFLINE=1
nothing is fetched: a file not in the cache is an OSError naming the URL and the cache path.

Hashes: the hub sends each large file's SHA-256 as its ETag, and the download is checked against
it. No SHA-256 is published for the MAE files: they are checked only for their length.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..io import write_atomically
from ..io.download import download, sha256_of
from .registry import model_entrypoint

__all__ = [
    "PretrainedWeights",
    "hub_cache_dir",
    "hub_download",
    "list_pretrained",
    "pretrained_file",
    "pretrained_weights",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_MAE_ENDPOINT = "https://dl.fbaipublicfiles.com/mae"
_VIT_MEAN_STD = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # AugReg's inputs in [-1, 1]
_IMAGENET_MEAN_STD = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PretrainedWeights:
    """One set of pretrained weights: where its file is, and the preprocessing it was trained with
    (timm's pretrained_cfg keys: input_size (C, H, W), crop_pct, crop_mode, interpolation, mean, std).

    repo + filename: a Hugging Face hub file; url: any other (then filename is the URL's last part).
    num_classes: the classifier's outputs (0: no classifier). encoder_only: an MAE encoder without
    its decoder.
    """

    model_name: str
    tag: str
    filename: str = "model.safetensors"
    repo: str | None = None
    url: str | None = None
    num_classes: int = 1000
    input_size: tuple = (3, 224, 224)
    crop_pct: float = 0.9
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple = _IMAGENET_MEAN_STD["mean"]
    std: tuple = _IMAGENET_MEAN_STD["std"]
    encoder_only: bool = False

    @property
    def name(self) -> str:
        return f"{self.model_name}.{self.tag}"

    def data_config(self) -> dict:
        """timm's data config (resolve_data_config's keys) of these weights."""
        keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
        return {key: getattr(self, key) for key in keys}


def _timm(model_name: str, tag: str, **config) -> PretrainedWeights:
    return PretrainedWeights(model_name, tag, repo=f"timm/{model_name}.{tag}", **config)


def _mae(model_name: str, tag: str, file_stem: str, encoder_only: bool = False) -> PretrainedWeights:
    # the MAE visualisation notebook: the image resized to 224 x 224 (no crop), ImageNet mean and std
    folder = "pretrain" if encoder_only else "visualize"
    return PretrainedWeights(
        model_name,
        tag,
        filename=f"{file_stem}.pth",
        url=f"{{mae}}/{folder}/{file_stem}.pth",
        num_classes=0,
        crop_pct=1.0,
        crop_mode="squash",
        encoder_only=encoder_only,
    )


def _vit(model_name: str, tag: str = "augreg_in21k_ft_in1k") -> PretrainedWeights:
    size = 384 if model_name.endswith("_384") else 224
    return _timm(model_name, tag, input_size=(3, size, size), crop_pct=1.0 if size == 384 else 0.9, **_VIT_MEAN_STD)


def _swin(model_name: str, tag: str = "ms_in22k_ft_in1k") -> PretrainedWeights:
    size = 384 if model_name.endswith("_384") else 224
    return _timm(model_name, tag, input_size=(3, size, size), crop_pct=1.0 if size == 384 else 0.9)


# registered name -> its weights, the default first (timm 1.0's default tag for each name)
_TABLE = {
    name: [entry]
    for name, entry in {
        "vit_tiny_patch16_224": _vit("vit_tiny_patch16_224"),
        "vit_tiny_patch16_384": _vit("vit_tiny_patch16_384"),
        "vit_small_patch16_224": _vit("vit_small_patch16_224"),
        "vit_small_patch16_384": _vit("vit_small_patch16_384"),
        "vit_base_patch16_224": _vit("vit_base_patch16_224", "augreg2_in21k_ft_in1k"),
        "vit_base_patch16_384": _vit("vit_base_patch16_384"),
        "vit_base_patch32_224": _vit("vit_base_patch32_224"),
        "vit_large_patch16_224": _vit("vit_large_patch16_224"),
        "vit_large_patch16_384": _vit("vit_large_patch16_384"),
        "swin_tiny_patch4_window7_224": _swin("swin_tiny_patch4_window7_224", "ms_in1k"),
        "swin_small_patch4_window7_224": _swin("swin_small_patch4_window7_224"),
        "swin_base_patch4_window7_224": _swin("swin_base_patch4_window7_224"),
        "swin_base_patch4_window12_384": _swin("swin_base_patch4_window12_384"),
        "swin_large_patch4_window7_224": _swin("swin_large_patch4_window7_224"),
        "swin_large_patch4_window12_384": _swin("swin_large_patch4_window12_384"),
    }.items()
}
_TABLE["vit_base_patch16_224"].append(_vit("vit_base_patch16_224", "augreg_in1k"))
_TABLE["swin_tiny_patch4_window7_224"].append(_swin("swin_tiny_patch4_window7_224"))
_TABLE["mae_vit_base_patch16_dec512d8b"] = [
    _mae("mae_vit_base_patch16_dec512d8b", "visualize", "mae_visualize_vit_base"),
    _mae("mae_vit_base_patch16_dec512d8b", "pretrain", "mae_pretrain_vit_base", encoder_only=True),
]
_TABLE["mae_vit_large_patch16_dec512d8b"] = [
    _mae("mae_vit_large_patch16_dec512d8b", "visualize", "mae_visualize_vit_large"),
    _mae("mae_vit_large_patch16_dec512d8b", "visualize_ganloss", "mae_visualize_vit_large_ganloss"),
    _mae("mae_vit_large_patch16_dec512d8b", "pretrain", "mae_pretrain_vit_large", encoder_only=True),
]
# no visualisation checkpoint (with the decoder) was released for ViT-H: only its encoder
_TABLE["mae_vit_huge_patch14_dec512d8b"] = [
    _mae("mae_vit_huge_patch14_dec512d8b", "pretrain", "mae_pretrain_vit_huge", encoder_only=True)
]


def list_pretrained() -> list:
    """Every `<name>.<tag>` with weights in the table, sorted."""
    return sorted(entry.name for entries in _TABLE.values() for entry in entries)


def pretrained_weights(name: str) -> PretrainedWeights:
    """The weights of `name` (a registered name or alias) or `name.tag`; ValueError naming the known ones.

    Without a tag: the model's default weights (an MAE's: the visualisation checkpoint with its decoder).
    """
    base, _, tag = name.partition(".")
    canonical, _ = model_entrypoint(base)
    entries = _TABLE.get(canonical)
    if not entries:
        raise ValueError(f"model {base!r} has no pretrained weights in scratchvit's table: {_known()}")
    if not tag:
        default = entries[0]
        if default.encoder_only:
            raise ValueError(
                f"model {base!r} has no published weights with its decoder, only the encoder: "
                f"{base}.{default.tag} (load it into a VisionTransformer with num_classes=0)"
            )
        return default
    for entry in entries:
        if entry.tag == tag:
            return entry
    tags = ", ".join(f"{base}.{entry.tag}" for entry in entries)
    raise ValueError(f"model {base!r} has no weights tagged {tag!r}; it has {tags}")


def _known() -> str:
    return "models with weights: " + ", ".join(sorted(_TABLE))


def pretrained_file(name: str, progress: bool = True) -> Path:
    """The local path of `name`'s weights file (pretrained_weights(name)), downloaded into the cache
    first when it is not there. OSError, one line, naming the URL and cache path when it cannot be."""
    weights = pretrained_weights(name)
    if weights.repo is not None:
        return hub_download(weights.repo, weights.filename, progress=progress)
    url = weights.url.format(mae=os.environ.get("SCRATCHVIT_MAE_ENDPOINT", DEFAULT_MAE_ENDPOINT).rstrip("/"))
    return url_download(url, _torch_hub_dir(), progress=progress)


# ---- the caches ----------------------------------------------------------------------------------
def _home_cache(variable: str, folder: str) -> Path:
    """$variable, else $XDG_CACHE_HOME/folder, else ~/.cache/folder."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / folder


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return _home_cache("HF_HOME", "huggingface") / "hub"


def _torch_hub_dir() -> Path:
    """torch.hub's folder of downloaded checkpoints: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    return _home_cache("TORCH_HOME", "torch") / "hub" / "checkpoints"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _timeout(variable: str) -> float:
    """huggingface_hub's timeouts (seconds): HF_HUB_ETAG_TIMEOUT for the metadata request,
    HF_HUB_DOWNLOAD_TIMEOUT for the download; 10 by default, as there."""
    text = os.environ.get(variable, "10")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{variable} must be a number of seconds, got {text!r}") from None


def _cached_snapshot(folder: Path, revision: str, filename: str) -> Path | None:
    """snapshots/<commit>/<filename> when refs/<revision> (or the commit itself) leads to it."""
    commit = revision
    if not _COMMIT.fullmatch(revision):
        ref = folder / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    path = folder / "snapshots" / commit / filename
    return path if path.is_file() else None


def hub_download(repo: str, filename: str, revision: str = "main", progress: bool = True) -> Path:
    """The path of `filename` of the hub repository `repo` at `revision`, in the hub cache (module
    docstring); fetched from {HF_ENDPOINT}/{repo}/resolve/{revision}/{filename} when not there.

    The server's metadata names the commit (X-Repo-Commit) and the file's SHA-256 (its ETag, for
    the large files the hub keeps in LFS); the download is resumable and checked against that hash.
    A plain server that sends neither works too: the snapshot is named after the revision and the
    blob after the hash of what came.
    """
    folder = hub_cache_dir() / f"models--{repo.replace('/', '--')}"
    cached = _cached_snapshot(folder, revision, filename)
    if cached is not None:
        return cached
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    url = f"{endpoint}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(filename)}"
    if _offline():
        raise OSError(f"HF_HUB_OFFLINE is set and {repo}/{filename} is not in the cache: fetch {url} into {folder}")
    headers = _metadata(url, repo, filename, folder)
    commit = headers.get("X-Repo-Commit") or revision
    etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").removeprefix("W/").strip('"').lower()
    sha256 = etag if _SHA256.fullmatch(etag) else None
    blob_name = etag if etag and Path(etag).name == etag else None
    download_name = blob_name or f"{commit}.{Path(filename).name}.download"
    blob = _download(url, sha256, folder / "blobs", download_name, progress, label=f"{repo}/{filename}")
    if blob_name is None:  # a server without ETags: name the blob by its content, as the hub would
        blob = blob.replace(blob.with_name(sha256_of(blob)))
    pointer = folder / "snapshots" / commit / filename
    _link(pointer, blob)
    if not _COMMIT.fullmatch(revision):  # a branch or tag: remember the commit it resolved to
        ref = folder / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(ref, lambda file: file.write(commit.encode()))
    return pointer


def _metadata(url: str, repo: str, filename: str, folder: Path) -> dict:
    """The headers of a HEAD request to the resolve URL, read before any redirect (the hub sends
    X-Repo-Commit and X-Linked-Etag there and redirects large files to its storage)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "scratchvit"})
    try:
        with opener.open(request, timeout=_timeout("HF_HUB_ETAG_TIMEOUT")) as response:
            return dict(response.headers)
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            return dict(error.headers)
        if error.code == 404:
            raise OSError(f"{url} answered 404: no file {filename} in the hub repository {repo}") from None
        if error.code in (401, 403):
            raise OSError(f"{url} answered {error.code}: {repo} is private or gated") from None
        raise _refused(url, folder, error) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
        raise _unreachable(url, folder, error) from error


def _download(
    url: str, sha256: str | None, folder: Path, filename: str, progress: bool, label: str | None = None
) -> Path:
    """io.download, its HTTP and network errors said in one line with the URL and the cache folder."""
    timeout = _timeout("HF_HUB_DOWNLOAD_TIMEOUT")
    try:
        return download(url, sha256, folder, filename, progress=progress, timeout=timeout, label=label)
    except urllib.error.HTTPError as error:
        raise _refused(url, folder, error) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
        raise _unreachable(url, folder, error) from error


def _refused(url: str, folder: Path, error: urllib.error.HTTPError) -> OSError:
    return OSError(f"{url} answered {error.code} {error.reason}; nothing was downloaded to {folder}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 30x response itself is raised as an HTTPError, whose headers are read


def _unreachable(url: str, folder: Path, error: Exception) -> OSError:
    reason = getattr(error, "reason", None) or error
    return OSError(
        f"cannot download {url} ({reason}); with no network, put the file into {folder} "
        "(or set HF_ENDPOINT to a mirror)"
    )


def _link(pointer: Path, blob: Path) -> None:
    """snapshots/<commit>/<filename> -> blobs/<hash>, as a relative link (huggingface_hub's layout),
    or the blob moved there where the file system has no links. Atomic: a link to a temporary name,
    then renamed."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    temporary = pointer.with_name(f".{pointer.name}.link")
    temporary.unlink(missing_ok=True)
    try:
        temporary.symlink_to(os.path.relpath(blob, pointer.parent))
    except OSError:
        os.replace(blob, pointer)
        return
    os.replace(temporary, pointer)


def url_download(url: str, folder: Path, progress: bool = True) -> Path:
    """A file outside the hub (the official MAE checkpoints) at folder/<its name>, fetched unless there;
    no hash is published for them, so a file already there is taken as it is."""
    folder = Path(folder)
    path = folder / Path(urllib.parse.urlparse(url).path).name
    if path.is_file():
        return path
    if _offline():
        raise OSError(f"HF_HUB_OFFLINE is set and {path.name} is not in the cache: fetch {url} into {folder}")
    return _download(url, None, folder, path.name, progress)
