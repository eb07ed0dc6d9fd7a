"""ImageFolder (needs Pillow: skipped without it) and load_dataset's names and errors."""

import sys

import numpy as np
import pytest

from scratchvit.data import DATASET_NAMES, DataLoader, DatasetError, ImageFolder, load_dataset


def make_folder(root, seed=0):
    """root/<class>/<n>.png with random RGB (and one greyscale) images of different sizes."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    made = {}
    for name, count in (("zebra", 2), ("ant", 3), ("moth", 1)):
        (root / name).mkdir(parents=True)
        for number in range(count):
            pixels = rng.integers(0, 256, (6 + number, 5 + 2 * number, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{number}.png")
            made[(name, number)] = pixels
    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(root / "ant" / "grey.png")  # mode "L"
    (root / "ant" / "notes.txt").write_text("not an image")
    return made


def test_classes_are_sorted_folder_names_and_images_come_back_exactly(tmp_path):
    made = make_folder(tmp_path)
    dataset = ImageFolder(tmp_path)
    assert dataset.classes == ["ant", "moth", "zebra"]
    assert len(dataset) == 7 and dataset.labels.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert [path.name for path in dataset.paths[:4]] == ["0.png", "1.png", "2.png", "grey.png"]
    image, label = dataset[5]  # zebra/0.png at its own size
    assert label == 2 and image.dtype == np.float32 and image.shape == (3, 6, 5)
    np.testing.assert_allclose(image, made[("zebra", 0)].transpose(2, 0, 1) / 255, rtol=1e-6)
    grey, _ = dataset[3]
    assert grey.shape == (3, 4, 4) and np.allclose(grey, 200 / 255)  # converted to RGB


def test_image_size_resizes_every_image_so_they_batch(tmp_path):
    make_folder(tmp_path)
    dataset = load_dataset("folder", root=tmp_path, image_size=(8, 10))
    assert all(dataset[index][0].shape == (3, 8, 10) for index in range(len(dataset)))
    batches = list(DataLoader(dataset, 3, shuffle=True, seed=0))
    assert [images.shape for images, _ in batches] == [(3, 3, 8, 10), (3, 3, 8, 10), (1, 3, 8, 10)]
    assert sorted(np.concatenate([labels for _, labels in batches]).tolist()) == [0, 0, 0, 0, 1, 2, 2]


def test_load_dataset_picks_the_split_sub_folder(tmp_path):
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test", seed=1)
    (tmp_path / "test" / "zebra" / "1.png").unlink()
    assert len(load_dataset("folder", root=tmp_path, split="test", image_size=4)) == 6


def test_folder_errors_name_the_path(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="root .*absent.* does not exist"):
        ImageFolder(tmp_path / "absent")
    with pytest.raises(DatasetError, match="has no sub-folders"):
        ImageFolder(tmp_path)
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match=r"has no images in its sub-folders \['cats'\]"):
        ImageFolder(tmp_path)
    (tmp_path / "cats" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"broken\.png: not a readable image"):
        ImageFolder(tmp_path)[0]
    with pytest.raises(ValueError, match="image_size must be a positive int or"):
        ImageFolder(tmp_path, image_size=(0, 3))


def test_without_pillow_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'scratchvit\[demo\]'"):
        ImageFolder(tmp_path)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data set 'imagenet'; known: digits, mnist, fashion_mnist, cifar10"):
        load_dataset("imagenet")
    assert DATASET_NAMES == ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "folder")


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_dataset("mnist", root=tmp_path, split="val")
    with pytest.raises(ValueError, match="takes no root"):
        load_dataset("digits", root=tmp_path)
