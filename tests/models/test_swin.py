"""Swin Transformer: parameter counts and state_dict keys equal to timm's, golden parity with timm
(forward and every gradient), a shifted-window block equal to a naive global-attention reference
built from the paper's definitions, output shapes for every image size, one model-level backward,
and the errors for bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchvit as sv
from scratchvit import backend
from scratchvit import ops as F
from scratchvit.models import create_model, list_models, swin
from scratchvit.models.swin import SwinTransformer, SwinTransformerBlock, WindowAttention

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_SWIN = sorted(GOLDEN.glob("swin_*.npz"))
REGISTERED = [
    "swin_base_patch4_window12_384",
    "swin_base_patch4_window7_224",
    "swin_large_patch4_window12_384",
    "swin_large_patch4_window7_224",
    "swin_small_patch4_window7_224",
    "swin_tiny_patch4_window7_224",
]


def _host(array) -> np.ndarray:
    return backend.to_numpy(array.data if isinstance(array, sv.Tensor) else array)


def _relative_l2(actual, expected) -> float:
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def _tiny_model(**overrides) -> SwinTransformer:
    """A few-thousand-parameter Swin: 3 stages, 2x2 patches, 3x3 windows (shifted where they fit)."""
    config = dict(
        img_size=(24, 18),
        patch_size=2,
        embed_dim=4,
        depths=(2, 2, 1),
        num_heads=(1, 2, 2),
        window_size=3,
        mlp_ratio=2.0,
        num_classes=5,
    )
    return SwinTransformer(**{**config, **overrides})


# ---- sizes and keys, against timm -------------------------------------------------------------------
@pytest.fixture(scope="module")
def swin_tiny():
    sv.manual_seed(0)
    return create_model("swin_tiny_patch4_window7_224")


@pytest.mark.parametrize(
    "name, count",
    [("swin_small_patch4_window7_224", 49_606_258), ("swin_base_patch4_window7_224", 87_768_224)],
)
def test_parameter_count_equals_timm(name, count):
    assert create_model(name).num_parameters() == count


def test_swin_tiny_parameter_count_equals_timm(swin_tiny):
    assert swin_tiny.num_parameters() == 28_288_354


def test_registry_has_every_config_and_takes_overrides():
    assert set(REGISTERED) <= set(list_models("swin*"))
    model = create_model(
        "swin_base_patch4_window12_384", img_size=48, embed_dim=8, depths=(1, 1), num_heads=(1, 2), num_classes=3
    )
    assert model.patch_embed.img_size == (48, 48)
    assert model.layers[0].blocks[0].window_size == (12, 12)
    assert model(np.zeros((1, 3, 48, 48), np.float32)).shape == (1, 3)


def test_state_dict_keys_and_shapes_equal_timm(swin_tiny):
    path = GOLDEN / "state_dict_keys" / "swin_tiny_patch4_window7_224.json"
    if not path.exists():
        pytest.skip(f"{path} not generated (tools/make_golden.py)")
    reference = json.loads(path.read_text())
    ours = [(key, list(value.shape)) for key, value in swin_tiny.state_dict().items()]
    assert ours == [(entry["key"], entry["shape"]) for entry in reference["keys"]]  # same order too
    # relative_position_index and attn_mask: buffers in both, in neither state_dict
    buffers = {name: buffer for name, buffer in swin_tiny.named_buffers()}
    expected = {entry["name"]: (entry["shape"], entry["dtype"]) for entry in reference["non_persistent_buffers"]}
    assert {name: (list(b.shape), str(b.dtype)) for name, b in buffers.items()} == expected
    modules = dict(swin_tiny.named_modules())
    for layout in reference["swin_blocks"]:
        block = modules[layout["block"]]
        assert list(block.input_resolution) == layout["input_resolution"]
        assert list(block.window_size) == layout["window_size"]
        assert list(block.shift_size) == layout["shift_size"]
        assert (block.attn_mask is not None) == layout["has_attn_mask"]


# ---- golden parity with timm ------------------------------------------------------------------------
@pytest.mark.parametrize("path", GOLDEN_SWIN, ids=[p.stem for p in GOLDEN_SWIN])
def test_golden_parity_with_timm(path, device):
    """Forward (max relative error <= 1e-4) and every parameter gradient of sum(output * upstream)
    (relative L2 <= 1e-3) equal timm's in float32; the buffers equal timm's exactly."""
    golden = np.load(path)
    config = json.loads(str(golden["config"]))
    model = create_model(config["model_name"], **config["kwargs"]).eval()
    parameters = {key[len("param/") :]: golden[key] for key in golden.files if key.startswith("param/")}
    model.load_state_dict(parameters)  # strict: the keys and shapes are timm's
    model.to(device)
    timm_buffers = {key[len("buffer/") :]: golden[key] for key in golden.files if key.startswith("buffer/")}
    ours = dict(model.named_buffers())
    assert set(ours) == set(timm_buffers)
    for name, value in timm_buffers.items():
        np.testing.assert_array_equal(_host(ours[name]), value, err_msg=name)

    images = sv.Tensor(golden["input"], requires_grad=True, device=device)
    features = model.forward_features(images)
    output = model.forward_head(features)
    scale = np.abs(golden["output"]).max()
    assert np.abs(_host(output) - golden["output"]).max() / scale <= 1e-4
    assert np.abs(_host(features) - golden["features"]).max() / np.abs(golden["features"]).max() <= 1e-4
    output.backward(sv.Tensor(golden["upstream"], device=device))
    errors = {name: _relative_l2(_host(p.grad), golden[f"grad/{name}"]) for name, p in model.named_parameters()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-3, f"{worst}: relative L2 {errors[worst]:.2e}"
    assert _relative_l2(_host(images.grad), golden["grad_input"]) <= 1e-3


def test_golden_fixtures_present():
    if not GOLDEN_SWIN:
        pytest.skip("no tests/golden/swin_*.npz yet (tools/make_golden.py)")
    assert {"swin_shift", "swin_clipped"} <= {p.stem for p in GOLDEN_SWIN}


# ---- the pieces, from the paper's definitions ------------------------------------------------------------
def test_relative_position_index_of_a_2x2_window():
    # tokens (0,0) (0,1) (1,0) (1,1); entry [i, j] = (dy + 1) * 3 + (dx + 1), (dy, dx) = pos_i - pos_j
    expected = [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    np.testing.assert_array_equal(swin.relative_position_index(2, 2), expected)


def test_window_and_shift_clipped_as_timm():
    assert swin.clip_window_and_shift((14, 14), (7, 7), (3, 3)) == ((7, 7), (3, 3))
    assert swin.clip_window_and_shift((7, 7), (7, 7), (3, 3)) == ((7, 7), (0, 0))  # equal: no shift
    assert swin.clip_window_and_shift((4, 6), (7, 4), (3, 2)) == ((4, 4), (0, 2))  # per axis


def test_own_macs_counts_the_two_attention_products():
    attention = WindowAttention(dim=6, num_heads=2, window_size=(2, 3))
    x = sv.Tensor(np.zeros((5, 6, 6), np.float32))
    assert attention.own_macs((x,), attention(x)) == 2 * 5 * 2 * 6 * 6 * 3


def _naive_block(block: SwinTransformerBlock, x):
    """The block as global attention over all H*W tokens (Sec. 3.2, Eq. 4), built from primitives.

    In the original (unrolled) frame, token t = (r, c) sits at ((r - s_h) mod H, (c - s_w) mod W)
    after the cyclic shift, in window (row // Mh, column // Mw) of the shifted map. A pair of tokens
    in different windows is excluded (-inf). Tokens with r < s_h (or c < s_w) came round the edge,
    so they are not adjacent to the others of their window: such pairs get -100. The bias is the
    table row of the pair's relative position in the shifted window, (dy, dx) = position_i -
    position_j (for tokens of one sub-window, their relative position in the image).
    """
    batch, height, width, channels = x.shape
    (window_h, window_w), (shift_h, shift_w) = block.window_size, block.shift_size
    attention = block.attn
    heads, head_dim = attention.num_heads, attention.head_dim
    rows, columns = np.divmod(np.arange(height * width), width)  # token t, row-major
    shifted_rows, shifted_columns = (rows - shift_h) % height, (columns - shift_w) % width
    window = (shifted_rows // window_h) * width + shifted_columns // window_w
    came_round = (rows < shift_h) * 2 + (columns < shift_w)  # the sub-window label of each token
    same_window = window[:, None] == window[None, :]
    mask = np.where(same_window, np.where(came_round[:, None] == came_round[None, :], 0.0, -100.0), -np.inf)
    offset_y = shifted_rows[:, None] - shifted_rows[None, :] + window_h - 1
    offset_x = shifted_columns[:, None] - shifted_columns[None, :] + window_w - 1
    index = np.where(same_window, offset_y * (2 * window_w - 1) + offset_x, 0)  # excluded pairs: any row
    bias = attention.relative_position_bias_table[index].permute(2, 0, 1)  # (heads, L, L)

    tokens = block.norm1(x).reshape(batch, height * width, channels)
    qkv = attention.qkv(tokens).reshape(batch, height * width, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(-1, -2) * (head_dim**-0.5) + bias + mask.astype(x.dtype)
    weights = F.softmax(scores, axis=-1)  # (B, heads, L, L)
    mixed = (weights @ qkv[2]).transpose(1, 2).reshape(batch, height * width, channels)
    x = x + attention.proj(mixed).reshape(batch, height, width, channels)
    return x + block.mlp(block.norm2(x))


def _float64_block(seed: int, **kwargs) -> SwinTransformerBlock:
    """A block in float64 with every parameter random (not timm's ones / zeros), so each matters."""
    block = SwinTransformerBlock(**kwargs)
    rng = np.random.default_rng(seed)
    for name, parameter in block.named_parameters():
        spread = 1.0 if "relative_position_bias_table" in name else 0.3
        offset = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0
        parameter.data = (offset + spread * rng.standard_normal(parameter.shape)).astype(np.float64)
    return block


@st.composite
def block_configs(draw):
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    windows_per_side = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    heads, head_dim = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return (
        dict(
            dim=heads * head_dim,
            num_heads=heads,
            window_size=window,
            shift_size=(window[0] // 2, window[1] // 2),
            input_resolution=(window[0] * windows_per_side[0], window[1] * windows_per_side[1]),
            mlp_ratio=1.5,
        ),
        draw(st.integers(1, 2)),
        draw(st.integers(0, 2**16)),
    )


@given(block_configs())
def test_shifted_window_block_equals_naive_global_attention(drawn):
    kwargs, batch, seed = drawn
    block = _float64_block(seed, **kwargs)
    height, width = block.input_resolution
    values = np.random.default_rng(seed + 1).standard_normal((batch, height, width, block.dim))
    upstream = np.random.default_rng(seed + 2).standard_normal(values.shape)

    recorded = []
    original = F.multi_head_self_attention

    def recording(qkv, num_heads, bias=None, mask=None, **options):
        recorded.append((qkv.data, num_heads, bias.data, mask))
        return original(qkv, num_heads, bias=bias, mask=mask, **options)

    F.multi_head_self_attention = recording  # the block calls it as F.multi_head_self_attention
    try:
        x = sv.Tensor(values, requires_grad=True)
        output = block(x)
    finally:
        F.multi_head_self_attention = original
    output.backward(upstream)
    gradients = {name: p.grad.copy() for name, p in block.named_parameters()}
    block.zero_grad()
    x_reference = sv.Tensor(values, requires_grad=True)
    reference = _naive_block(block, x_reference)
    reference.backward(upstream)

    np.testing.assert_allclose(output.data, reference.data, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(x.grad, x_reference.grad, rtol=1e-8, atol=1e-9)
    for name, parameter in block.named_parameters():
        np.testing.assert_allclose(gradients[name], parameter.grad, rtol=1e-8, atol=1e-9, err_msg=name)

    # the block's own attention weights across shifted sub-windows vanish after the softmax
    [(qkv, num_heads, bias, mask)] = recorded
    if mask is not None:
        windows, tokens, _ = qkv.shape  # windows image-major: (images, windows per image, ...)
        heads = qkv.reshape(windows // mask.shape[0], mask.shape[0], tokens, 3, num_heads, -1)
        q, k = (heads[:, :, :, part].transpose(0, 1, 3, 2, 4) for part in range(2))
        mask = mask[:, None]  # (windows per image, 1, N, N) over images and heads
        scores = q @ np.swapaxes(k, -1, -2) * q.shape[-1] ** -0.5 + bias + mask
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        across = np.broadcast_to(mask != 0, weights.shape)
        assert across.any() and weights[across].max() < 1e-6


def _stage_sides(side: int, stages: int) -> int:
    for _ in range(stages - 1):
        side = (side + 1) // 2  # patch merging pads an odd side by one, as timm
    return side


def test_output_shapes_for_every_image_size():
    """Every multiple of the patch size works, square or not (timm pads maps that do not divide
    into windows and odd maps before merging)."""
    sv.manual_seed(0)
    for grid_h in range(1, 10):
        for grid_w in range(1, 10):
            model = _tiny_model(img_size=(2 * grid_h, 2 * grid_w)).eval()
            images = np.random.default_rng(grid_h * 10 + grid_w).standard_normal((2, 3, 2 * grid_h, 2 * grid_w))
            features = model.forward_features(images.astype(np.float32))
            final = (_stage_sides(grid_h, 3), _stage_sides(grid_w, 3))
            assert features.shape == (2, *final, 16)
            logits = model.forward_head(features)
            assert logits.shape == (2, 5) and np.isfinite(logits.data).all()


def test_global_pool_off_and_no_classifier():
    images = np.zeros((2, 3, 24, 18), np.float32)
    assert _tiny_model(global_pool="").eval()(images).shape == (2, 3, 3, 5)  # per position of the 3x3 map
    assert _tiny_model(num_classes=0).eval()(images).shape == (2, 16)  # the pooled features


def test_drop_path_rises_linearly_over_all_blocks():
    model = _tiny_model(drop_path_rate=0.4)
    rates = [getattr(block.drop_path1, "drop_prob", 0.0) for stage in model.layers for block in stage.blocks]
    np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3, 0.4])


def test_init_as_timm():
    sv.manual_seed(0)
    model = _tiny_model(embed_dim=32, num_heads=(2, 4, 8))
    for name, parameter in model.named_parameters():
        values = parameter.numpy()
        if name.endswith("norm.weight") or name.endswith(("norm1.weight", "norm2.weight")):
            np.testing.assert_array_equal(values, 1.0)
        elif name.startswith("patch_embed.proj"):
            bound = 1 / np.sqrt(3 * 2 * 2)  # PyTorch's conv default
            assert np.abs(values).max() <= bound
        elif name.endswith("bias"):
            np.testing.assert_array_equal(values, 0.0, err_msg=name)
        else:  # Linear weights and the bias tables: trunc_normal(std .02)
            assert 0.01 < values.std() < 0.03 and np.abs(values).max() <= 2.0, name


# ---- the model level ----------------------------------------------------------------------------------
def test_one_backward_reaches_every_parameter(device):
    sv.manual_seed(0)
    model = _tiny_model(drop_rate=0.1, proj_drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.1).to(device)
    images = sv.Tensor(np.random.default_rng(0).standard_normal((2, 3, 24, 18)).astype(np.float32), device=device)
    logits = model(images)
    assert logits.shape == (2, 5)
    F.cross_entropy(logits, sv.Tensor(np.array([1, 3]), device=device)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.shape == parameter.shape and np.isfinite(_host(parameter.grad)).all(), name


# ---- bad input ------------------------------------------------------------------------------------------
def test_image_size_not_divisible_by_patch_size():
    with pytest.raises(ValueError, match="img_size 30 is not divisible by patch_size 4"):
        SwinTransformer(img_size=30, patch_size=4)


def test_wrong_channels_at_forward():
    with pytest.raises(ValueError, match="1 channels but the model expects in_chans=3"):
        _tiny_model()(np.zeros((1, 1, 24, 18), np.float32))


def test_wrong_image_size_at_forward():
    with pytest.raises(ValueError, match="image size 24x24 does not match the model's img_size 24x18"):
        _tiny_model()(np.zeros((1, 3, 24, 24), np.float32))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_heads=(1, 2)), "num_heads needs one entry per stage"),
        (dict(num_heads=(3, 2, 2)), "dim 4 is not divisible by num_heads 3"),
        (dict(window_size=(3, 3, 3, 3)), "window_size needs one entry per stage"),
        (dict(window_size=0), "window_size must be a positive int"),
        (dict(global_pool="max"), "global_pool must be 'avg' or ''"),
        (dict(drop_path_rate=1.0), "drop_path_rate must be in"),
    ],
)
def test_bad_configuration(overrides, message):
    with pytest.raises(ValueError, match=message):
        _tiny_model(**overrides)


def test_block_rejects_a_map_of_another_size():
    block = SwinTransformerBlock(dim=4, input_resolution=(6, 6), num_heads=2, window_size=3, shift_size=1)
    with pytest.raises(ValueError, match=r"expects \(B, 6, 6, 4\), got shape \(1, 6, 3, 4\)"):
        block(np.zeros((1, 6, 3, 4), np.float32))
