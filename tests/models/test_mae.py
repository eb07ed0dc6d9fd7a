"""MaskedAutoencoderViT (He et al. 2022): parity with the official code (golden fixtures made by
tools/make_golden.py from facebookresearch/mae), the masking's index orders, the loss, the
parameter count and state_dict layout of the registered models, and clear errors on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit import backend
from scratchvit.models.mae import MaskedAutoencoderViT, mae_vit_base_patch16_dec512d8b

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

TINY = dict(
    img_size=16,
    patch_size=4,
    in_chans=3,
    embed_dim=16,
    depth=1,
    num_heads=2,
    decoder_embed_dim=8,
    decoder_depth=1,
    decoder_num_heads=2,
    mlp_ratio=2.0,
)


def tiny(**overrides) -> MaskedAutoencoderViT:
    sv.manual_seed(0)
    return MaskedAutoencoderViT(**{**TINY, **overrides})


def images(shape, seed: int = 0, device="cpu", requires_grad: bool = False) -> sv.Tensor:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return sv.Tensor(values, requires_grad=requires_grad, device=device)


def host(array) -> np.ndarray:
    return array.numpy() if isinstance(array, sv.Tensor) else backend.to_numpy(array)


def max_rel(got, expected) -> float:
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-30))


def rel_l2(got, expected) -> float:
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))


# ---- golden parity with the official MAE code --------------------------------------------------
FIXTURES = ["mae_tiny", "mae_tiny_normpix"]


def load_fixture(name: str, device):
    """The official model's weights in ours, and the fixture arrays."""
    fixture = np.load(GOLDEN / f"{name}.npz")
    config = json.loads(str(fixture["config"]))
    (norm_eps,) = config["norm_eps"]["values"]  # every LayerNorm of the reference used this eps
    model = MaskedAutoencoderViT(**config["kwargs"], norm_eps=norm_eps)
    model.load_state_dict({key[len("param/") :]: fixture[key] for key in fixture.files if key.startswith("param/")})
    return model.to(device).eval(), fixture, config


def run_fixture(model, fixture, device):
    imgs = sv.Tensor(fixture["input"], requires_grad=True, device=device)
    mask_ratio = float(fixture["mask_ratio"])
    latent, mask, ids_restore = model.forward_encoder(imgs, mask_ratio, noise=fixture["noise"])
    pred = model.forward_decoder(latent, ids_restore)
    loss = model.forward_loss(imgs, pred, mask)
    return imgs, dict(loss=loss, pred=pred, mask=mask, ids_restore=ids_restore, latent=latent)


@pytest.mark.parametrize("name", FIXTURES)
def test_golden_forward_equals_official(name, device):
    model, fixture, config = load_fixture(name, device)
    assert model.norm_pix_loss == config["kwargs"]["norm_pix_loss"]
    _, out = run_fixture(model, fixture, device)
    for key in ("loss", "pred", "latent"):
        assert out[key].shape == fixture[key].shape, key
        assert max_rel(host(out[key]), fixture[key]) <= 1e-4, key
    np.testing.assert_array_equal(host(out["mask"]), fixture["mask"])
    np.testing.assert_array_equal(host(out["ids_restore"]), fixture["ids_restore"])
    target = model.reconstruction_target(sv.Tensor(fixture["input"], device=device))
    assert max_rel(host(target), fixture["target"]) <= 1e-5

    # forward() is the three stages in a row
    loss, pred, mask = model(
        sv.Tensor(fixture["input"], device=device), mask_ratio=float(fixture["mask_ratio"]), noise=fixture["noise"]
    )
    assert loss.item() == out["loss"].item()
    np.testing.assert_array_equal(host(pred), host(out["pred"]))
    np.testing.assert_array_equal(host(mask), host(out["mask"]))


@pytest.mark.parametrize("name", FIXTURES)
def test_golden_backward_equals_official(name, device):
    model, fixture, _ = load_fixture(name, device)
    imgs, out = run_fixture(model, fixture, device)
    out["loss"].backward()
    expected = {key[len("grad/") :] for key in fixture.files if key.startswith("grad/")}
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == expected
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert rel_l2(host(parameter.grad), fixture[f"grad/{name}"]) <= 1e-3, name
        else:
            assert parameter.grad is None, name  # the fixed sin-cos tables
    # the target is built from the same imgs, without a stop-gradient, as the official
    assert rel_l2(host(imgs.grad), fixture["grad_input"]) <= 1e-3


