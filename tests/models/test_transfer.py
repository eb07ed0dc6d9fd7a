"""vit_from_mae: the MAE encoder as a timm-keyed VisionTransformer, for the official fine-tuning
(global_pool='avg', fc_norm, no final norm) and linear-probe (class token after the final norm,
only the head trains) recipes."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import backend
from scratchvit.models.mae import MaskedAutoencoderViT
from scratchvit.models.transfer import prepare_linear_probe, vit_from_mae
from scratchvit.models.vit import VisionTransformer

CONFIG = dict(
    img_size=16,
    patch_size=4,
    in_chans=3,
    embed_dim=16,
    depth=2,
    num_heads=2,
    decoder_embed_dim=8,
    decoder_depth=1,
    decoder_num_heads=2,
    mlp_ratio=2.0,
    norm_eps=1e-6,
)
LENGTH = 16  # 16x16 images of 4x4 patches


def pretrained_mae(**overrides) -> MaskedAutoencoderViT:
    """A small MAE whose every trainable parameter is random (as after pre-training), not at init."""
    sv.manual_seed(0)
    mae = MaskedAutoencoderViT(**{**CONFIG, **overrides})
    rng = np.random.default_rng(1)
    for parameter in mae.parameters():
        if parameter.requires_grad:
            parameter.data = (parameter.data + 0.1 * rng.standard_normal(parameter.shape)).astype(np.float32)
    return mae


def images(batch: int = 2, seed: int = 0, device="cpu") -> sv.Tensor:
    values = np.random.default_rng(seed).standard_normal((batch, 3, 16, 16)).astype(np.float32)
    return sv.Tensor(values, device=device)


def in_order(batch: int = 2) -> np.ndarray:
    """Noise whose argsort is the identity: no shuffle, tokens stay in the original order."""
    return np.broadcast_to(np.arange(LENGTH, dtype=np.float32), (batch, LENGTH))


def host(array) -> np.ndarray:
    return array.numpy() if isinstance(array, sv.Tensor) else backend.to_numpy(array)


ENCODER_KEYS = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"] + [
    f"blocks.{i}.{layer}.{kind}"
    for i in range(2)
    for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for kind in ("weight", "bias")
]


@pytest.mark.parametrize(
    "global_pool, extra_keys",
    [("token", ["norm.weight", "norm.bias"]), ("avg", ["fc_norm.weight", "fc_norm.bias"])],
)
def test_keys_and_weights_carry_over_by_name(global_pool, extra_keys):
    mae = pretrained_mae()
    vit = vit_from_mae(mae, num_classes=10, global_pool=global_pool)
    assert isinstance(vit, VisionTransformer) and vit.global_pool == global_pool
    state, mae_state = vit.state_dict(), mae.state_dict()
    assert sorted(state) == sorted(ENCODER_KEYS + extra_keys + ["head.weight", "head.bias"])
    for name in ENCODER_KEYS + (extra_keys if global_pool == "token" else []):
        np.testing.assert_array_equal(state[name], mae_state[name], err_msg=name)
        assert state[name] is not mae_state[name], name  # copies: training the ViT leaves the MAE as it was
    if global_pool == "avg":  # a new LayerNorm after pooling, at its init; the MAE's final norm is dropped
        np.testing.assert_array_equal(state["fc_norm.weight"], np.ones(16, np.float32))
        np.testing.assert_array_equal(state["fc_norm.bias"], np.zeros(16, np.float32))
    assert state["head.weight"].shape == (10, 16)
    np.testing.assert_array_equal(state["head.bias"], np.zeros(10, np.float32))
    assert state["head.weight"].std() < 1e-4  # main_finetune.py: trunc_normal(std=2e-5)


def test_token_features_equal_the_unmasked_encoder(device):
    mae = pretrained_mae().to(device)
    vit = vit_from_mae(mae, num_classes=10, global_pool="token").to(device)
    imgs = images(device=device)
    latent, mask, _ = mae.forward_encoder(imgs, 0.0, noise=in_order())
    assert not host(mask).any()  # nothing removed
    np.testing.assert_allclose(host(vit.forward_features(imgs)), host(latent), rtol=1e-6, atol=1e-6)
    # the probe's pre-logits are the class token after the final norm
    np.testing.assert_allclose(
        host(vit.forward_head(vit.forward_features(imgs), pre_logits=True)), host(latent)[:, 0], rtol=1e-6, atol=1e-6
    )


def test_token_features_equal_the_encoder_under_any_shuffle():
    mae = pretrained_mae()
    vit = vit_from_mae(mae, num_classes=10, global_pool="token")
    imgs = images()
    noise = np.random.default_rng(3).random((2, LENGTH))
    latent, _, ids_restore = mae.forward_encoder(imgs, 0.0, noise=noise)
    # the encoder's tokens come in shuffled order; ids_restore puts them back in the patch order
    patches = np.take_along_axis(host(latent)[:, 1:], host(ids_restore)[:, :, None], axis=1)
    features = host(vit.forward_features(imgs))
    np.testing.assert_allclose(features[:, 1:], patches, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(features[:, 0], host(latent)[:, 0], rtol=1e-4, atol=1e-5)


def test_avg_pool_is_the_mean_of_the_encoder_patch_tokens_through_fc_norm():
    mae = pretrained_mae()
    vit = vit_from_mae(mae, num_classes=10, global_pool="avg")
    captured = []
    mae.blocks[-1].register_forward_hook(lambda module, inputs, output: captured.append(host(output)))
    imgs = images()
    mae.forward_encoder(imgs, 0.0, noise=in_order())
    tokens = captured[0]  # (B, 1 + L, D), the last block's output, before the MAE's final norm
    np.testing.assert_allclose(host(vit.forward_features(imgs)), tokens, rtol=1e-6, atol=1e-6)  # no final norm
    mean = tokens[:, 1:].mean(axis=1)  # the class token is left out of the pool
    normalised = (mean - mean.mean(-1, keepdims=True)) / np.sqrt(mean.var(-1, keepdims=True) + 1e-6)
    pooled = host(vit.forward_head(vit.forward_features(imgs), pre_logits=True))
    np.testing.assert_allclose(pooled, normalised, rtol=1e-4, atol=1e-5)


def test_fine_tuning_trains_everything_including_the_position_embedding(device):
    mae = pretrained_mae()
    vit = vit_from_mae(mae, num_classes=5, global_pool="avg", drop_path_rate=0.1).to(device)
    assert vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)  # the recipe's stochastic depth
    vit.eval()  # no dropped branch, so every parameter gets a gradient
    assert vit.pos_embed.requires_grad  # fixed sin-cos in pre-training, a learned Parameter from now on
    loss = sv.ops.cross_entropy(vit(images(device=device)), np.array([1, 3]))
    loss.backward()
    for name, parameter in vit.named_parameters():
        assert parameter.grad is not None and np.any(host(parameter.grad) != 0), name
    assert all(p.grad is None for p in mae.parameters())


def test_linear_probe_trains_the_head_only(device):
    mae = pretrained_mae()
    vit = prepare_linear_probe(vit_from_mae(mae, num_classes=5, global_pool="token")).to(device)
    head = host(vit.head[1].weight.data)
    assert 0.005 < head.std() < 0.02 and np.abs(head).max() <= 2.0  # main_linprobe.py: trunc_normal(std=0.01)
    trainable = sorted(name for name, p in vit.named_parameters() if p.requires_grad)
    assert trainable == ["head.1.bias", "head.1.weight"]
    sv.ops.cross_entropy(vit(images(device=device)), np.array([0, 4])).backward()
    for name, parameter in vit.named_parameters():
        assert (parameter.grad is not None) == name.startswith("head."), name


def test_linear_probe_head_is_batch_norm_then_linear_with_the_official_keys():
    vit = prepare_linear_probe(vit_from_mae(pretrained_mae(), num_classes=5, global_pool="token"))
    head_keys = sorted(name for name in vit.state_dict() if name.startswith("head."))
    assert head_keys == [
        "head.0.num_batches_tracked",
        "head.0.running_mean",
        "head.0.running_var",
        "head.1.bias",
        "head.1.weight",
    ]  # main_linprobe.py's Sequential
    batch_norm = vit.head[0]
    assert isinstance(batch_norm, sv.nn.BatchNorm1d) and not batch_norm.affine and batch_norm.eps == 1e-6
    imgs = images(batch=4)
    features = host(vit.forward_head(vit.forward_features(imgs), pre_logits=True))  # (B, D) class tokens
    normalised = (features - features.mean(0)) / np.sqrt(features.var(0) + 1e-6)  # batch statistics in training
    expected = normalised @ host(vit.head[1].weight).T + host(vit.head[1].bias)
    np.testing.assert_allclose(host(vit(imgs)), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="vit.head must be its Linear classifier, got Sequential"):
        prepare_linear_probe(vit)


def test_layer_norm_eps_of_the_mae_carries_over():
    mae = pretrained_mae(norm_eps=1e-5)  # the class default, as the bare official MaskedAutoencoderViT
    vit = vit_from_mae(mae, num_classes=3, global_pool="token")
    assert {m.eps for _, m in vit.named_modules() if isinstance(m, sv.nn.LayerNorm)} == {1e-5}
    latent, _, _ = mae.forward_encoder(images(), 0.0, noise=in_order())
    np.testing.assert_allclose(host(vit.forward_features(images())), host(latent), rtol=1e-6, atol=1e-6)


def test_another_image_size_resamples_the_position_embedding():
    mae = pretrained_mae()
    vit = vit_from_mae(mae, num_classes=3, global_pool="avg", img_size=24)  # 4x4 grid -> 6x6
    assert vit.pos_embed.shape == (1, 1 + 36, 16)
    np.testing.assert_array_equal(host(vit.pos_embed)[0, 0], host(mae.pos_embed)[0, 0])  # class row kept
    # the 4 corner patches of the grid stay close to the MAE's corners (bicubic, no antialias)
    grid_old, grid_new = host(mae.pos_embed)[0, 1:].reshape(4, 4, 16), host(vit.pos_embed)[0, 1:].reshape(6, 6, 16)
    assert np.abs(grid_new[0, 0] - grid_old[0, 0]).max() < 0.2
    assert vit(sv.Tensor(np.zeros((1, 3, 24, 24), np.float32))).shape == (1, 3)


def test_from_a_registered_model_without_a_head():
    mae = sv.create_model("mae_vit_base_patch16", img_size=32, patch_size=16, depth=1, decoder_depth=1)
    vit = vit_from_mae(mae, num_classes=0, global_pool="token")
    assert vit.embed_dim == 768 and len(vit.blocks) == 1 and vit.blocks[0].attn.num_heads == 12
    assert vit(sv.Tensor(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 768)


def test_bad_arguments_raise_clear_errors():
    mae = pretrained_mae()
    with pytest.raises(ValueError, match=r"global_pool must be one of \('token', 'avg'\)"):
        vit_from_mae(mae, num_classes=10, global_pool="max")
    with pytest.raises(TypeError, match="mae must be a MaskedAutoencoderViT"):
        vit_from_mae(vit_from_mae(mae, num_classes=2), num_classes=10)
    with pytest.raises(ValueError, match="embed_dim, patch_size come from the MAE encoder"):
        vit_from_mae(mae, num_classes=10, embed_dim=32, patch_size=8)
    with pytest.raises(ValueError, match="prepare_linear_probe: vit has no head"):
        prepare_linear_probe(vit_from_mae(mae, num_classes=0, global_pool="token"))
