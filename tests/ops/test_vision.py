"""patchify / unpatchify, window_partition / window_reverse, patch_merge: inverses of each other,
and in the index orders of the reference code (MAE's einsum, timm's window view/permute,
Swin's 2x2 concatenation), written here in NumPy; the argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import feature_maps, host, images, leaf, seeds

from scratchvit import ops as F


def mae_patchify(imgs: np.ndarray, patch: int) -> np.ndarray:
    """Official MAE's patchify (models_mae.py), for square patches and any grid."""
    n, c, height, width = imgs.shape
    h, w = height // patch, width // patch
    x = imgs.reshape(n, c, h, patch, w, patch)
    x = np.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, h * w, patch * patch * c)


def timm_window_partition(x: np.ndarray, window: int) -> np.ndarray:
    """timm's swin window_partition: view(B, H//M, M, W//M, M, C).permute(0, 1, 3, 2, 4, 5)."""
    b, height, width, c = x.shape
    x = x.reshape(b, height // window, window, width // window, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


@given(case=images())
def test_patchify_is_mae_order_and_unpatchify_inverts_it(device, case):
    values, patch, grid = case
    x = leaf(values, device)
    patches = F.patchify(x, patch)
    np.testing.assert_array_equal(host(patches), mae_patchify(values, patch))
    np.testing.assert_array_equal(host(F.unpatchify(patches, patch, grid)), values)
    if grid[0] == grid[1]:  # the default grid is square
        np.testing.assert_array_equal(host(F.unpatchify(patches, patch)), values)


@given(
    seed=seeds,
    patch=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    grid=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_rectangular_patches_round_trip(device, seed, patch, grid):
    values = np.random.default_rng(seed).standard_normal((2, 3, grid[0] * patch[0], grid[1] * patch[1]))
    patches = F.patchify(leaf(values, device), patch)
    assert patches.shape == (2, grid[0] * grid[1], patch[0] * patch[1] * 3)
    np.testing.assert_array_equal(host(F.unpatchify(patches, patch, grid)), values)


def test_patch_features_are_ordered_row_column_channel(device):
    values = np.arange(2 * 4 * 4, dtype=float).reshape(1, 2, 4, 4)  # C = 2, 4x4 image, P = 2
    patches = host(F.patchify(leaf(values, device), 2))
    # patch (0, 1) covers rows 0-1, columns 2-3; its features run (p, q, c)
    expected = [values[0, c, p, 2 + q] for p in range(2) for q in range(2) for c in range(2)]
    np.testing.assert_array_equal(patches[0, 1], expected)


@given(case=feature_maps())
def test_window_partition_is_timm_order_and_window_reverse_inverts_it(device, case):
    values, window = case
    _, height, width, _ = values.shape
    windows = F.window_partition(leaf(values, device), window)
    np.testing.assert_array_equal(host(windows), timm_window_partition(values, window))
    np.testing.assert_array_equal(host(F.window_reverse(windows, window, height, width)), values)


@given(seed=seeds, sizes=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)))
def test_patch_merge_concatenates_the_four_neighbours_in_swin_order(device, seed, sizes):
    batch, half_h, half_w, channels = sizes
    values = np.random.default_rng(seed).standard_normal((batch, 2 * half_h, 2 * half_w, channels))
    expected = np.concatenate(
        [values[:, 0::2, 0::2], values[:, 1::2, 0::2], values[:, 0::2, 1::2], values[:, 1::2, 1::2]], axis=-1
    )
    merged = F.patch_merge(leaf(values, device))
    assert merged.shape == (batch, half_h, half_w, 4 * channels)
    np.testing.assert_array_equal(host(merged), expected)


def test_rearrangement_gradients_are_the_inverse_rearrangement(device):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((1, 2, 4, 6))
    x = leaf(values, device)
    patches = F.patchify(x, 2)
    upstream = rng.standard_normal(patches.shape)
    patches.backward(device.xp.asarray(upstream))
    np.testing.assert_array_equal(host(x.grad), host(F.unpatchify(leaf(upstream, device), 2, (2, 3))))


def test_vision_errors_name_the_argument(device):
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) \(4 dims\), got shape \(3, 8, 8\)"):
        F.patchify(leaf(np.ones((3, 8, 8)), device), 4)
    with pytest.raises(ValueError, match="image size 30x32 is not divisible by patch_size 4x4"):
        F.patchify(leaf(np.ones((1, 1, 30, 32)), device), 4)
    with pytest.raises(ValueError, match="patch_size must be a positive int or a pair of them, got 0"):
        F.patchify(leaf(np.ones((1, 1, 4, 4)), device), 0)
    with pytest.raises(ValueError, match=r"patches must be \(B, N, P\*P\*C\)"):
        F.unpatchify(leaf(np.ones((4, 12)), device), 2)
    with pytest.raises(ValueError, match="6 patches do not form a square grid; pass grid_size"):
        F.unpatchify(leaf(np.ones((1, 6, 12)), device), 2)
    with pytest.raises(ValueError, match="grid_size 2x2 does not hold 6 patches"):
        F.unpatchify(leaf(np.ones((1, 6, 12)), device), 2, (2, 2))
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, C\) \(4 dims\), got shape \(8, 8, 3\)"):
        F.window_partition(leaf(np.ones((8, 8, 3)), device), 4)
    with pytest.raises(ValueError, match="feature map 6x8 is not divisible by window_size 4x4"):
        F.window_partition(leaf(np.ones((1, 6, 8, 3)), device), 4)
    with pytest.raises(ValueError, match="feature map 6x8 is not divisible by window_size 4x4"):
        F.window_reverse(leaf(np.ones((4, 4, 4, 3)), device), 4, 6, 8)
    with pytest.raises(ValueError, match="windows are 4x4 but window_size is 2x2"):
        F.window_reverse(leaf(np.ones((4, 4, 4, 3)), device), 2, 8, 8)
    with pytest.raises(ValueError, match="3 windows is not a multiple of the 4 windows per 8x8 map"):
        F.window_reverse(leaf(np.ones((3, 4, 4, 3)), device), 4, 8, 8)
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, C\)"):
        F.patch_merge(leaf(np.ones((4, 4, 3)), device))
    with pytest.raises(ValueError, match="patch_merge needs an even feature map, got 3x4"):
        F.patch_merge(leaf(np.ones((1, 3, 4, 2)), device))
