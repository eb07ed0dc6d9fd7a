# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Masked autoencoder pretraining on the digits
#
# A masked autoencoder (He et al. 2022) hides 75% of an image's patches, encodes only the visible
# quarter with a ViT, and asks a light decoder to paint the missing patches back. No labels are
# involved; the hope is that the encoder learns features worth having. We test that hope the two ways
# the paper does (Sec. 4): a linear probe on the frozen features, and fine-tuning the whole encoder,
# each against the same encoder at its random initialisation.
#
# Run it as a script (`python demos/mae_pretrain.py`) or open it as a notebook with jupytext.
# `SCRATCHVIT_QUICK=1` runs a few epochs of each stage; `SCRATCHVIT_DEVICE=cuda` runs on a GPU.

# %%
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import scratchvit as sv
from scratchvit.app import viz
from scratchvit.data import DataLoader, load_digits
from scratchvit.models.mae import MaskedAutoencoderViT
from scratchvit.models.transfer import vit_from_mae
from scratchvit.train import (
    AdamW,
    CosineSchedule,
    evaluate,
    fit,
    masked_autoencoder_loss,
    param_groups_layer_decay,
    param_groups_weight_decay,
)

QUICK = os.environ.get("SCRATCHVIT_QUICK") == "1"
OUT = os.environ.get("SCRATCHVIT_OUT") or os.path.join("scratchvit-out", "demos", "mae_pretrain")
device = sv.default_device()  # $SCRATCHVIT_DEVICE, else cpu
PRETRAIN_EPOCHS = 2 if QUICK else 100
FINETUNE_EPOCHS = 1 if QUICK else 30
MASK_RATIO = 0.75
print(f"device {device}, quick mode {QUICK}, figures go to {os.path.abspath(OUT)}")

# %% [markdown]
# ## 1. Data and model
#
# The digits as 3-channel images (the grey channel repeated), as an RGB model would see them. The
# encoder is the ViT of the digits demo (2x2 patches, 64 dims, 4 blocks of 4 heads, MLP ratio 2); the
# decoder is narrower and shallower (32 dims, 2 blocks), as the paper's asymmetric design asks.
# Position embeddings are fixed 2-D sin-cos tables in both.

# %%
train_set, test_set = load_digits("train", channels=3), load_digits("test", channels=3)
MAE_DIGITS = dict(
    img_size=8,
    patch_size=2,
    in_chans=3,
    embed_dim=64,
    depth=4,
    num_heads=4,
    decoder_embed_dim=32,
    decoder_depth=2,
    decoder_num_heads=4,
    mlp_ratio=2.0,
    norm_eps=1e-6,
)
sv.manual_seed(0)
mae = MaskedAutoencoderViT(**MAE_DIGITS).to(device)
print(f"MAE: {mae.num_parameters():,} parameters; train {train_set.images.shape}, test {test_set.images.shape}")

# %% [markdown]
# ## 2. One forward pass
#
# 16 patches per image, each 2 x 2 pixels x 3 channels = 12 values. With 75% masking the encoder sees
# 4 patches (+ the class token); the decoder predicts all 16, and the loss is the mean squared error on
# the 12 removed ones only. `mask` is 1 where a patch was removed.

# %%
images = sv.tensor(train_set.images[:8], device=device)
loss, prediction, mask = mae(images, mask_ratio=MASK_RATIO)
latent, _, _ = mae.forward_encoder(images, mask_ratio=MASK_RATIO)
print(f"images {images.shape} -> encoder tokens {latent.shape}, prediction {prediction.shape}, mask {mask.shape}")
print(f"removed patches per image: {mask.numpy().sum(axis=1).astype(int).tolist()}; loss at init {loss.item():.4f}")

# %% [markdown]
# ## 3. Pretraining
#
# AdamW at a constant 1.5e-3 with betas (0.9, 0.95) and weight decay 0.05 (the paper's Table 8
# optimiser; the recipe of the PyTorch reference), batches of 128, 100 epochs. Each epoch draws new
# masks. (A cosine schedule with warm-up, as the paper's 800-epoch runs use, did no better here.)

