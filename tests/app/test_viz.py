"""scratchvit.app.viz: every figure is written as a PNG, attention rollout equals the hand computation,
MAE reconstructions paste the visible patches back, and the Swin figure's inputs are the model's."""

from __future__ import annotations

import numpy as np
import pytest

import scratchvit as sv
from scratchvit import ops as F
from scratchvit.models.mae import MaskedAutoencoderViT
from scratchvit.models.swin import SwinTransformerBlock

pytest.importorskip("matplotlib")
from scratchvit.app import viz  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE, path


def _tiny_vit(depth: int, seed: int = 0):
    sv.manual_seed(seed)
    model = sv.create_model(
        "vit_tiny_patch16_224",
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=16,
        depth=depth,
        num_heads=2,
        mlp_ratio=2.0,
    )
    rng = np.random.default_rng(seed)
    for parameter in model.parameters():  # every parameter random, so each one matters
        parameter.data = (0.5 * rng.standard_normal(parameter.shape)).astype(np.float32)
    return model


def _images(count: int, channels: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((count, channels, 8, 8), dtype=np.float32)


def _shifted_block() -> SwinTransformerBlock:
    return SwinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=2)


# ---- attention rollout -------------------------------------------------------------------------
def test_rollout_shape_and_rows():
    model = _tiny_vit(depth=3)
    maps = viz.attention_rollout(model, sv.tensor(_images(5)))
    assert maps.shape == (5, 4, 4)
    assert (maps >= 0).all()
    # the class token's rollout row sums to 1 over all tokens; the patches get what it does not keep
    assert (maps.reshape(5, -1).sum(axis=1) < 1).all() and (maps.reshape(5, -1).sum(axis=1) > 0).all()


def test_rollout_of_one_block_equals_hand_computation():
    model = _tiny_vit(depth=1)
    images = sv.tensor(_images(3))
    attention = model.blocks[0].attn
    with sv.no_grad():
        tokens = model.patch_embed(images)  # (B, 16, D)
        cls = model.cls_token.expand(3, 1, tokens.shape[-1])
        tokens = F.concatenate([cls, tokens], axis=1) + model.pos_embed  # (B, 17, D)
        qkv = F.linear(model.blocks[0].norm1(tokens), attention.qkv.weight, attention.qkv.bias)
        qkv = qkv.reshape(3, 17, 3, attention.num_heads, attention.head_dim).permute(2, 0, 3, 1, 4)
        weights = F.softmax(qkv[0] @ qkv[1].transpose(-1, -2) * attention.head_dim**-0.5, axis=-1)
    head_mean = weights.numpy().mean(axis=1)  # (B, 17, 17)
    residual = 0.5 * head_mean + 0.5 * np.eye(17)  # rows still sum to 1
    expected = residual[:, 0, 1:].reshape(3, 4, 4)
    np.testing.assert_allclose(viz.attention_rollout(model, images), expected, rtol=1e-5, atol=1e-6)


def test_rollout_of_two_blocks_multiplies_the_layers():
    model = _tiny_vit(depth=2)
    images = sv.tensor(_images(2))
    captured = []

    def capture(module, inputs, output):
        captured.append(inputs[0].numpy())

    removers = [block.attn.register_forward_hook(capture) for block in model.blocks]
    viz.attention_rollout(model, images)
    for remove in removers:
        remove()
    # a one-block model whose block is the second block, fed the second block's input, gives that
    # layer alone; the rollout of both is (layer 2) @ (layer 1)
    layers = []
    for block, block_input in zip(model.blocks, captured, strict=True):
        attention = block.attn
        qkv = block_input @ attention.qkv.weight.numpy().T + attention.qkv.bias.numpy()
        qkv = qkv.reshape(2, 17, 3, attention.num_heads, attention.head_dim).transpose(2, 0, 3, 1, 4)
        scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) * attention.head_dim**-0.5
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights = (weights / weights.sum(-1, keepdims=True)).mean(axis=1)
        layers.append(0.5 * weights + 0.5 * np.eye(17))
    expected = (layers[1] @ layers[0])[:, 0, 1:].reshape(2, 4, 4)
    np.testing.assert_allclose(viz.attention_rollout(model, images), expected, rtol=1e-5, atol=1e-6)


