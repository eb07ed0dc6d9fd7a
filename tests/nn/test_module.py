"""Module, Parameter, containers, state_dict / load_state_dict, hooks, init and the layers."""

import math

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import nn
from scratchvit import ops as F


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 2, bias=False)])
        self.scale = nn.Parameter(np.ones(2, np.float32), requires_grad=False)
        self.register_buffer("table", sv.Tensor(np.arange(6).reshape(2, 3)))
        self.register_buffer("scratch", sv.Tensor(np.zeros(2, np.float32)), persistent=False)

    def forward(self, x):
        x = self.norm(self.first(x))
        for block in self.blocks:
            x = block(x)
        return x * self.scale


def test_named_parameters_follow_registration_order_with_dotted_names():
    names = [name for name, _ in TwoLayer().named_parameters()]
    assert names == [
        "scale",
        "first.weight",
        "first.bias",
        "norm.weight",
        "norm.bias",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
    ]


def test_state_dict_has_parameters_and_persistent_buffers_only():
    state = TwoLayer().state_dict()
    assert "table" in state and "scratch" not in state
    assert state["first.weight"].shape == (4, 3)
    assert len(state) == 9


def test_load_state_dict_round_trip_copies_values():
    source, target = TwoLayer(), TwoLayer()
    target.load_state_dict(source.state_dict())
    for (name, a), (_, b) in zip(source.named_parameters(), target.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
        assert a.data is not b.data  # copied, not shared


def test_load_state_dict_strict_names_every_problem():
    model = TwoLayer()
    state = dict(model.state_dict())
    del state["first.bias"]
    state["extra.weight"] = np.zeros(3, np.float32)
    state["norm.weight"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys (1): first.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "norm.weight: checkpoint (5,) vs model (4,)" in message


def test_load_state_dict_not_strict_reports_missing_and_unexpected():
    model = TwoLayer()
    state = dict(model.state_dict())
    del state["first.bias"]
    state["extra"] = np.zeros(1, np.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["first.bias"] and unexpected == ["extra"]


def test_load_state_dict_converts_dtype_to_the_parameters():
    model = TwoLayer()
    state = {name: np.asarray(value, dtype=np.float64) for name, value in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.first.weight.dtype == np.float32
    assert model.table.dtype == np.int64 or model.table.dtype.kind == "i"


def test_train_eval_propagate_to_every_module():
    model = TwoLayer().eval()
    assert not any(module.training for module in model.modules())
    model.train()
    assert all(module.training for module in model.modules())


def test_zero_grad_apply_and_num_parameters():
    model = TwoLayer()
    x = sv.Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    (model(x) * sv.Tensor(np.arange(10, dtype=np.float32).reshape(5, 2))).sum().backward()
    assert model.first.weight.grad is not None and model.scale.grad is None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    visited = []
    model.apply(lambda module: visited.append(type(module).__name__))
    assert visited[-1] == "TwoLayer" and visited.count("Linear") == 3
    assert model.num_parameters() == 2 + 16 + 8 + 20 + 8
    assert model.num_parameters(trainable_only=True) == 16 + 8 + 20 + 8


def test_to_cpu_keeps_arrays_and_unknown_device_raises():
    model = TwoLayer()
    before = model.first.weight.data
    assert model.to("cpu") is model and model.first.weight.data is before
    with pytest.raises(ValueError, match="tpu"):
        model.to("tpu")


def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    layer = nn.Linear(3, 2)
    seen = []
    remove = layer.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].shape, output.shape)))
    layer(sv.zeros(4, 3))
    remove()
    layer(sv.zeros(4, 3))
    assert seen == [((4, 3), (4, 2))]


def test_repr_shows_the_tree():
    text = repr(TwoLayer())
    assert "(first): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "(0): Linear(in_features=4, out_features=4, bias=True)" in text


def test_setting_attributes_before_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_sequential_applies_in_order():
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    x = sv.Tensor(np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32))
    np.testing.assert_allclose(nn.Sequential([first, second])(x).data, second(first(x)).data)


