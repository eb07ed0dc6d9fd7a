"""Figures a person would rather look at than read (matplotlib, the `demo` extra), written as PNGs:

- training curves; a grid of images with predicted and true labels;
- attention rollout of the class token (Abnar & Zuidema 2020): how much each patch feeds the
  class token through all the layers;
- MAE reconstructions: original / masked / reconstruction (He et al. 2022, Fig. 2);
- Swin's windows, cyclic shift, attention-mask regions and relative position index (Liu et al.
  2021, Fig. 2 and Sec. 3.2).
"""

from __future__ import annotations

import os

import numpy as np

from .. import backend
from .. import ops as F
from ..autograd import Tensor, no_grad
from ..models.swin import shifted_window_regions


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise RuntimeError("figures need matplotlib: pip install 'scratchvit[demo]'") from error
    return plt


def _save(figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def _as_image(image, value_range=None) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, 3) in [0, 1] for imshow, scaled by value_range (low, high),
    by default the image's own; NaN pixels (MAE's removed patches) become mid grey."""
    image = backend.to_numpy(image)
    image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    low, high = value_range if value_range is not None else (np.nanmin(image), np.nanmax(image))
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.clip(np.nan_to_num(scaled, nan=0.5), 0.0, 1.0)


def plot_training_curves(history: list, path: str) -> str:
    """history: one dict per epoch with 'train_loss' and optionally 'test_acc1' / 'eval_acc1'
    (fit's history); the accuracy panel is drawn only when some epoch has one."""
    plt = _pyplot()
    epochs = [entry.get("epoch", i) + 1 for i, entry in enumerate(history)]
    accuracies = [entry.get("eval_acc1", entry.get("test_acc1")) for entry in history]
    has_accuracy = any(a is not None for a in accuracies)
    figure, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(9 if has_accuracy else 4.5, 3.2))
    axes = np.atleast_1d(axes)
    axes[0].plot(epochs, [entry["train_loss"] for entry in history], marker="o", markersize=3)
    axes[0].set(xlabel="epoch", ylabel="training loss", title="loss")
    if has_accuracy:
        axes[1].plot(epochs, accuracies, marker="o", markersize=3, color="tab:green")
        axes[1].set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="test accuracy")
    for axis in axes:
        axis.grid(alpha=0.3)
    return _save(figure, path)


def plot_predictions(images: np.ndarray, labels, predictions, path: str, columns: int = 8) -> str:
    """A grid of images titled 'predicted (true)'; wrong predictions in red."""
    plt = _pyplot()
    count = len(images)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25))
    for index, axis in enumerate(np.atleast_1d(axes).reshape(-1)):
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(_as_image(images[index]), cmap="gray", interpolation="nearest")
        correct = int(predictions[index]) == int(labels[index])
        title = f"{int(predictions[index])} ({int(labels[index])})"
        axis.set_title(title, fontsize=8, color="black" if correct else "red")
    figure.suptitle("predicted (true)", fontsize=10)
    return _save(figure, path)


