"""Pretrained models on photos: `scratchvit predict` (the top-k ImageNet classes, and where the model
looks) and `scratchvit mae-visualize` (the MAE paper's reconstructions, He et al. 2022, Fig. 2, as
the official visualisation notebook draws them).

Each photo is prepared as the weights expect (data.pretrained_transforms, the configuration of
models.hub's table). Where the model looks:
    ViT   attention rollout of what the head reads (Abnar & Zuidema 2020, viz.attention_rollout);
    Swin  the window attention of the last block (Liu et al. 2021, Sec. 3.2): how much attention each
          token of the last stage receives, averaged over heads and queries. The head averages those
          tokens, so this is where the classifier's input comes from.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad
from ..data.pretrained_transforms import eval_transform, load_image, resolved_data_config
from ..models import create_model, hub, load_pretrained
from ..models.mae import MaskedAutoencoderViT
from ..models.swin import SwinTransformer
from ..models.vit import VisionTransformer
from .viz import _pyplot, _save, attention_rollout

__all__ = [
    "class_names",
    "data_config_for",
    "mae_reconstruction_panels",
    "plot_mae_panels",
    "plot_where_it_looks",
    "predict_probabilities",
    "run_mae_visualize",
    "run_predict",
    "swin_last_window_attention",
    "top_classes",
]

# a family's preprocessing where the table has no weights for the name (timm's defaults by family)
_FAMILY_DEFAULTS = {
    VisionTransformer: "vit_base_patch16_224",
    SwinTransformer: "swin_tiny_patch4_window7_224",
    MaskedAutoencoderViT: "mae_vit_base_patch16_dec512d8b",
}


def class_names(num_classes: int = 1000) -> list:
    """The names of the classifier's outputs: the 1,000 ImageNet-1k classes (their lemmas, e.g.
    'tench, Tinca tinca'), or 'class <i>' for a classifier of another size."""
    if num_classes != 1000:
        return [f"class {index}" for index in range(num_classes)]
    text = resources.files("scratchvit.data").joinpath("imagenet1k_classes.txt").read_text(encoding="utf-8")
    return [line.split("\t", 1)[1] for line in text.splitlines()]


def data_config_for(model, name: str | None = None) -> dict:
    """timm's data config for `model`: that of the weights `name` (a `name.tag` of hub's table), else of
    the model's default weights, else of its family's; input_size made the model's own."""
    try:
        weights = hub.pretrained_weights(name or model.model_name)
    except (ValueError, AttributeError):
        family = next(key for key in _FAMILY_DEFAULTS if isinstance(model, key))
        weights = hub.pretrained_weights(_FAMILY_DEFAULTS[family])
    return resolved_data_config(weights.data_config(), model.patch_embed.img_size, model.patch_embed.in_chans)


