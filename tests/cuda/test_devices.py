"""Several GPUs, under the CuPy stand-in (two simulated devices): choosing "cuda:N" makes device
N current wherever arrays are made and computed for it, so a model on cuda:1 trains while the
program's current device is 0, and a rank of a data-parallel job takes its own GPU."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import backend
from scratchvit.models.transfer import prepare_linear_probe, vit_from_mae
from scratchvit.train import distributed
from scratchvit.train.optim import AdamW, clip_grad_norm_

TINY_VIT = dict(img_size=8, patch_size=2, in_chans=3, num_classes=3, embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)
TINY_MAE = dict(
    img_size=8,
    patch_size=2,
    in_chans=3,
    embed_dim=8,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    decoder_embed_dim=8,
    decoder_depth=1,
    decoder_num_heads=2,
)


@pytest.fixture
def device_zero_is_current(stand_in):
    """Device 0 current and the CPU the default before and after the test."""
    import cupy

    cupy.cuda.Device(0).use()
    backend.set_default_device("cpu")
    yield stand_in
    cupy.cuda.Device(0).use()
    backend.set_default_device("cpu")


def train_one_step(model, images, labels):
    optimizer = AdamW(model.parameters(), lr=1e-3)
    loss = sv.ops.cross_entropy(model(images), labels)
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


def test_factories_put_arrays_on_the_device_they_name(device_zero_is_current):
    for factory in (sv.zeros, sv.ones, sv.randn):
        made = factory(2, 3, device="cuda:1")
        assert made.device == backend.get_device("cuda:1")
        assert made.data.device.id == 1
    assert sv.Tensor([1.0, 2.0], device="cuda:1").data.device.id == 1


def test_forward_backward_and_step_on_cuda_1_while_device_0_is_current(device_zero_is_current):
    import cupy

    sv.manual_seed(0)
    model = sv.create_model("vit_tiny_patch16_224", **TINY_VIT, drop_rate=0.1, attn_drop_rate=0.1).to("cuda:1")
    before = {name: backend.to_numpy(p.data).copy() for name, p in model.named_parameters()}
    images = sv.randn(4, 3, 8, 8, device="cuda:1")
    loss = train_one_step(model, images, np.array([0, 1, 2, 0]))
    assert loss.device == backend.get_device("cuda:1") and np.isfinite(float(loss.data))
    for name, parameter in model.named_parameters():
        assert parameter.data.device.id == 1 and parameter.grad.device.id == 1, name
        assert not np.array_equal(backend.to_numpy(parameter.data), before[name]), name
    assert cupy.cuda.Device().id == 0  # the device the program chose is current again


def test_set_default_device_makes_that_gpu_current(device_zero_is_current):
    import cupy

    backend.set_default_device("cuda:1")
    assert cupy.cuda.Device().id == 1
    assert sv.zeros(3).data.device.id == 1


def test_a_rank_takes_the_gpu_of_its_local_rank(device_zero_is_current, monkeypatch):
    """What recipes._start does on rank 1 of a 2-rank job started with --device cuda."""
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "_local_rank", 1)
    device = distributed.local_device("cuda")
    assert device == "cuda:1"
    backend.set_default_device(device)
    sv.manual_seed(1)
    model = sv.create_model("vit_tiny_patch16_224", **TINY_VIT).to(device)
    train_one_step(model, sv.randn(2, 3, 8, 8), np.array([2, 1]))
    assert {parameter.data.device.id for parameter in model.parameters()} == {1}


def test_linear_probe_of_a_model_already_on_the_gpu(device_zero_is_current):
    sv.manual_seed(0)
    mae = sv.create_model("mae_vit_base_patch16", **TINY_MAE).to("cuda:1")
    vit = prepare_linear_probe(vit_from_mae(mae, num_classes=5, global_pool="token").to("cuda:1"))
    assert {buffer.data.device.id for _, buffer in vit.head.named_buffers()} == {1}
    train_one_step(vit, sv.randn(2, 3, 8, 8, device="cuda:1"), np.array([0, 4]))
    assert vit.head[1].weight.grad.device.id == 1