def attention_rollout(model, images) -> np.ndarray:
    """(B, C, H, W) -> (B, h, w): how much each patch feeds what the head reads, rolled out
    through every block (Abnar & Zuidema 2020).

    Per layer: A = mean over heads of softmax(q k^T / sqrt(d)); A' = (A + I) / 2 for the residual
    path, rows renormalised; rollout = A'_L ... A'_1. The head reads the class token
    (global_pool 'token'): its row over the patches; or the mean of the patch tokens ('avg'):
    the mean of their rows, since the mean of the outputs mixes the inputs by the mean of the
    rows.
    """
    if model.global_pool not in ("token", "avg"):
        raise ValueError(
            f"attention rollout follows a class token (global_pool 'token') or the mean of the patch "
            f"tokens ('avg'), got global_pool {model.global_pool!r}"
        )
    captured = []

    def capture(module, inputs, output):
        tokens = inputs[0].data  # (B, N, C), what the attention saw (after norm1)
        xp = backend.xp_of(tokens)
        batch, count, _ = tokens.shape
        qkv = tokens @ module.qkv.weight.data.T
        if module.qkv.bias is not None:
            qkv = qkv + module.qkv.bias.data
        # (B, N, 3C) -> (B, N, 3, heads, head_dim): q and k of every head as (B, heads, N, head_dim)
        qkv = qkv.reshape(batch, count, 3, module.num_heads, module.head_dim)
        q, k = qkv[:, :, 0].transpose(0, 2, 1, 3), qkv[:, :, 1].transpose(0, 2, 1, 3)
        scores = q @ k.transpose(0, 1, 3, 2) * module.head_dim**-0.5
        weights = xp.exp(scores - scores.max(-1, keepdims=True))
        captured.append(backend.to_numpy((weights / weights.sum(-1, keepdims=True)).mean(axis=1)))

    removers = [block.attn.register_forward_hook(capture) for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(images)
    finally:
        for remove in removers:
            remove()
        model.train(was_training)
    rollout = None
    for attention in captured:
        attention = 0.5 * attention + 0.5 * np.eye(attention.shape[-1])
        attention /= attention.sum(-1, keepdims=True)
        rollout = attention if rollout is None else attention @ rollout
    prefix = rollout.shape[-1] - model.patch_embed.num_patches
    read = rollout[:, 0] if model.global_pool == "token" else rollout[:, prefix:].mean(axis=1)
    grid_h, grid_w = model.patch_embed.grid_size
    return read[:, prefix:].reshape(-1, grid_h, grid_w)


def plot_attention_maps(images: np.ndarray, maps: np.ndarray, path: str, columns: int = 8) -> str:
    """Each image beside its attention-rollout map."""
    plt = _pyplot()
    count = min(len(images), columns)
    figure, axes = plt.subplots(2, count, figsize=(count * 1.2, 2.6))
    axes = np.asarray(axes).reshape(2, count)
    for index in range(count):
        axes[0, index].imshow(_as_image(images[index]), cmap="gray", interpolation="nearest")
        axes[1, index].imshow(maps[index], cmap="inferno", interpolation="nearest")
        axes[0, index].axis("off")
        axes[1, index].axis("off")
    axes[0, 0].set_title("image", fontsize=8, loc="left")
    axes[1, 0].set_title("attention rollout", fontsize=8, loc="left")
    return _save(figure, path)


def mae_reconstruction(model, images, mask_ratio: float = 0.75, noise=None) -> tuple:
    """Rows for plot_mae_reconstruction from a MaskedAutoencoderViT, as the MAE paper's figures
    (He et al. 2022, Fig. 2): images (B, C, H, W) -> (masked, reconstruction), NumPy (B, C, H, W).

    masked: the images with the removed patches set to NaN (drawn grey). reconstruction: the
    visible patches pasted back over the decoder's prediction, which is scored (and drawn) only
    where patches were removed. With norm_pix_loss the prediction is per-patch normalised pixels
    and is shown as such. The model runs in eval mode under no_grad; noise as MAE's forward.
    """
    images = images if isinstance(images, Tensor) else Tensor(images)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            _, prediction, mask = model(images, mask_ratio=mask_ratio, noise=noise)
    finally:
        model.train(was_training)
    # (B, L) 1 = removed -> the same value for every pixel of the patch -> (B, C, H, W)
    mask = mask.data[:, :, None].repeat(prediction.shape[-1], axis=-1)
    removed = backend.to_numpy(model.unpatchify(Tensor(mask)).data) > 0.5
    original = backend.to_numpy(images.data)
    predicted = backend.to_numpy(model.unpatchify(prediction).data)
    return np.where(removed, np.nan, original), np.where(removed, predicted, original)


def plot_mae_reconstruction(originals, masked, reconstructions, path: str) -> str:
    """Rows of original / masked (removed patches, NaN, in grey) / reconstruction, one column per
    image; each column drawn on its original's value range, so the three rows compare directly."""
    plt = _pyplot()
    originals, masked = backend.to_numpy(originals), backend.to_numpy(masked)
    count = len(originals)
    removed_share = float(np.isnan(masked).mean())
    figure, axes = plt.subplots(3, count, figsize=(count * 1.2, 3.8))
    axes = np.asarray(axes).reshape(3, count)
    rows = (("original", originals), (f"masked {removed_share:.0%}", masked), ("reconstruction", reconstructions))
    for row, (title, images) in enumerate(rows):
        for index in range(count):
            value_range = (originals[index].min(), originals[index].max())
            axes[row, index].imshow(
                _as_image(images[index], value_range), cmap="gray", vmin=0, vmax=1, interpolation="nearest"
            )
            axes[row, index].axis("off")
        axes[row, 0].set_title(title, fontsize=8, loc="left")
    return _save(figure, path)


def swin_window_layout(block) -> dict:
    """What plot_swin_windows draws for a shifted SwinTransformerBlock, from the model's own
    functions and buffers (Swin Sec. 3.2, Fig. 4), all NumPy:

    windows (H, W): the index of each token's window under F.window_partition (row of windows,
      then column); shifted_ids (H, W): the token ids after F.roll by -shift (the cyclic shift);
    regions (H, W): shifted_window_regions of the rolled map; mask (nW, N, N): the block's attn_mask;
    relative_position_index (N, N): its attention's buffer.
    """
    if block.attn_mask is None:
        raise ValueError(f"swin_window_layout needs a shifted block, got shift_size {block.shift_size}")
    if block.padded_resolution != block.input_resolution:
        raise ValueError(
            f"swin_window_layout needs a map {block.input_resolution} that divides into windows {block.window_size}"
        )
    height, width = block.input_resolution
    token_ids = np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1)
    # F.window_partition: (1, H, W, 1) -> (nW, Mh, Mw, 1); window w holds the ids windows_of[w]
    windows_of = F.window_partition(Tensor(token_ids), block.window_size).data.reshape(-1, block.attn.window_area)
    windows = np.empty(height * width, dtype=np.int64)
    windows[windows_of.astype(np.int64)] = np.arange(len(windows_of))[:, None]
    shift_h, shift_w = block.shift_size
    shifted = F.roll(Tensor(token_ids), (-shift_h, -shift_w), axes=(1, 2)).data  # Fig. 4, towards the top left
    return {
        "windows": windows.reshape(height, width),
        "shifted_ids": shifted[0, :, :, 0].astype(np.int64),
        "regions": shifted_window_regions(block.input_resolution, block.window_size, block.shift_size),
        "mask": backend.to_numpy(block.attn_mask.data),
        "relative_position_index": backend.to_numpy(block.attn.relative_position_index.data),
    }