def prepare_images(images, config: dict) -> np.ndarray:
    """Image files or Pillow images -> (B, 3, H, W) float32, each as the weights expect it (eval_transform)."""
    photos = [load_image(image) if isinstance(image, (str, Path)) else image for image in images]
    return np.stack([eval_transform(photo, config) for photo in photos])


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) prepared images -> (B, num_classes) softmax probabilities, float32, model in eval mode."""
    model.eval()
    with no_grad():
        logits = backend.to_numpy(model(Tensor(images)).data).astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def top_classes(probabilities: np.ndarray, k: int, names: list) -> list:
    """(num_classes,) -> the k most probable [(index, name, probability)], most probable first."""
    if k < 1:
        raise ValueError(f"top k must be at least 1, got {k}")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(index), names[index], float(probabilities[index])) for index in order]


def swin_last_window_attention(model: SwinTransformer, images) -> np.ndarray:
    """(B, 3, H, W) -> (B, h, w) for the last stage's map (h, w): the attention each token receives in
    the last block, softmax(q k^T / sqrt(d) + B + mask) averaged over heads and queries of its window,
    the windows put back in place (the cyclic shift undone)."""
    block = model.layers[-1].blocks[-1]
    captured = []

    def capture(module, inputs, output):
        windows = inputs[0].data  # (B*nW, N, C), after norm1, the shift and the window partition
        xp = backend.xp_of(windows)
        count, tokens, _ = windows.shape
        qkv = windows @ module.qkv.weight.data.T
        if module.qkv.bias is not None:
            qkv = qkv + module.qkv.bias.data
        qkv = qkv.reshape(count, tokens, 3, module.num_heads, module.head_dim)
        q, k = qkv[:, :, 0].transpose(0, 2, 1, 3), qkv[:, :, 1].transpose(0, 2, 1, 3)  # (B*nW, heads, N, d)
        scores = q @ k.transpose(0, 1, 3, 2) * module.head_dim**-0.5 + module.relative_position_bias().data
        if block.attn_mask is not None:  # (nW, N, N), windows image-major
            mask = block.attn_mask.data
            scores = (scores.reshape(-1, mask.shape[0], *scores.shape[1:]) + mask[:, None]).reshape(scores.shape)
        weights = xp.exp(scores - scores.max(-1, keepdims=True))
        weights = weights / weights.sum(-1, keepdims=True)
        captured.append(backend.to_numpy(weights.mean(axis=(1, 2))))  # (B*nW, N): received, mean over heads, queries

    remove = block.attn.register_forward_hook(capture)
    model.eval()
    try:
        with no_grad():
            model(images if isinstance(images, Tensor) else Tensor(images))
    finally:
        remove()
    received = captured[0]
    (padded_h, padded_w), (window_h, window_w) = block.padded_resolution, block.window_size
    # window_reverse: (B*nW, Mh*Mw) image-major, row of windows then column -> (B, padded_h, padded_w)
    grid = received.reshape(-1, padded_h // window_h, padded_w // window_w, window_h, window_w)
    grid = grid.transpose(0, 1, 3, 2, 4).reshape(-1, padded_h, padded_w)
    height, width = block.input_resolution
    return np.roll(grid[:, :height, :width], block.shift_size, axis=(1, 2))  # undo the shift towards the top left


def where_it_looks(model, images: np.ndarray) -> tuple:
    """(title, (B, h, w) map) for plot_where_it_looks: a ViT's attention rollout, a Swin's last window attention."""
    if isinstance(model, SwinTransformer):
        return "last-stage window attention", swin_last_window_attention(model, images)
    if isinstance(model, VisionTransformer):
        return "attention rollout", attention_rollout(model, Tensor(images))
    raise ValueError(f"--attention draws a ViT or a Swin, got a {type(model).__name__}")


def _display(image: np.ndarray, config: dict) -> np.ndarray:
    """(3, H, W) normalised -> (H, W, 3) in [0, 1], the normalisation undone."""
    mean, std = np.asarray(config["mean"], np.float32), np.asarray(config["std"], np.float32)
    return np.clip(image.transpose(1, 2, 0) * std + mean, 0.0, 1.0)


def plot_where_it_looks(images: np.ndarray, maps: np.ndarray, titles: list, config: dict, heading: str, path) -> str:
    """One column per image: the crop the model saw, and the map over it (upsampled, nearest), titled
    with its top class."""
    plt = _pyplot()
    count = len(images)
    figure, axes = plt.subplots(2, count, figsize=(3.2 * count, 6.6), squeeze=False)
    for index in range(count):
        shown = _display(images[index], config)
        height, width = shown.shape[:2]
        axes[0, index].imshow(shown)
        axes[0, index].set_title(titles[index], fontsize=8)
        axes[1, index].imshow(shown)
        axes[1, index].imshow(
            maps[index], cmap="inferno", alpha=0.6, extent=(0, width, height, 0), interpolation="nearest"
        )
        for axis in axes[:, index]:
            axis.axis("off")
    axes[1, 0].set_title(heading, fontsize=8, loc="left")
    return _save(figure, str(path))


def mae_reconstruction_panels(model: MaskedAutoencoderViT, image: np.ndarray, mask_ratio: float, seed: int) -> dict:
    """(3, H, W) prepared image -> the four panels of the official visualisation notebook, each (3, H, W):
    original, masked (removed patches 0 in the normalised image, as the notebook), reconstruction (the
    decoder's prediction everywhere), and reconstruction + visible (the visible patches pasted back).

    The masking noise is uniform from np.random.default_rng(seed), so a seed gives one mask.
    """
    if model.norm_pix_loss:
        raise ValueError(
            "this MAE predicts per-patch normalised pixels (norm_pix_loss), which cannot be drawn as an image: "
            "use weights trained without it, as the official visualisation checkpoints are"
        )
    patches = model.patch_embed.num_patches
    noise = np.random.default_rng(seed).random((1, patches)).astype(np.float32)
    model.eval()
    with no_grad():
        _, prediction, mask = model(Tensor(image[None]), mask_ratio=mask_ratio, noise=noise)
        # (1, L) 1 = removed -> every pixel of the patch -> (1, C, H, W)
        mask = mask.data[:, :, None].repeat(prediction.shape[-1], axis=-1)
        removed = backend.to_numpy(model.unpatchify(Tensor(mask)).data)[0]
        reconstruction = backend.to_numpy(model.unpatchify(prediction).data)[0]
    return {
        "original": image,
        f"masked {mask_ratio:.0%}": image * (1 - removed),
        "reconstruction": reconstruction,
        "reconstruction + visible": image * (1 - removed) + reconstruction * removed,
    }


def plot_mae_panels(panels: dict, config: dict, path) -> str:
    """The panels side by side, the normalisation undone (the notebook's show_image)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4))
    for axis, (title, image) in zip(axes, panels.items(), strict=True):
        axis.imshow(_display(image, config))
        axis.set_title(title, fontsize=12)
        axis.axis("off")
    return _save(figure, str(path))


def _build(model_name: str, pretrained, model_kwargs: dict, family, command: str):
    """create_model(model_name, **model_kwargs) checked to be of a class in `family` before its weights
    (`pretrained`: "hub" or a file) are fetched and loaded; and the data config of those weights."""
    model = create_model(model_name, **model_kwargs)
    if not isinstance(model, family):
        wanted = " or ".join(kind.__name__ for kind in family)
        raise ValueError(f"{command} takes a {wanted}, but {model_name!r} is a {type(model).__name__}")
    from_hub = pretrained in (True, "hub")
    load_pretrained(model, hub.pretrained_file(model_name) if from_hub else pretrained)
    return model, data_config_for(model, model_name if from_hub else None)


def run_predict(paths, model_name: str, pretrained="hub", top: int = 5, attention=None, model_kwargs=None) -> list:
    """`scratchvit predict`: the top classes of each image as printable lines, and with `attention` a PNG of
    where the model looks. pretrained: "hub" (hub's table) or a weights file."""
    photos = [load_image(path) for path in paths]  # a missing file is named before any download
    model, config = _build(model_name, pretrained, model_kwargs or {}, (VisionTransformer, SwinTransformer), "predict")
    images = prepare_images(photos, config)
    probabilities = predict_probabilities(model, images)
    names = class_names(probabilities.shape[1])
    lines, titles = [], []
    for path, row in zip(paths, probabilities, strict=True):
        best = top_classes(row, min(top, len(row)), names)
        lines.append(f"{path}:")
        lines += [f"  {probability:7.2%}  {index:4d}  {name}" for index, name, probability in best]
        titles.append(f"{Path(path).name}: {best[0][1].split(',')[0]} ({best[0][2]:.1%})")
    if attention is not None:
        heading, maps = where_it_looks(model, images)
        lines.append(f"wrote {plot_where_it_looks(images, maps, titles, config, heading, attention)}")
    return lines


def run_mae_visualize(path, model_name: str, out, pretrained="hub", mask_ratio=0.75, seed=0, model_kwargs=None) -> str:
    """`scratchvit mae-visualize`: the four reconstruction panels of one image written to `out` (None:
    <image stem>_mae.png in the working folder); returns its path."""
    out = out or f"{Path(path).stem}_mae.png"
    photo = load_image(path)
    model, config = _build(model_name, pretrained, model_kwargs or {}, (MaskedAutoencoderViT,), "mae-visualize")
    image = prepare_images([photo], config)[0]
    return plot_mae_panels(mae_reconstruction_panels(model, image, mask_ratio, seed), config, out)
