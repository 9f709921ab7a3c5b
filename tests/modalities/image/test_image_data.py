"""Image data sets: the bundled digits, IDX and PNG-batch readers, torchvision and image folders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.image import load_image_dataset
from modalities.image.data import DEBIAN_FASHION_MNIST


def _write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) as an IDX file, the MNIST format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_digits_splits():
    from sklearn.datasets import load_digits

    train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
    assert (len(train), len(test)) == (1497, 300)
    assert train.image_shape == test.image_shape == (1, 16, 16)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.class_names == [str(i) for i in range(10)] and train.num_classes == 10
    target = torch.as_tensor(load_digits().target)
    assert torch.equal(torch.cat([train.labels, test.labels]), target)
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # Bilinear 2× upsampling keeps each 8×8 pixel's value at the centre of its 2×2 block on average.
    small = torch.as_tensor(load_digits().images[0]) * 255 / 16
    pooled = torch.nn.functional.avg_pool2d(train.images[0].float(), 2)[0]
    assert (pooled - small).abs().mean() < 20


@pytest.mark.parametrize(
    ("name", "split", "match"),
    [("imagenet", "train", "unknown image data set"), ("digits", "val", "splits"), ("cifar10_subset", "all", "splits")],
)
def test_unknown_names_and_splits(name, split, match):
    with pytest.raises(ValueError, match=match):
        load_image_dataset(name, split)


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_reads_idx_files_from_root(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([9, 0, 4]), compress)
    data = load_image_dataset("fashion_mnist", "test", root=tmp_path)
    assert data.images.shape == (3, 1, 28, 28)
    assert torch.equal(data.images[:, 0], torch.as_tensor(images, dtype=torch.uint8))
    assert data.labels.tolist() == [9, 0, 4]
    assert data.class_names[9] == "Ankle boot"


def test_fashion_mnist_rejects_a_damaged_file(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((2, 2)))  # 2-D where labels are 1-D
    with pytest.raises(ValueError, match="IDX file with 1 dimension"):
        load_image_dataset("fashion_mnist", "test", root=tmp_path)


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_image_dataset("fashion_mnist", "test", root=tmp_path)


@pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_debian_splits(monkeypatch):
    monkeypatch.delenv("VQTOK_DATA", raising=False)
    test = load_image_dataset("fashion_mnist", "test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(test.labels), torch.full((10,), 1000))
    val = load_image_dataset("fashion_mnist", "val")
    rest = load_image_dataset("fashion_mnist", "train_minus_val")
    assert (len(val), len(rest)) == (5000, 55000)
    train_labels = torch.cat([rest.labels, val.labels])
    assert torch.equal(torch.bincount(train_labels), torch.full((10,), 6000))  # 60,000 = 6,000 per class


def test_fashion_mnist_through_the_data_folder(shared_data, monkeypatch):
    # The shared folder keeps only Fashion-MNIST's licence; the loader must then fall back to Debian's files.
    if not (DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    monkeypatch.setenv("VQTOK_DATA", str(shared_data))
    assert len(load_image_dataset("fashion_mnist", "test")) == 10000


def test_cifar10_subset(shared_data):
    train = load_image_dataset("cifar10_subset", "train", root=shared_data / "cifar10-subset")
    test = load_image_dataset("cifar10_subset", "test", root=shared_data)  # the data folder works too
    assert (len(train), len(test)) == (3500, 500)
    assert train.image_shape == (3, 32, 32) and train.images.dtype == torch.uint8
    counts = torch.bincount(torch.cat([train.labels, test.labels]), minlength=10)
    assert counts.tolist() == [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]  # the README's class counts
    with Image.open(shared_data / "cifar10-subset" / "cifar10_batch_3.png") as png:
        last_row = np.array(png.convert("RGB"))[-1]  # (1024, 3): the last image, flattened (y, x)
    assert torch.equal(test.images[-1], torch.as_tensor(last_row.reshape(32, 32, 3)).permute(2, 0, 1))


def test_cifar10_subset_from_the_environment(shared_data, monkeypatch):
    monkeypatch.setenv("VQTOK_DATA", str(shared_data))
    assert len(load_image_dataset("cifar10_subset", "test")) == 500


def test_cifar10_subset_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("VQTOK_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="VQTOK_DATA"):
        load_image_dataset("cifar10_subset", "train")
    with pytest.raises(FileNotFoundError, match=r"cifar10_batch_0\.png"):
        load_image_dataset("cifar10_subset", "train", root=tmp_path)


def test_torchvision_mnist_from_local_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 4), ("t10k", 2)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 7))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n))
    data = load_image_dataset("mnist", "train", root=tmp_path)
    assert data.images.shape == (4, 1, 28, 28) and int(data.images.max()) == 7
    assert data.labels.tolist() == [0, 1, 2, 3]
    assert len(data.class_names) == 10


def test_torchvision_missing_files_never_download(tmp_path, monkeypatch):
    monkeypatch.delenv("VQTOK_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="root="):
        load_image_dataset("cifar10", "test")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_image_dataset("fashionmnist", "test", root=tmp_path)


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_grey_and_rgb(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        for i in range(2):
            _save_png(tmp_path / "train" / cls / f"{i}.png", np.full((8, 12), value + i, dtype=np.uint8))
    grey = load_image_dataset("imagefolder", "train", root=tmp_path)
    assert grey.images.shape == (4, 1, 8, 12)
    assert grey.class_names == ["cat", "dog"] and grey.labels.tolist() == [0, 0, 1, 1]
    assert grey.images[:, 0, 0, 0].tolist() == [10, 11, 200, 201]

    rgb = np.zeros((8, 12, 3), dtype=np.uint8)
    rgb[..., 2] = 255
    _save_png(tmp_path / "train" / "dog" / "blue.png", rgb)
    mixed = load_image_dataset("imagefolder", "train", root=tmp_path)
    assert mixed.images.shape == (5, 3, 8, 12)
    assert mixed.images[-1, :, 0, 0].tolist() == [0, 0, 255]  # channels first, RGB order
    assert mixed.images[0, :, 0, 0].tolist() == [10, 10, 10]  # grey images become RGB


def test_image_folder_without_split_folders_and_errors(tmp_path):
    _save_png(tmp_path / "a" / "0.png", np.zeros((4, 4), dtype=np.uint8))
    assert len(load_image_dataset("imagefolder", "all", root=tmp_path)) == 1
    _save_png(tmp_path / "a" / "1.png", np.zeros((6, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="different sizes"):
        load_image_dataset("imagefolder", "all", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="root="):
        load_image_dataset("imagefolder", "train")
