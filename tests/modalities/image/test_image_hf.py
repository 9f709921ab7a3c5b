"""Images from a Hugging Face datasets folder (data.name=hf): saved datasets and local image folders, offline."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from modalities.image import load_image_dataset


def _digits_dataset(folder: Path) -> Path:
    digits = load_image_dataset("digits", "test")
    features = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=digits.class_names)})
    rows = {"img": [Image.fromarray(x[0].numpy()) for x in digits.images[:40]], "digit": digits.labels[:40].tolist()}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(folder))
    return folder


def test_a_saved_dataset_gives_the_same_images(tmp_path: Path) -> None:
    folder = _digits_dataset(tmp_path / "digits_hf")
    got = load_image_dataset("hf", "test", root=folder)
    want = load_image_dataset("digits", "test")
    assert torch.equal(got.images, want.images[:40]) and torch.equal(got.labels, want.labels[:40])
    assert got.class_names == want.class_names and got.name == "hf"
    with pytest.raises(ValueError, match="splits \\['test'\\], not 'train'"):
        load_image_dataset("hf", "train", root=folder)
    with pytest.raises(ValueError, match=r"data\.image_column=.picture. is not a column"):
        load_image_dataset("hf", "test", root=folder, image_column="picture")


def test_a_local_imagefolder(tmp_path: Path) -> None:
    for label in ("cat", "dog"):
        for i in range(3):
            (tmp_path / "pets" / "train" / label).mkdir(parents=True, exist_ok=True)
            pixels = np.full((8, 8, 3), 40 * i + (100 if label == "dog" else 0), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / "train" / label / f"{i}.png")
    got = load_image_dataset("hf", "train", root=tmp_path / "pets")
    assert got.images.shape == (6, 3, 8, 8) and sorted(got.class_names) == ["cat", "dog"]


def test_train_tokenizer_and_tokenize_read_a_datasets_folder(tmp_path: Path) -> None:
    from recipes.cli import main as vqtok_cli

    folder = _digits_dataset(tmp_path / "digits_hf")
    data = ["data.name=hf", f"data.root={folder}", "data.train_split=test", "data.eval_split=test"]
    run = tmp_path / "run"
    assert vqtok_cli(["train-tokenizer", "--config", "tiny", "--out", str(run), "train.steps=2", *data]) == 0
    out = tmp_path / "codes"
    assert vqtok_cli(["tokenize", "--tokenizer", str(run / "tokenizer"), "--split", "test", "--out", str(out)]) == 0
    assert np.load(out / "codes_level0.npy").shape[0] == 40  # the data set recorded with the tokenizer


def test_sixteen_bit_array_images_are_scaled_not_wrapped(tmp_path: Path) -> None:
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    features = datasets.Features({"image": datasets.Array2D((8, 8), "uint16")})
    datasets.Dataset.from_dict({"image": [pixels]}, features=features).save_to_disk(str(tmp_path / "deep"))
    got = load_image_dataset("hf", "train", root=tmp_path / "deep", image_column="image")
    np.testing.assert_array_equal(got.images[0, 0].numpy(), ((pixels.astype(np.uint32) * 255 + 32767) // 65535))
    assert got.labels.tolist() == [-1]