def test_rollout_of_an_average_pooling_vit_is_the_mean_of_the_patch_rows():
    sv.manual_seed(0)
    model = sv.create_model(
        "vit_tiny_patch16_224",
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=16,
        depth=1,
        num_heads=2,
        class_token=False,
        global_pool="avg",
    )
    images = sv.tensor(_images(3))
    attention = model.blocks[0].attn
    with sv.no_grad():
        tokens = model.patch_embed(images) + model.pos_embed  # (B, 16, D): no class token
        qkv = F.linear(model.blocks[0].norm1(tokens), attention.qkv.weight, attention.qkv.bias)
        qkv = qkv.reshape(3, 16, 3, attention.num_heads, attention.head_dim).permute(2, 0, 3, 1, 4)
        weights = F.softmax(qkv[0] @ qkv[1].transpose(-1, -2) * attention.head_dim**-0.5, axis=-1)
    residual = 0.5 * weights.numpy().mean(axis=1) + 0.5 * np.eye(16)
    expected = residual.mean(axis=1).reshape(3, 4, 4)  # the pooled token mixes the patches by the mean row
    np.testing.assert_allclose(viz.attention_rollout(model, images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected.reshape(3, -1).sum(axis=1), 1, rtol=1e-6)


def test_rollout_refuses_a_pooling_it_cannot_follow():
    sv.manual_seed(0)
    model = sv.create_model(
        "vit_tiny_patch16_224",
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=16,
        depth=1,
        num_heads=2,
        class_token=False,
        global_pool="max",
    )
    with pytest.raises(ValueError, match="global_pool 'max'"):
        viz.attention_rollout(model, sv.tensor(_images(1)))


# ---- MAE reconstruction ------------------------------------------------------------------------
def test_mae_reconstruction_pastes_the_visible_patches_back():
    sv.manual_seed(0)
    mae = MaskedAutoencoderViT(
        img_size=8,
        patch_size=2,
        in_chans=3,
        embed_dim=16,
        depth=1,
        num_heads=2,
        decoder_embed_dim=8,
        decoder_depth=1,
        decoder_num_heads=2,
        mlp_ratio=2.0,
    )
    images = _images(2, channels=3)
    noise = np.random.default_rng(2).random((2, 16)).astype(np.float32)
    masked, reconstruction = viz.mae_reconstruction(mae, sv.tensor(images), mask_ratio=0.75, noise=noise)
    with sv.no_grad():
        _, prediction, mask = mae(sv.tensor(images), mask_ratio=0.75, noise=noise)
    removed_patches = mask.numpy().astype(bool)  # (B, 16), 1 = removed
    # pixel (c, y, x) lies in patch (y // 2) * 4 + x // 2
    patch_of_pixel = (np.arange(8)[:, None] // 2) * 4 + np.arange(8)[None, :] // 2
    removed = removed_patches[:, patch_of_pixel][:, None].repeat(3, axis=1)  # (B, 3, 8, 8)
    assert removed.mean() == 0.75
    np.testing.assert_array_equal(np.isnan(masked), removed)
    np.testing.assert_array_equal(masked[~removed], images[~removed])
    np.testing.assert_array_equal(reconstruction[~removed], images[~removed])
    predicted_pixels = mae.unpatchify(prediction).numpy()
    np.testing.assert_array_equal(reconstruction[removed], predicted_pixels[removed])
    assert mae.training  # the model's mode is restored


# ---- Swin windows ------------------------------------------------------------------------------
def test_swin_layout_regions_give_the_models_attention_mask():
    block = _shifted_block()
    layout = viz.swin_window_layout(block)
    window_area = 16
    # the regions split into windows by the model's own partition: equal labels <=> mask 0
    regions = sv.tensor(layout["regions"].reshape(1, 8, 8, 1).astype(np.float32))
    regions_per_window = F.window_partition(regions, 4).numpy().reshape(-1, window_area)
    same_region = regions_per_window[:, :, None] == regions_per_window[:, None, :]
    np.testing.assert_array_equal(layout["mask"], block.attn_mask.numpy())
    np.testing.assert_array_equal(same_region, block.attn_mask.numpy() == 0)
    np.testing.assert_array_equal(block.attn_mask.numpy()[~same_region], -100.0)


def test_swin_layout_regions_follow_the_papers_definition():
    """Sec. 3.2 / Fig. 4: after rolling by -s, a window may mix tokens that were adjacent in the
    image with tokens that came round the edge; only pairs on the same side of the wrap attend."""
    layout = viz.swin_window_layout(_shifted_block())
    rows, columns = np.divmod(np.arange(64), 8)
    came_round = (rows >= 8 - 2) * 2 + (columns >= 8 - 2)  # rolled positions whose tokens wrapped
    window = (rows // 4) * 2 + columns // 4
    for w in range(4):
        tokens = np.flatnonzero(window == w)
        allowed = came_round[tokens][:, None] == came_round[tokens][None, :]
        np.testing.assert_array_equal(layout["mask"][w] == 0, allowed)
    regions = layout["regions"].reshape(-1)
    same_window = window[:, None] == window[None, :]
    same_side = came_round[:, None] == came_round[None, :]
    np.testing.assert_array_equal((regions[:, None] == regions[None, :])[same_window], same_side[same_window])


def test_swin_layout_windows_shift_and_index():
    block = _shifted_block()
    layout = viz.swin_window_layout(block)
    token_ids = np.arange(64).reshape(8, 8)
    np.testing.assert_array_equal(layout["windows"], (token_ids // 8 // 4) * 2 + (token_ids % 8) // 4)
    np.testing.assert_array_equal(layout["shifted_ids"], np.roll(token_ids, (-2, -2), axis=(0, 1)))
    np.testing.assert_array_equal(layout["relative_position_index"], block.attn.relative_position_index.numpy())


def test_swin_layout_needs_a_shifted_block():
    block = SwinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=0)
    with pytest.raises(ValueError, match="shifted"):
        viz.swin_window_layout(block)


# ---- every figure is a PNG -------------------------------------------------------------------
def test_every_plot_writes_a_png(tmp_path):
    model = _tiny_vit(depth=2)
    images = _images(6)
    history = [{"epoch": e, "train_loss": 2.0 - e, "eval_acc1": 50.0 + 10 * e} for e in range(3)]
    sv.manual_seed(0)
    mae = MaskedAutoencoderViT(
        img_size=8,
        patch_size=2,
        in_chans=3,
        embed_dim=16,
        depth=1,
        num_heads=2,
        decoder_embed_dim=8,
        decoder_depth=1,
        decoder_num_heads=2,
        mlp_ratio=2.0,
    )
    mae_images = _images(4, channels=3)
    masked, reconstruction = viz.mae_reconstruction(mae, sv.tensor(mae_images))
    block = _shifted_block()
    paths = [
        viz.plot_training_curves(history, str(tmp_path / "curves.png")),
        viz.plot_training_curves([{"train_loss": 1.0}, {"train_loss": 0.5}], str(tmp_path / "loss_only.png")),
        viz.plot_predictions(images, np.arange(6), np.array([0, 1, 2, 0, 0, 0]), str(tmp_path / "predictions.png")),
        viz.plot_attention_maps(images, viz.attention_rollout(model, sv.tensor(images)), str(tmp_path / "rollout.png")),
        viz.plot_mae_reconstruction(mae_images, masked, reconstruction, str(tmp_path / "mae" / "reconstruction.png")),
        viz.plot_swin_windows(block, str(tmp_path / "swin_windows.png")),
        viz.plot_relative_position_bias(block.attn, str(tmp_path / "bias.png")),
    ]
    for path in paths:
        assert_png(path)
