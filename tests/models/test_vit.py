"""VisionTransformer: equal to timm's (parameter counts, state_dict keys, golden forward and
gradients), invariant to patch order without position information, right shapes for every valid
image size, dynamic image sizes, one training step, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit import nn
from scratchvit.models.pos_embed import resample_abs_pos_embed
from scratchvit.models.vit import VisionTransformer

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
VIT_FIXTURES = sorted(GOLDEN.glob("vit_*.npz"))


def _tiny(**overrides) -> VisionTransformer:
    config = dict(img_size=8, patch_size=2, in_chans=3, num_classes=3, embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)
    return VisionTransformer(**{**config, **overrides})


def _images(shape, seed=0):
    return sv.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ---- equal to timm: counts, keys, golden fixtures ------------------------------------------------
@pytest.mark.parametrize(
    "name, count",
    [
        ("vit_tiny_patch16_224", 5_717_416),
        ("vit_small_patch16_224", 22_050_664),
        ("vit_base_patch16_224", 86_567_656),
        ("vit_base_patch32_224", 88_224_232),
    ],
)
def test_parameter_count_equals_timm(name, count):
    model = sv.create_model(name)
    assert model.num_parameters() == count
    recorded = json.loads((GOLDEN / "param_counts.json").read_text())[name]
    assert count == recorded["total"] and len(model.state_dict()) == recorded["state_dict_keys"]


def test_state_dict_keys_and_shapes_equal_timm_in_order():
    expected = json.loads((GOLDEN / "state_dict_keys" / "vit_tiny_patch16_224.json").read_text())["keys"]
    model = sv.create_model("vit_tiny_patch16_224")
    ours = [(key, tuple(value.shape)) for key, value in model.state_dict().items()]
    assert ours == [(entry["key"], tuple(entry["shape"])) for entry in expected]


def _relative_l2(ours, reference) -> float:
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-30))


def _max_relative(ours, reference) -> float:
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-30))


def test_golden_fixtures_are_present():
    assert VIT_FIXTURES, f"no vit_*.npz fixtures in {GOLDEN} (tools/make_golden.py makes them)"


@pytest.mark.parametrize("path", VIT_FIXTURES, ids=lambda path: path.stem)
def test_golden_parity_with_timm(path, device):
    golden = np.load(path)
    config = json.loads(str(golden["config"]))
    model = VisionTransformer(**config["kwargs"]).eval()
    model.load_state_dict({key[len("param/") :]: golden[key] for key in golden.files if key.startswith("param/")})
    model.to(device)
    images = sv.Tensor(golden["input"], requires_grad=True, device=device)

    features = model.forward_features(images)
    output = model.forward_head(features)
    assert _max_relative(output.numpy(), golden["output"]) <= 1e-4
    assert _max_relative(features.numpy(), golden["features"]) <= 1e-4
    with sv.no_grad():
        pre_logits = model.forward_head(features, pre_logits=True)
    assert _max_relative(pre_logits.numpy(), golden["pre_logits"]) <= 1e-4

    (output * sv.Tensor(golden["upstream"], device=device)).sum().backward()
    grad_names = {key[len("grad/") :] for key in golden.files if key.startswith("grad/")}
    assert grad_names == {name for name, _ in model.named_parameters()}
    errors = {
        name: _relative_l2(sv.backend.to_numpy(p.grad), golden[f"grad/{name}"]) for name, p in model.named_parameters()
    }
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-3, f"{worst}: relative L2 error {errors[worst]:.2e}"
    assert _relative_l2(sv.backend.to_numpy(images.grad), golden["grad_input"]) <= 1e-3

    if "pos_embed_resampled" in golden.files:  # dynamic_img_size: the grid timm resampled to
        resample = config["pos_embed_resample"]
        resampled = resample_abs_pos_embed(
            model.pos_embed,
            resample["new_grid"],
            old_size=resample["old_grid"],
            num_prefix_tokens=resample["num_prefix_tokens"],
        )
        assert _max_relative(resampled.numpy(), golden["pos_embed_resampled"]) <= 1e-5


# ---- registry and configuration -------------------------------------------------------------------
def test_named_configurations_are_registered_with_timm_sizes():
    names = [
        "vit_tiny_patch16_224",
        "vit_small_patch16_224",
        "vit_base_patch16_224",
        "vit_large_patch16_224",
        "vit_tiny_patch16_384",
        "vit_small_patch16_384",
        "vit_base_patch16_384",
        "vit_large_patch16_384",
        "vit_base_patch32_224",
    ]
    assert set(names) <= set(sv.list_models("vit_*"))
    widths = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12), "large": (1024, 16)}
    for name in names:
        model = sv.create_model(name, depth=1, num_classes=0)  # one block: cheap, the rest as named
        _, size, patch, img = name.split("_")
        embed_dim, num_heads = widths[size]
        assert model.embed_dim == embed_dim and model.blocks[0].attn.num_heads == num_heads
        assert model.patch_embed.patch_size == (int(patch[5:]),) * 2
        assert model.patch_embed.img_size == (int(img),) * 2
        assert model.pos_embed.shape == (1, 1 + (int(img) // int(patch[5:])) ** 2, embed_dim)


def test_create_model_overrides_and_initialises_as_timm():
    sv.manual_seed(0)
    model = sv.create_model("vit_small_patch16_224", img_size=32, patch_size=4, num_classes=10, depth=3)
    assert model.pos_embed.shape == (1, 65, 384) and model.head.weight.shape == (10, 384)
    state = model.state_dict()
    assert abs(state["pos_embed"].std() - 0.02) < 0.002
    assert np.abs(state["cls_token"]).max() < 1e-5  # normal(std 1e-6)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):  # trunc_normal(std .02), zero bias
            assert abs(module.weight.data.std() - 0.02) < 0.003, name
            assert not module.bias.data.any(), name
        if isinstance(module, nn.LayerNorm):
            assert (module.weight.data == 1).all() and not module.bias.data.any(), name
    bound = 1 / np.sqrt(3 * 4 * 4)  # PyTorch's Conv2d default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(state["patch_embed.proj.weight"]).max() <= bound
    sv.manual_seed(0)
    again = sv.create_model("vit_small_patch16_224", img_size=32, patch_size=4, num_classes=10, depth=3)
    assert all(np.array_equal(state[key], value) for key, value in again.state_dict().items())


def test_timm_keyword_rules():
    assert isinstance(_tiny(global_pool="avg", class_token=False).fc_norm, nn.LayerNorm)  # fc_norm=None: on for avg
    assert isinstance(_tiny(global_pool="avg").norm, nn.Identity)
    assert isinstance(_tiny(global_pool="token").fc_norm, nn.Identity)
    assert isinstance(_tiny(global_pool="avg", fc_norm=False).norm, nn.LayerNorm)
    assert isinstance(_tiny(num_classes=0).head, nn.Identity)
    assert _tiny(pos_embed="none").pos_embed is None and _tiny(class_token=False, global_pool="avg").cls_token is None
    assert _tiny(no_embed_class=True).pos_embed.shape == (1, 16, 8)
    layer_scaled = _tiny(init_values=0.1)
    assert np.allclose(layer_scaled.state_dict()["blocks.1.ls2.gamma"], 0.1)
    rates = [block.drop_path1.drop_prob for block in _tiny(depth=4, drop_path_rate=0.3).blocks[1:]]
    assert np.allclose(rates, [0.1, 0.2, 0.3])  # linear decay rule; block 0 has rate 0 (Identity)
    assert _tiny().norm.eps == 1e-6 and _tiny().blocks[0].norm1.eps == 1e-6


# ---- properties -----------------------------------------------------------------------------------
@settings(max_examples=15)
@given(grid_h=st.integers(1, 3), grid_w=st.integers(1, 3), patch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_without_position_information_patch_order_does_not_matter(grid_h, grid_w, patch, seed):
    """No class token, no position embedding, mean pooling: the model is a function of the set of patches."""
    sv.manual_seed(seed)
    model = _tiny(
        img_size=(grid_h * patch, grid_w * patch),
        patch_size=patch,
        global_pool="avg",
        class_token=False,
        pos_embed="none",
    ).eval()
    images = np.random.default_rng(seed).standard_normal((2, 3, grid_h * patch, grid_w * patch)).astype(np.float32)
    # (B, C, h, P, w, P) -> patches (B, C, h*w, P, P), shuffled, put back as an image
    patches = (
        images.reshape(2, 3, grid_h, patch, grid_w, patch).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, -1, patch, patch)
    )
    order = np.random.default_rng(seed + 1).permutation(grid_h * grid_w)
    shuffled = (
        patches[:, :, order]
        .reshape(2, 3, grid_h, grid_w, patch, patch)
        .transpose(0, 1, 2, 4, 3, 5)
        .reshape(images.shape)
    )
    with sv.no_grad():
        expected, got = model(sv.Tensor(images)).numpy(), model(sv.Tensor(shuffled)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@settings(max_examples=25)
@given(
    grid=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    patch=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    batch=st.integers(1, 2),
    num_classes=st.integers(0, 3),
    pool_and_token=st.sampled_from(
        [("token", True), ("avg", True), ("avg", False), ("max", False), ("avgmax", True), ("", True), ("", False)]
    ),
    no_embed_class=st.booleans(),
)
def test_output_shapes_for_every_valid_image_size(grid, patch, batch, num_classes, pool_and_token, no_embed_class):
    global_pool, class_token = pool_and_token
    img_size = (grid[0] * patch[0], grid[1] * patch[1])
    model = _tiny(
        img_size=img_size,
        patch_size=patch,
        num_classes=num_classes,
        global_pool=global_pool,
        class_token=class_token,
        no_embed_class=no_embed_class,
    )
    with sv.no_grad():
        features = model.forward_features(_images((batch, 3, *img_size)))
        output = model.forward_head(features)
    tokens = grid[0] * grid[1] + int(class_token)
    assert features.shape == (batch, tokens, 8)
    width = num_classes or 8
    assert output.shape == ((batch, tokens, width) if global_pool == "" else (batch, width))


@settings(max_examples=15)
@given(grid=st.tuples(st.integers(1, 6), st.integers(1, 6)), no_embed_class=st.booleans(), seed=st.integers(0, 99))
def test_dynamic_img_size_accepts_any_divisible_size(grid, no_embed_class, seed):
    sv.manual_seed(seed)
    model = _tiny(dynamic_img_size=True, no_embed_class=no_embed_class).eval()  # made for a 4 x 4 grid
    with sv.no_grad():
        output = model(_images((2, 3, 2 * grid[0], 2 * grid[1]), seed))
    assert output.shape == (2, 3) and np.isfinite(output.numpy()).all()


def test_dynamic_img_size_at_the_built_size_equals_the_fixed_model():
    sv.manual_seed(0)
    fixed = _tiny(img_size=(8, 12)).eval()
    dynamic = _tiny(img_size=(8, 12), dynamic_img_size=True).eval()
    dynamic.load_state_dict(fixed.state_dict())
    images = _images((2, 3, 8, 12))
    with sv.no_grad():
        np.testing.assert_array_equal(dynamic(images).numpy(), fixed(images).numpy())


def test_one_training_step_gives_every_parameter_a_gradient():
    sv.manual_seed(0)
    model = _tiny(
        depth=3,
        init_values=1e-1,
        drop_rate=0.1,
        pos_drop_rate=0.1,
        proj_drop_rate=0.1,
        attn_drop_rate=0.1,
        drop_path_rate=0.1,
        dynamic_img_size=True,
    )
    images = _images((4, 3, 8, 10))  # not the built size: the position embedding is resampled
    logits = model(images)
    assert logits.shape == (4, 3)
    upstream = np.random.default_rng(1).standard_normal(logits.shape).astype(np.float32)
    (logits * sv.Tensor(upstream)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.shape == parameter.shape and np.isfinite(parameter.grad).all(), name
    assert np.abs(model.pos_embed.grad).sum() > 0 and np.abs(model.cls_token.grad).sum() > 0


# ---- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(img_size=30, patch_size=4), "img_size 30 is not divisible by patch_size 4"),
        (dict(img_size=(8, 10), patch_size=4), "img_size 10 is not divisible by patch_size 4"),
        (dict(embed_dim=10, num_heads=3), "embed_dim 10 is not divisible by num_heads 3"),
        (dict(global_pool="token", class_token=False), "class_token"),
        (dict(global_pool="mean"), "global_pool"),
        (dict(pos_embed="sincos"), "pos_embed"),
        (dict(num_classes=-1), "num_classes"),
    ],
)
def test_bad_configuration_raises_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**kwargs)


def test_bad_images_raise_naming_the_numbers():
    model = _tiny()
    with pytest.raises(ValueError, match="1 channels but the model expects in_chans=3"):
        model(_images((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="image size 8x10 does not match the model's img_size 8x8"):
        model(_images((1, 3, 8, 10)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(_images((3, 8, 8)))
    with pytest.raises(ValueError, match="image size 8x9 is not divisible by patch_size 2x2"):
        _tiny(dynamic_img_size=True)(_images((1, 3, 8, 9)))