def test_trunc_normal_stays_in_bounds_and_has_the_std():
    sv.manual_seed(0)
    weight = nn.init.trunc_normal_(nn.Parameter(np.zeros((200, 200), np.float32)), std=0.5, a=-1.0, b=1.0)
    assert weight.data.min() >= -1.0 and weight.data.max() <= 1.0
    expected_std = 0.5 * math.sqrt(0.7737)  # N(0, 0.5) truncated at +-2 sigma keeps 77.37% of the variance
    assert abs(weight.data.std() - expected_std) < 0.01


def test_xavier_uniform_bound_and_seed_reproducibility():
    sv.manual_seed(3)
    first = nn.init.xavier_uniform_(nn.Parameter(np.zeros((30, 50), np.float32))).data.copy()
    sv.manual_seed(3)
    second = nn.init.xavier_uniform_(nn.Parameter(np.zeros((30, 50), np.float32))).data
    bound = math.sqrt(6 / 80)
    assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound
    np.testing.assert_array_equal(first, second)


def test_attention_equals_a_loop_over_heads():
    rng = np.random.default_rng(0)
    attention = nn.Attention(12, num_heads=3, qkv_bias=True)
    x = rng.standard_normal((2, 5, 12)).astype(np.float32)
    out = attention(sv.Tensor(x)).data
    qkv = x @ attention.qkv.weight.data.T + attention.qkv.bias.data
    heads = []
    for head in range(3):
        q, k, v = (qkv[..., part * 12 + head * 4 : part * 12 + head * 4 + 4] for part in range(3))
        scores = q @ k.transpose(0, 2, 1) / 2.0
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(weights / weights.sum(-1, keepdims=True) @ v)
    expected = np.concatenate(heads, -1) @ attention.proj.weight.data.T + attention.proj.bias.data
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_patch_embed_equals_a_strided_convolution():
    rng = np.random.default_rng(0)
    embed = nn.PatchEmbed(img_size=(8, 12), patch_size=4, in_chans=3, embed_dim=5)
    images = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    out = embed(sv.Tensor(images)).data  # (B, N, D)
    weight, bias = embed.proj.weight.data, embed.proj.bias.data
    expected = np.empty((2, 2, 3, 5), np.float32)
    for row in range(2):
        for column in range(3):
            patch = images[:, :, row * 4 : row * 4 + 4, column * 4 : column * 4 + 4]
            expected[:, row, column] = np.einsum("bcpq,dcpq->bd", patch, weight) + bias
    np.testing.assert_allclose(out, expected.reshape(2, 6, 5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 4, 8, 12), "4 channels but the model expects in_chans=3"),
        ((2, 3, 8, 8), "image size 8x8 does not match the model's img_size 8x12"),
        ((3, 8, 12), "must be (B, C, H, W)"),
    ],
)
def test_patch_embed_rejects_bad_images(shape, message):
    embed = nn.PatchEmbed(img_size=(8, 12), patch_size=4, in_chans=3, embed_dim=5)
    with pytest.raises(ValueError) as error:
        embed(sv.zeros(*shape))
    assert message in str(error.value)


def test_patch_embed_rejects_indivisible_img_size():
    with pytest.raises(ValueError, match="img_size 30 is not divisible by patch_size 4"):
        nn.PatchEmbed(img_size=30, patch_size=4)


def test_block_backward_reaches_every_parameter_and_matches_functional_layers():
    block = nn.Block(8, num_heads=2, qkv_bias=True, init_values=0.1)
    x = sv.Tensor(np.random.default_rng(2).standard_normal((2, 3, 8)).astype(np.float32), requires_grad=True)
    out = block(x)
    manual = x + block.ls1(block.attn(F.layer_norm(x, block.norm1.weight, block.norm1.bias, 1e-6)))
    manual = manual + block.ls2(block.mlp(F.layer_norm(manual, block.norm2.weight, block.norm2.bias, 1e-6)))
    np.testing.assert_allclose(out.data, manual.data, rtol=1e-6, atol=1e-6)
    (out * out).sum().backward()
    assert all(p.grad is not None and np.abs(p.grad).sum() > 0 for p in block.parameters())
