"""Transforms: shapes and dtypes kept, exact flips and crops, bilinear resize, per-image draws, seeds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvit.data import transforms as T


def images(batch=6, channels=3, height=10, width=12, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((batch, channels, height, width)).astype(dtype)


ALL = [
    T.Resize((7, 9)),
    T.Resize(16, antialias=False),
    T.RandomResizedCrop(8),
    T.RandomCrop((10, 12), padding=2),
    T.RandomCrop(5, padding=1, padding_mode="reflect"),
    T.RandomHorizontalFlip(),
    T.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]),
    T.Compose([T.RandomCrop(10, padding=1, padding_mode="edge"), T.RandomHorizontalFlip(), T.Normalize(0.5, 0.5)]),
]


@pytest.mark.parametrize("transform", ALL, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_dtypes_and_the_input_left_alone(transform, dtype):
    batch = images(dtype=dtype)
    original = batch.copy()
    out = transform(batch, np.random.default_rng(0))
    single = transform(batch[0], np.random.default_rng(0))
    assert out.dtype == dtype and single.dtype == dtype
    assert out.shape[:2] == batch.shape[:2] and single.shape == out.shape[1:]
    assert np.array_equal(batch, original)
    if transform.random:  # one seed, one result
        assert np.array_equal(out, transform(batch, np.random.default_rng(0)))


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_output_sizes(transform):
    expected = {
        "Resize": {(7, 9), (16, 16)},
        "RandomResizedCrop": {(8, 8)},
        "RandomCrop": {(10, 12), (5, 5)},
        "Compose": {(10, 10)},
    }.get(type(transform).__name__, {(10, 12)})
    assert transform(images(), np.random.default_rng(1)).shape[2:] in expected


def test_flip_is_an_exact_mirror_drawn_per_image():
    batch = images(batch=64)
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(batch), batch[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(p=0.0)(batch), batch)
    out = T.RandomHorizontalFlip()(batch, np.random.default_rng(3))
    flipped = [np.array_equal(o, b[..., ::-1]) for o, b in zip(out, batch, strict=True)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image exactly one of the two
    assert 10 < sum(flipped) < 54


def test_random_crop_without_padding_at_full_size_is_the_identity():
    batch = images()
    assert np.array_equal(T.RandomCrop((10, 12))(batch, np.random.default_rng(0)), batch)


@given(seed=st.integers(0, 2**32 - 1), padding=st.integers(0, 3))
def test_random_crop_cuts_a_window_of_the_padded_image(seed, padding):
    batch = images(batch=4, height=6, width=5, seed=seed % 7)
    out = T.RandomCrop((4, 5), padding=padding)(batch, np.random.default_rng(seed))
    padded = np.pad(batch, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for b in range(4):
        windows = [
            padded[b, :, top : top + 4, left : left + 5]
            for top in range(padded.shape[2] - 3)
            for left in range(padded.shape[3] - 4)
        ]
        assert any(np.array_equal(out[b], window) for window in windows)


def test_random_crop_bigger_than_the_padded_image_is_an_error():
    with pytest.raises(ValueError, match=r"size \(12, 12\) is larger than the padded image \(10, 10\)"):
        T.RandomCrop(12, padding=1)(images(height=8, width=8), np.random.default_rng(0))


def test_random_crop_draws_per_image():
    batch = np.repeat(images(batch=1), 32, axis=0)  # 32 copies of one image
    out = T.RandomCrop(10, padding=4)(batch, np.random.default_rng(0))
    assert len({out[b].tobytes() for b in range(32)}) > 10


def test_resize_to_the_same_size_is_the_identity():
    batch = images()
    np.testing.assert_allclose(T.Resize((10, 12))(batch), batch, rtol=1e-6, atol=1e-7)


def test_resize_upsampling_is_bilinear_with_half_pixel_centres():
    row = np.array([[[[0.0, 1.0]]]], np.float32)  # (1, 1, 1, 2)
    out = T.Resize((1, 4))(row)
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 0.25, 0.75, 1.0])


def test_resize_halving_averages_pixel_pairs_and_keeps_constants():
    batch = images(height=8, width=8)
    pairs = batch.reshape(6, 3, 4, 2, 4, 2)
    np.testing.assert_allclose(T.Resize(4, antialias=False)(batch), pairs.mean(axis=(3, 5)), rtol=1e-5)
    constant = np.full((1, 2, 9, 7), 0.3, np.float32)
    np.testing.assert_allclose(T.Resize((4, 13))(constant), 0.3, rtol=1e-6)


def test_resize_halving_with_antialias_uses_the_widened_triangle():
    row = images(batch=1, channels=1, height=1, width=8)
    x = row[0, 0, 0].astype(np.float64)
    # the triangle stretched over 4 pixels: weights 1, 3, 3, 1 (/ 8); at a border the missing pixel's weight drops
    expected = (
        [(3 * x[0] + 3 * x[1] + x[2]) / 7]
        + [(x[2 * o - 1] + 3 * x[2 * o] + 3 * x[2 * o + 1] + x[2 * o + 2]) / 8 for o in (1, 2)]
        + [(x[5] + 3 * x[6] + 3 * x[7]) / 7]
    )
    np.testing.assert_allclose(T.Resize((1, 4))(row)[0, 0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize(("size", "antialias"), [((5, 7), True), ((23, 17), True), ((9, 30), True)])
def test_resize_matches_pillow_bilinear(size, antialias):
    Image = pytest.importorskip("PIL.Image")
    image = images(batch=1, channels=1, height=13, width=15)[0, 0]
    expected = np.asarray(Image.fromarray(image, mode="F").resize(size[::-1], Image.Resampling.BILINEAR))
    np.testing.assert_allclose(T.Resize(size, antialias=antialias)(image[None])[0], expected, atol=2e-6)


def test_random_resized_crop_of_the_whole_square_image_is_a_resize():
    batch = images(height=12, width=12)
    crop = T.RandomResizedCrop(5, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(crop(batch, np.random.default_rng(0)), T.Resize(5)(batch), rtol=1e-6)


@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 40), width=st.integers(1, 40))
def test_random_resized_crop_boxes_lie_inside_the_image(seed, height, width):
    crop = T.RandomResizedCrop(4)
    boxes = crop.crop_boxes(16, height, width, np.random.default_rng(seed))
    top, left, crop_height, crop_width = boxes.T
    assert np.all(crop_height >= 1) and np.all(crop_width >= 1)
    assert np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + crop_height <= height) and np.all(left + crop_width <= width)


def test_random_resized_crop_follows_scale_and_ratio():
    crop = T.RandomResizedCrop(4, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    boxes = crop.crop_boxes(2000, 100, 100, np.random.default_rng(0))
    areas = boxes[:, 2] * boxes[:, 3] / 100**2
    ratios = boxes[:, 3] / boxes[:, 2]
    assert 0.23 < areas.min() and areas.max() < 0.52  # rounding to whole pixels
    assert 0.45 < ratios.min() and ratios.max() < 2.1
    assert len({tuple(box) for box in boxes}) > 1000  # a draw per image


def test_random_resized_crop_falls_back_to_a_centre_crop():
    crop = T.RandomResizedCrop(4, scale=(1.0, 1.0), ratio=(1.0, 1.0))  # a square of the whole area never fits 10x40
    boxes = crop.crop_boxes(3, 10, 40, np.random.default_rng(0))
    assert boxes.tolist() == [[0, 15, 10, 10]] * 3


def test_normalize_per_channel():
    batch = images()
    out = T.Normalize([0.1, 0.2, 0.3], [0.5, 2.0, 4.0])(batch)
    expected = (batch - np.array([0.1, 0.2, 0.3])[:, None, None]) / np.array([0.5, 2.0, 4.0])[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_compose_applies_in_order_with_one_generator():
    batch = images()
    flip, crop = T.RandomHorizontalFlip(), T.RandomCrop(8, padding=2)
    rng = np.random.default_rng(4)
    expected = crop(flip(batch, rng), rng)
    assert np.array_equal(T.Compose([flip, crop])(batch, np.random.default_rng(4)), expected)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.Resize(0), "size must be a positive int"),
        (lambda: T.Resize((3, 4, 5)), "size must be a positive int or a pair"),
        (lambda: T.RandomResizedCrop(4, scale=(0.5, 0.1)), "scale must be"),
        (lambda: T.RandomResizedCrop(4, ratio=(0, 1)), "ratio must be"),
        (lambda: T.RandomCrop(4, padding=-1), "padding must be a non-negative int"),
        (lambda: T.RandomCrop(4, padding_mode="wrap"), "padding_mode must be"),
        (lambda: T.RandomHorizontalFlip(1.5), r"p must be a probability in \[0, 1\]"),
        (lambda: T.Normalize([0, 0], [1]), "one value per channel"),
        (lambda: T.Normalize([0], [0]), "std must be positive"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"images must be \(C, H, W\) or \(B, C, H, W\), got shape \(4, 4\)"):
        T.RandomHorizontalFlip()(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match="images must be floating point"):
        T.Resize(3)(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="Normalize has 3 means and stds but the images have 2 channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(np.zeros((2, 4, 4), np.float32))
