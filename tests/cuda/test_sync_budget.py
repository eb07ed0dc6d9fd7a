"""A training step on a GPU does not wait for the device: under the CuPy stand-in, which counts
every copy and every wait, the main thread makes no copy to the host between two reads of the
loss (one copy each, every READ_EVERY_ON_GPU steps and at the epoch's end), and no copy to the
device at all: the loader's thread copies the next batches while the current one trains."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit.data import DataLoader
from scratchvit.data.base import ArrayDataset
from scratchvit.train import AdamW, CosineSchedule, classification_loss
from scratchvit.train.loop import READ_EVERY_ON_GPU, train_one_epoch

TINY_VIT = dict(img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)
STEPS = READ_EVERY_ON_GPU + 5  # reads at steps 0 and READ_EVERY_ON_GPU, and at the last


@pytest.fixture
def cuda_run(stand_in):
    sv.manual_seed(0)
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.random((STEPS * 4, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, STEPS * 4), "abc")
    model = sv.create_model("vit_tiny_patch16_224", **TINY_VIT, drop_rate=0.1, drop_path_rate=0.1).to("cuda")
    optimizer = AdamW(model.parameters(), lr=1e-3)
    return model, DataLoader(data, batch_size=4, shuffle=True, device="cuda"), optimizer


def test_a_training_step_on_the_gpu_waits_for_the_device_only_to_read_the_loss(cuda_run, stand_in):
    model, loader, optimizer = cuda_run
    schedule = CosineSchedule(1e-3, total_steps=STEPS, warmup_steps=2)
    stand_in.reset_counts()  # from here on: the epoch alone
    stats, step = train_one_epoch(
        model, loader, optimizer, classification_loss(0.1), schedule=schedule, clip_grad=1.0, progress=False
    )
    assert step == STEPS and np.isfinite(stats["loss"]) and 0.0 <= stats["acc1"] <= 100.0
    reads = 3  # steps 0 and READ_EVERY_ON_GPU, and the last; then the epoch's loss and accuracy
    assert stand_in.main_thread_counts["device_to_host"] <= reads + 2
    assert stand_in.main_thread_counts["syncs"] == stand_in.main_thread_counts["device_to_host"]
    assert stand_in.main_thread_counts["host_to_device"] == 0
    assert stand_in.counts["host_to_device"] == 2 * STEPS  # images and labels, on the loader's thread


def test_labels_out_of_range_on_the_gpu_stop_the_epoch_at_the_next_read(cuda_run):
    model, loader, optimizer = cuda_run
    loader.dataset.labels[5] = 7
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 3\)"):
        train_one_epoch(model, loader, optimizer, classification_loss(), progress=False)