def test_fixed_position_embeddings_are_the_official_sincos_tables():
    fixture = np.load(GOLDEN / "mae_tiny.npz")  # frozen parameters are kept as the official built them
    config = json.loads(str(fixture["config"]))
    model = MaskedAutoencoderViT(**config["kwargs"], norm_eps=config["norm_eps"]["values"][0])
    np.testing.assert_allclose(model.pos_embed.numpy(), fixture["param/pos_embed"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.decoder_pos_embed.numpy(), fixture["param/decoder_pos_embed"], rtol=0, atol=1e-6)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    assert np.all(model.pos_embed.numpy()[0, 0] == 0)  # the class token's row is zero


# ---- masking: index orders ----------------------------------------------------------------------
MASKER = tiny()
NORM_PIX = tiny(norm_pix_loss=True)


@given(
    batch=st.integers(1, 3),
    length=st.integers(1, 40),
    mask_ratio=st.floats(0.0, 1.0, exclude_max=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_masking_index_orders(batch, length, mask_ratio, seed):
    noise = np.random.default_rng(seed).random((batch, length), dtype=np.float32)
    # token i of every sample carries the value i in each channel, so gathered tokens name themselves
    x = sv.Tensor(np.broadcast_to(np.arange(length, dtype=np.float32)[None, :, None], (batch, length, 3)).copy())
    x_masked, mask, ids_restore = MASKER.random_masking(x, mask_ratio, noise=noise)
    len_keep = int(length * (1 - mask_ratio))
    ids_restore, mask, kept = host(ids_restore), host(mask), host(x_masked)[:, :, 0].astype(np.int64)

    assert kept.shape == (batch, len_keep) and mask.shape == (batch, length)
    ids_shuffle = np.argsort(noise, axis=1)
    rows = np.arange(batch)[:, None]
    # ids_restore is the inverse permutation of the shuffle
    np.testing.assert_array_equal(np.sort(ids_restore, axis=1), np.broadcast_to(np.arange(length), (batch, length)))
    np.testing.assert_array_equal(ids_shuffle[rows, ids_restore], np.broadcast_to(np.arange(length), (batch, length)))
    # the kept tokens are those with the smallest noise, in ascending noise order
    np.testing.assert_array_equal(kept, ids_shuffle[:, :len_keep])
    # mask, in the original order: 0 on the kept tokens, 1 on the removed ones
    assert np.all((mask == 0) | (mask == 1))
    np.testing.assert_array_equal(mask.sum(axis=1), length - len_keep)
    assert np.all(mask[rows, kept] == 0)


@pytest.mark.parametrize("mask_ratio", [0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.95])
def test_exactly_int_L_times_one_minus_ratio_patches_are_visible(mask_ratio):
    length = 16  # 16x16 image, 4x4 patches
    latent, mask, ids_restore = MASKER.forward_encoder(images((2, 3, 16, 16)), mask_ratio)
    len_keep = int(length * (1 - mask_ratio))
    assert latent.shape == (2, 1 + len_keep, TINY["embed_dim"])
    np.testing.assert_array_equal(mask.numpy().sum(axis=1), [length - len_keep] * 2)
    assert ids_restore.shape == (2, length) and ids_restore.dtype.kind == "i"


@given(seed=st.integers(0, 2**32 - 1), mask_ratio=st.floats(0.0, 0.95))
def test_the_same_noise_gives_the_same_mask_and_output(seed, mask_ratio):
    imgs = images((2, 3, 16, 16), seed=seed % 1000)
    noise = np.random.default_rng(seed).random((2, 16))
    first = MASKER.forward_encoder(imgs, mask_ratio, noise=noise)
    second = MASKER.forward_encoder(imgs, mask_ratio, noise=sv.Tensor(noise))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_noise_comes_from_the_seeded_device_generator():
    imgs = images((3, 3, 16, 16))
    sv.manual_seed(5)
    _, first, _ = MASKER.forward_encoder(imgs, 0.75)
    _, other, _ = MASKER.forward_encoder(imgs, 0.75)
    sv.manual_seed(5)
    _, again, _ = MASKER.forward_encoder(imgs, 0.75)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert not np.array_equal(first.numpy(), other.numpy())  # 3 samples of C(16, 4) masks each


@given(seed=st.integers(0, 2**32 - 1))
def test_without_masking_the_prediction_does_not_depend_on_the_shuffle(seed):
    # position embeddings are added before the shuffle and ids_restore undoes it before the decoder,
    # so with nothing removed, any noise (any token order in the encoder) gives the same prediction
    imgs = images((2, 3, 16, 16), seed=seed % 1000)
    latent, _, ids_restore = MASKER.forward_encoder(imgs, 0.0, noise=np.arange(32).reshape(2, 16))
    in_order = MASKER.forward_decoder(latent, ids_restore)
    latent, _, ids_restore = MASKER.forward_encoder(imgs, 0.0, noise=np.random.default_rng(seed).random((2, 16)))
    shuffled = MASKER.forward_decoder(latent, ids_restore)
    np.testing.assert_allclose(shuffled.numpy(), in_order.numpy(), rtol=1e-4, atol=1e-5)


# ---- the loss ---------------------------------------------------------------------------------
def patch_rows(model, array) -> np.ndarray:
    """(B, C, H, W) -> (B, L, P*P*C) as NumPy."""
    return model.patchify(sv.Tensor(host(array))).numpy()


@pytest.mark.parametrize("norm_pix_loss", [False, True])
@given(seed=st.integers(0, 2**32 - 1), mask_ratio=st.floats(0.05, 0.95))
def test_loss_gradient_reaches_masked_pixels_only(norm_pix_loss, seed, mask_ratio):
    model = NORM_PIX if norm_pix_loss else MASKER
    imgs = images((2, 3, 16, 16), seed=seed % 1000, requires_grad=True)
    noise = np.random.default_rng(seed).random((2, 16))
    with sv.no_grad():
        _, pred, mask = model(imgs, mask_ratio, noise=noise)
    model.forward_loss(imgs, pred, mask).backward()
    grad, mask = patch_rows(model, imgs.grad), mask.numpy()
    # the loss averages over removed patches only: the target pixels of visible patches get nothing
    assert np.all(grad[mask == 0] == 0)
    assert np.all(np.abs(grad[mask == 1]).max(axis=-1) > 0)


@given(seed=st.integers(0, 2**32 - 1), mask_ratio=st.floats(0.05, 0.95))
def test_encoder_sees_visible_pixels_only(seed, mask_ratio):
    imgs = images((2, 3, 16, 16), seed=seed % 1000, requires_grad=True)
    latent, mask, _ = MASKER.forward_encoder(imgs, mask_ratio, noise=np.random.default_rng(seed).random((2, 16)))
    upstream = np.random.default_rng(seed + 1).standard_normal(latent.shape).astype(np.float32)
    (latent * upstream).sum().backward()
    grad, mask = patch_rows(MASKER, imgs.grad), mask.numpy()
    assert np.all(grad[mask == 1] == 0)
    assert np.all(np.abs(grad[mask == 0]).max(axis=-1) > 0)


@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 10.0), shift=st.floats(-5.0, 5.0))
def test_norm_pix_targets_have_zero_mean_and_unit_unbiased_variance_per_patch(seed, scale, shift):
    imgs = images((2, 3, 16, 16), seed=seed % 1000).numpy() * np.float32(scale) + np.float32(shift)
    target = NORM_PIX.reconstruction_target(imgs).numpy().astype(np.float64)
    raw = patch_rows(NORM_PIX, imgs).astype(np.float64)
    np.testing.assert_allclose(target.mean(axis=-1), 0.0, atol=1e-5)
    variance = raw.var(axis=-1, ddof=1)  # torch's .var: the unbiased estimator
    np.testing.assert_allclose(target.var(axis=-1, ddof=1), variance / (variance + 1e-6), rtol=1e-4)
    np.testing.assert_array_equal(MASKER.reconstruction_target(imgs).numpy(), patch_rows(MASKER, imgs))


def test_loss_is_the_mean_squared_error_over_removed_patches():
    model = tiny()
    imgs = images((2, 3, 16, 16))
    loss, pred, mask = model(imgs, 0.5)
    per_patch = ((pred.numpy() - patch_rows(model, imgs)) ** 2).mean(axis=-1)
    expected = (per_patch * mask.numpy()).sum() / mask.numpy().sum()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)


