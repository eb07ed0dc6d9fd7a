# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Swin's shifted windows, drawn and trained
#
# Swin (Liu et al. 2021) computes self-attention inside non-overlapping windows of M x M tokens, so
# the cost grows linearly with the image instead of quadratically. To let information cross the
# window borders, every second block shifts the windows by M/2. Shifting naively would make more,
# smaller windows; Swin instead rolls the whole map cyclically (Fig. 4) and keeps the same windows,
# adding a mask of -100 so that tokens the roll brought together from opposite edges cannot attend to
# each other. Every window also adds a learned bias that depends only on the offset between the query
# and the key (the relative position bias, Eq. 4).
#
# Below, all of this for an 8x8 map with 4x4 windows and a shift of 2, read off a real
# `SwinTransformerBlock`'s own buffers; then a small Swin trained on the digits.
#
# Run it as a script (`python demos/swin_windows.py`) or open it as a notebook with jupytext.
# `SCRATCHVIT_QUICK=1` trains for 2 epochs instead of 30; `SCRATCHVIT_DEVICE=cuda` runs on a GPU.

# %%
import os
import time

import numpy as np

import scratchvit as sv
from scratchvit.app import viz
from scratchvit.data import DataLoader, load_digits
from scratchvit.models import summarize
from scratchvit.models.swin import SwinTransformerBlock
from scratchvit.train import AdamW, OneCycleSchedule, fit, param_groups_weight_decay

QUICK = os.environ.get("SCRATCHVIT_QUICK") == "1"
OUT = os.environ.get("SCRATCHVIT_OUT") or os.path.join("scratchvit-out", "demos", "swin_windows")
device = sv.default_device()  # $SCRATCHVIT_DEVICE, else cpu
print(f"device {device}, quick mode {QUICK}, figures go to {os.path.abspath(OUT)}")

# %% [markdown]
# ## 1. A shifted block on an 8x8 map
#
# Windows of 4x4 = 16 tokens, shifted by 2 (the odd blocks of a stage use M // 2). The block builds
# two buffers once: the additive mask (one 16x16 matrix per window) and the relative position index.

# %%
block = SwinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=2)
print(
    f"window {block.window_size}, shift {block.shift_size}, attn_mask {block.attn_mask.shape}, "
    f"relative_position_index {block.attn.relative_position_index.shape}"
)
layout = viz.swin_window_layout(block)
print("window of each token, F.window_partition's order (row of windows, then column):\n", layout["windows"])
print(
    "token ids after the cyclic shift F.roll(x, (-2, -2)): row 0 now holds row 2 of the image\n", layout["shifted_ids"]
)

# %% [markdown]
# ## 2. Regions and the mask
#
# On the rolled map, each axis splits into three regions: positions that never wrapped
# ([0, L - M)), the part of the last window that did not wrap ([L - M, L - s)) and what came round
# from the start ([L - s, L)). Two tokens of one window may attend to each other only when they are in
# the same region; the mask puts -100 on every other pair (exp(-100) is 0 after the softmax). The
# top-left window holds one region, the bottom-right window four.

# %%
print("regions of the rolled map (3 * row region + column region):\n", layout["regions"])
for window, window_mask in enumerate(layout["mask"]):
    allowed = int((window_mask == 0).sum())
    print(f"window {window}: {allowed:3d} of {window_mask.size} query-key pairs may attend")

# %% [markdown]
# ## 3. The relative position index
#
# For query i and key j of a window, at (yi, xi) and (yj, xj), the offset (yi - yj, xi - xj) lies in
# [-(M-1), M-1]^2: (2M-1)^2 = 49 possible offsets, so a table of 49 rows (one column per head) holds
# every bias, and the index says which row each of the 16 x 16 pairs reads. Its diagonal (a token and
# itself, offset (0, 0)) is always the middle row, 24.

# %%
index = layout["relative_position_index"]
print("index[:4, :4] (the first row of the window against itself):\n", index[:4, :4])
print("diagonal:", np.unique(np.diag(index)), " rows used:", len(np.unique(index)), "of", (2 * 4 - 1) ** 2)
os.makedirs(OUT, exist_ok=True)
print("figure:", os.path.abspath(viz.plot_swin_windows(block, os.path.join(OUT, "swin_windows.png"))))

# %% [markdown]
# ## 4. A small Swin on the digits
#
# 8x8 images cut into 2x2 patches give a 4x4 map of 64-dim tokens; stage 1 has 2x2 windows (every
# second block shifted by 1), patch merging halves the map to 2x2 with 128 dims, where the window is
# clipped to the whole map and the shift switched off, as the reference code does. The recipe is the
# ViT demo's: AdamW 2e-3 with weight decay 0.05, one-cycle schedule, label smoothing 0.1, batches of 64,
# 30 epochs.

# %%
sv.manual_seed(0)
model = sv.create_model(
    "swin_tiny_patch4_window7_224",
    img_size=8,
    patch_size=2,
    in_chans=1,
    num_classes=10,
    embed_dim=64,
    depths=(2, 2),
    num_heads=(4, 8),
    window_size=2,
    mlp_ratio=2.0,
    drop_path_rate=0.0,
).to(device)
print(summarize(model, (64, 1, 8, 8), device=device).table(max_depth=3))

epochs = 2 if QUICK else 30
train_set, test_set = load_digits("train"), load_digits("test")
train_loader = DataLoader(train_set, 64, shuffle=True, seed=0)
test_loader = DataLoader(test_set, 256)
optimizer = AdamW(param_groups_weight_decay(model, weight_decay=0.05), lr=2e-3)
schedule = OneCycleSchedule(max_lr=2e-3, total_steps=epochs * len(train_loader))
start = time.perf_counter()
history = fit(
    model,
    train_loader,
    optimizer,
    epochs=epochs,
    eval_loader=test_loader,
    label_smoothing=0.1,
    schedule=schedule,
    progress=False,
)
print(
    f"Swin test accuracy {history[-1]['eval_acc1']:.2f}% after {epochs} epochs, "
    f"{time.perf_counter() - start:.1f} s of training"
)

# %% [markdown]
# ## 5. What it learned
#
# The training curves, test predictions, and the learned relative position bias of the shifted block
# of stage 1, by offset: which neighbours each head prefers to look at.

# %%
images = test_set.images[:32]
with sv.no_grad():
    predictions = model.eval()(sv.tensor(images, device=device)).numpy().argmax(axis=1)
figures = [
    viz.plot_training_curves(history, os.path.join(OUT, "training_curves.png")),
    viz.plot_predictions(images, test_set.labels[:32], predictions, os.path.join(OUT, "predictions.png")),
    viz.plot_relative_position_bias(model.layers[0].blocks[1].attn, os.path.join(OUT, "relative_position_bias.png")),
]
for path in figures:
    print("figure:", os.path.abspath(path))
