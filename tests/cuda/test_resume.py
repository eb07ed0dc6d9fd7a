"""A resumed run is the run that was not interrupted, bit for bit, on every device: the
checkpoint holds every generator's state, the GPU's included, so dropout and drop path draw the
same masks after the resume as they would have without it."""

from __future__ import annotations

import numpy as np

import scratchvit as sv
from scratchvit import backend
from scratchvit.data import DataLoader
from scratchvit.data.base import ArrayDataset
from scratchvit.train import AdamW, fit

TINY_VIT = dict(img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)
DROPOUT = dict(drop_rate=0.2, attn_drop_rate=0.2, proj_drop_rate=0.2, drop_path_rate=0.3)


def run(device, seed: int):
    sv.manual_seed(seed)
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.random((24, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 24), ["a", "b", "c"])
    model = sv.create_model("vit_tiny_patch16_224", **TINY_VIT, **DROPOUT).to(device)
    loader = DataLoader(data, batch_size=8, shuffle=True, seed=0, device=device)
    return model, loader, AdamW(model.parameters(), lr=1e-2)


def test_resume_with_dropout_is_exact(device, tmp_path):
    model, loader, optimizer = run(device, seed=0)
    fit(model, loader, optimizer, epochs=2, progress=False)

    checkpoint = tmp_path / "run.npz"
    first, first_loader, first_optimizer = run(device, seed=0)
    fit(first, first_loader, first_optimizer, epochs=1, checkpoint=checkpoint, progress=False)
    resumed, resumed_loader, resumed_optimizer = run(device, seed=7)  # other weights, other generator states
    fit(resumed, resumed_loader, resumed_optimizer, epochs=2, resume=checkpoint, progress=False)

    for (name, straight), (_, again) in zip(model.named_parameters(), resumed.named_parameters(), strict=True):
        np.testing.assert_array_equal(backend.to_numpy(again.data), backend.to_numpy(straight.data), err_msg=name)