# ---- shapes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "img_size, patch_size, in_chans",
    [(16, 4, 3), (12, 3, 1), (28, 14, 3), ((8, 12), 4, 2), ((12, 8), (4, 2), 3)],
)
def test_output_shapes(img_size, patch_size, in_chans):
    model = tiny(img_size=img_size, patch_size=patch_size, in_chans=in_chans)
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    patch_h, patch_w = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    length = (height // patch_h) * (width // patch_w)
    imgs = images((2, in_chans, height, width))
    loss, pred, mask = model(imgs, 0.5)
    len_keep = int(length * 0.5)
    assert loss.shape == () and pred.shape == (2, length, patch_h * patch_w * in_chans) and mask.shape == (2, length)
    latent, _, ids_restore = model.forward_encoder(imgs, 0.5)
    assert latent.shape == (2, 1 + len_keep, TINY["embed_dim"]) and ids_restore.shape == (2, length)
    assert model.pos_embed.shape == (1, 1 + length, TINY["embed_dim"])
    assert model.decoder_pos_embed.shape == (1, 1 + length, TINY["decoder_embed_dim"])
    assert model.unpatchify(pred).shape == imgs.shape
    np.testing.assert_array_equal(model.unpatchify(model.patchify(imgs)).numpy(), imgs.numpy())


def test_patchify_is_the_official_nchpwq_to_nhwpqc_order():
    model = tiny()
    imgs = images((2, 3, 16, 16)).numpy()
    # official: imgs.reshape(N, 3, h, p, w, p); einsum('nchpwq->nhwpqc'); reshape(N, h*w, p*p*3)
    expected = imgs.reshape(2, 3, 4, 4, 4, 4).transpose(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)
    np.testing.assert_array_equal(model.patchify(imgs).numpy(), expected)


# ---- the model as a whole ------------------------------------------------------------------------
def test_one_backward_reaches_every_trainable_parameter_and_no_fixed_one(device):
    model = tiny(norm_pix_loss=True).to(device)
    loss, _, _ = model(images((2, 3, 16, 16), device=device), 0.75)
    loss.backward()
    assert np.isfinite(loss.item())
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.shape == parameter.shape, name
            assert np.isfinite(host(parameter.grad)).all(), name
            assert np.any(host(parameter.grad) != 0), name
        else:
            assert parameter.grad is None, name
    fixed = sorted(name for name, p in model.named_parameters() if not p.requires_grad)
    assert fixed == ["decoder_pos_embed", "pos_embed"]


def test_official_initialisation():
    sv.manual_seed(0)
    model = MaskedAutoencoderViT(
        img_size=32,
        patch_size=4,
        in_chans=3,
        embed_dim=64,
        depth=2,
        num_heads=4,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=4,
    )
    state = {name: host(array) for name, array in model.state_dict().items()}
    for name, array in state.items():
        if name.endswith("bias") and "patch_embed" not in name:
            assert np.all(array == 0), name  # Linear biases zero, LayerNorm biases zero
        if ("norm" in name) and name.endswith("weight"):
            assert np.all(array == 1), name
    # xavier_uniform on (D, C*P*P): bound sqrt(6 / (fan_in + fan_out)), std bound / sqrt(3)
    weight = state["patch_embed.proj.weight"]
    bound = math.sqrt(6 / (3 * 4 * 4 + 64))
    assert np.abs(weight).max() <= bound and abs(weight.std() - bound / math.sqrt(3)) < 0.1 * bound
    qkv = state["blocks.0.attn.qkv.weight"]
    bound = math.sqrt(6 / (64 + 3 * 64))
    assert np.abs(qkv).max() <= bound and abs(qkv.std() - bound / math.sqrt(3)) < 0.1 * bound
    # the patch projection's bias keeps PyTorch's Conv2d default: uniform(+-1/sqrt(fan_in)), not zero
    conv_bias = state["patch_embed.proj.bias"]
    assert np.abs(conv_bias).max() <= 1 / math.sqrt(48) and np.any(conv_bias != 0)
    tokens = np.concatenate([state["cls_token"].ravel(), state["mask_token"].ravel()])
    assert abs(tokens.std() - 0.02) < 0.006
    assert model.norm.eps == 1e-5  # the class default is nn.LayerNorm's; the registered models pass 1e-6


def test_registered_models_and_aliases():
    names = sv.list_models("mae_*")
    for size in ("base_patch16", "large_patch16", "huge_patch14"):
        assert f"mae_vit_{size}" in names and f"mae_vit_{size}_dec512d8b" in names
    model = sv.create_model("mae_vit_base_patch16", img_size=32, patch_size=8, depth=1, decoder_depth=1)
    assert model.model_name == "mae_vit_base_patch16_dec512d8b"
    assert model.cls_token.shape == (1, 1, 768) and model.mask_token.shape == (1, 1, 512)
    assert model.blocks[0].attn.num_heads == 12 and model.decoder_blocks[0].attn.num_heads == 16
    assert {m.eps for _, m in model.named_modules() if isinstance(m, sv.nn.LayerNorm)} == {1e-6}
    assert model.decoder_pred.weight.shape == (8 * 8 * 3, 512)


def test_mae_vit_base_parameter_count_and_official_state_dict_layout():
    model = mae_vit_base_patch16_dec512d8b()
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    fixed = sum(p.size for p in model.parameters() if not p.requires_grad)
    assert trainable == 111_655_680
    assert fixed == 252_160 == 197 * (768 + 512)  # pos_embed (1, 197, 768) + decoder_pos_embed (1, 197, 512)
    counts = json.loads((GOLDEN / "param_counts.json").read_text())["mae_vit_base_patch16_dec512d8b"]
    assert (trainable, fixed) == (counts["trainable"], counts["frozen"])
    layout = json.loads((GOLDEN / "state_dict_keys" / "mae_vit_base_patch16_dec512d8b.json").read_text())["keys"]
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    ours = [(name, list(array.shape), requires_grad[name]) for name, array in model.state_dict().items()]
    assert ours == [(entry["key"], entry["shape"], entry["requires_grad"]) for entry in layout]


# ---- bad input --------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    model = MASKER
    with pytest.raises(ValueError, match="img_size 30 is not divisible by patch_size 4"):
        MaskedAutoencoderViT(**{**TINY, "img_size": 30})
    with pytest.raises(ValueError, match=r"imgs of size 15x16 are not divisible by patch_size 4x4"):
        model(images((1, 3, 15, 16)))
    with pytest.raises(ValueError, match=r"imgs of size 8x8 do not match img_size 16x16"):
        model(images((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="imgs have 1 channels but the model was built with in_chans=3"):
        model(images((1, 1, 16, 16)))
    with pytest.raises(ValueError, match=r"imgs must be \(B, C, H, W\)"):
        model(images((3, 16, 16)))
    for ratio in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"mask_ratio must be in \[0, 1\)"):
            model(images((1, 3, 16, 16)), ratio)
    for ratio in ("0.5", True, None):
        with pytest.raises(TypeError, match="mask_ratio must be a number"):
            model(images((1, 3, 16, 16)), ratio)
    with pytest.raises(ValueError, match=r"noise must have shape \(B, L\) = \(2, 16\), got \(2, 15\)"):
        model(images((2, 3, 16, 16)), 0.75, noise=np.zeros((2, 15)))
    with pytest.raises(ValueError, match=r"noise must have shape \(B, L\) = \(2, 16\), got \(32,\)"):
        model.forward_encoder(images((2, 3, 16, 16)), 0.75, noise=np.zeros(32))