def _annotate(axis, values: np.ndarray, fontsize: float) -> None:
    for (row, column), value in np.ndenumerate(values):
        axis.text(column, row, str(value), ha="center", va="center", fontsize=fontsize, color="black")


def plot_swin_windows(block, path: str) -> str:
    """Five panels for a shifted SwinTransformerBlock on a small map (swin_window_layout): the
    regular windows with the token ids, the cyclically shifted map, its regions, the additive mask
    of the last window (which token pairs may attend) and the relative position index."""
    plt = _pyplot()
    layout = swin_window_layout(block)
    (height, width), (window_h, window_w) = block.input_resolution, block.window_size
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.6))
    token_ids = np.arange(height * width).reshape(height, width)
    panels = (
        (layout["windows"], token_ids, "Pastel1", f"W-MSA: windows of {window_h}x{window_w} (token ids)"),
        (layout["windows"], layout["shifted_ids"], "Pastel1", f"cyclic shift by {block.shift_size}"),
        (layout["regions"], layout["shifted_ids"], "Set3", "regions of the shifted map"),
    )
    for axis, (colours, numbers, colour_map, title) in zip(axes[:3], panels, strict=True):
        axis.imshow(colours, cmap=colour_map)
        _annotate(axis, numbers, fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.set_xticks(np.arange(-0.5, width, window_w))
        axis.set_yticks(np.arange(-0.5, height, window_h))
        axis.grid(color="black", linewidth=2)
        axis.set_xticklabels([])
        axis.set_yticklabels([])
        axis.tick_params(length=0)
    last_window = layout["mask"].shape[0] - 1
    axes[3].imshow(layout["mask"][last_window] == 0, cmap="gray")
    axes[3].set_title(f"mask of window {last_window} (query x key): white = may attend", fontsize=9)
    axes[4].imshow(layout["relative_position_index"], cmap="viridis")
    _annotate(axes[4], layout["relative_position_index"], fontsize=4.5)
    axes[4].set_title("relative position index (query x key)", fontsize=9)
    for axis in axes[3:]:
        axis.set(xlabel="key token in the window", ylabel="query token in the window")
    return _save(figure, path)


def plot_relative_position_bias(attention, path: str) -> str:
    """The bias table of a Swin WindowAttention (Sec. 3.2, Eq. 4), one panel per head, laid out by
    the offset (dy, dx) = query position - key position that indexes it: ((2Mh-1) * (2Mw-1), heads)
    -> heads images of (2Mh-1) x (2Mw-1), the centre being a token attending to itself."""
    plt = _pyplot()
    window_h, window_w = attention.window_size
    table = backend.to_numpy(attention.relative_position_bias_table.data)
    heads = table.shape[1]
    figure, axes = plt.subplots(1, heads, figsize=(3.2 * heads, 2.9), constrained_layout=True)
    offsets_y, offsets_x = np.arange(1 - window_h, window_h), np.arange(1 - window_w, window_w)
    for head, axis in enumerate(np.atleast_1d(axes)):
        # relative_position_index's row order: (dy + Mh - 1) * (2Mw - 1) + dx + Mw - 1
        image = axis.imshow(table[:, head].reshape(2 * window_h - 1, 2 * window_w - 1), cmap="coolwarm")
        axis.set_xticks(range(len(offsets_x)), offsets_x)
        axis.set_yticks(range(len(offsets_y)), offsets_y)
        axis.set(xlabel="dx (query - key)", ylabel="dy", title=f"head {head}")
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.suptitle("learned relative position bias by offset", fontsize=10)
    return _save(figure, path)