# %%
train_loader = DataLoader(train_set, 128, shuffle=True, seed=0)
test_loader = DataLoader(test_set, 256)
optimizer = AdamW(param_groups_weight_decay(mae, weight_decay=0.05), lr=1.5e-3, betas=(0.9, 0.95))
start = time.perf_counter()
pretrain_history = fit(
    mae, train_loader, optimizer, epochs=PRETRAIN_EPOCHS, loss_fn=masked_autoencoder_loss(MASK_RATIO), progress=False
)
pretrain_seconds = time.perf_counter() - start
for record in pretrain_history[:: max(1, PRETRAIN_EPOCHS // 10)]:
    print(f"epoch {record['epoch'] + 1:4d}  reconstruction loss {record['train_loss']:.4f}")
test_loss = evaluate(mae, test_loader, masked_autoencoder_loss(MASK_RATIO))["loss"]
print(f"{PRETRAIN_EPOCHS} epochs in {pretrain_seconds:.1f} s; reconstruction loss on the test images {test_loss:.4f}")

# %% [markdown]
# ## 4. Reconstructions
#
# Test images, the 25% the encoder saw, and the reconstruction with the visible patches pasted back
# (as the paper's Fig. 2-4: only the removed patches are the model's work).

# %%
os.makedirs(OUT, exist_ok=True)
originals = test_set.images[:10]
masked, reconstructions = viz.mae_reconstruction(mae, sv.tensor(originals, device=device), MASK_RATIO)
figures = [
    viz.plot_mae_reconstruction(originals, masked, reconstructions, os.path.join(OUT, "mae_reconstruction.png")),
    viz.plot_training_curves(pretrain_history, os.path.join(OUT, "mae_pretraining_loss.png")),
]

# %% [markdown]
# ## 5. Linear probe: logistic regression on the frozen features
#
# Each image goes through the encoder unmasked, and the mean of its 16 patch tokens is its feature
# (64 numbers). A logistic regression (scikit-learn's, L2-regularised) is trained on the training
# images and scored on the test images, for the pretrained encoder and for the same encoder at its
# random initialisation (the same seed, before pretraining). Twice: on the raw features, as the
# PyTorch reference does, and on standardised features, as the paper's probe does with a BatchNorm
# without affine parameters before the linear layer (Appendix A.2). Look at the spread (the mean
# standard deviation of a feature): the random encoder's features barely vary, so on raw features
# the regulariser, not the features, holds its probe back; standardised, a random transformer is a
# fair feature extractor for the digits too.


# %%
def mean_encoder_token(model: MaskedAutoencoderViT, images: np.ndarray) -> np.ndarray:
    """(B, C, H, W) -> (B, D): the encoder's patch tokens, unmasked, averaged."""
    model.eval()
    with sv.no_grad():
        latent, _, _ = model.forward_encoder(sv.tensor(images, device=device), mask_ratio=0.0)
    return latent.numpy()[:, 1:].mean(axis=1)  # drop the class token


def probe_accuracies(model: MaskedAutoencoderViT) -> dict:
    train_features = mean_encoder_token(model, train_set.images)
    test_features = mean_encoder_token(model, test_set.images)
    probes = {
        "raw": LogisticRegression(max_iter=5000),
        "standardised": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
    }
    accuracies = {
        kind: 100 * probe.fit(train_features, train_set.labels).score(test_features, test_set.labels)
        for kind, probe in probes.items()
    }
    return {**accuracies, "spread": float(train_features.std(axis=0).mean())}


sv.manual_seed(0)
random_mae = MaskedAutoencoderViT(**MAE_DIGITS).to(device)  # the pretrained model's starting point
probe = {"MAE": probe_accuracies(mae), "random init": probe_accuracies(random_mae)}
for name, accuracies in probe.items():
    print(
        f"linear probe, {name:<11}: raw features {accuracies['raw']:.2f}%, "
        f"standardised {accuracies['standardised']:.2f}% (feature spread {accuracies['spread']:.3f})"
    )
print("(PyTorch reference, raw features: MAE 93.3%, random init 50.6%)")

# %% [markdown]
# ## 6. Fine-tuning the whole encoder
#
# `vit_from_mae` turns the encoder into a ViT classifier as the official code does: the same weights,
# the mean of the patch tokens through a new LayerNorm, and a new head. Everything trains, with the
# paper's fine-tuning recipe scaled down: AdamW with layer-wise lr decay 0.75 (the blocks near the input
# move least), weight decay 0.05, drop path 0.1, label smoothing 0.1, a cosine schedule after 3
# warm-up epochs, batches of 64. Same recipe from the random initialisation.


# %%
def finetune(model: MaskedAutoencoderViT, name: str) -> float:
    sv.manual_seed(1)
    vit = vit_from_mae(model, num_classes=10, drop_path_rate=0.1).to(device)
    loader = DataLoader(train_set, 64, shuffle=True, seed=1)
    steps = FINETUNE_EPOCHS * len(loader)
    optimizer = AdamW(param_groups_layer_decay(vit, weight_decay=0.05, layer_decay=0.75), lr=2e-3)
    schedule = CosineSchedule(base_lr=2e-3, total_steps=steps, warmup_steps=min(3 * len(loader), steps // 2))
    history = fit(
        vit,
        loader,
        optimizer,
        epochs=FINETUNE_EPOCHS,
        eval_loader=test_loader,
        label_smoothing=0.1,
        schedule=schedule,
        progress=False,
    )
    figures.append(viz.plot_training_curves(history, os.path.join(OUT, f"finetune_{name}.png")))
    return history[-1]["eval_acc1"]


start = time.perf_counter()
finetuned = {"MAE": finetune(mae, "mae"), "random init": finetune(random_mae, "random_init")}
print(f"fine-tuned {FINETUNE_EPOCHS} epochs each in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## 7. Results

# %%
print("test accuracy (%)   probe (raw)   probe (standardised)   fine-tuned")
for name in ("MAE", "random init"):
    print(f"{name:<18} {probe[name]['raw']:11.2f}   {probe[name]['standardised']:20.2f}   {finetuned[name]:10.2f}")
for path in figures:
    print("figure:", os.path.abspath(path))
