"""Image files and the classic codecs: a mosaic comes apart into its tiles, PNG is lossless, files read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.image.codecs import code_images, codec_points, mosaic, read_image_files, tiles


def _images(n: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, 8, 6), dtype=np.uint8)


@pytest.mark.parametrize(("n", "c"), [(1, 1), (5, 3), (9, 1)])
def test_mosaic_tiles_round_trip(n: int, c: int) -> None:
    images = _images(n, c)
    picture = mosaic(images)
    cols = int(np.ceil(np.sqrt(n)))
    assert picture.shape == (int(np.ceil(n / cols)) * 8, cols * 6, c)
    np.testing.assert_array_equal(tiles(picture, n, 8, 6), images)


@pytest.mark.parametrize("layout", ["mosaic", "per_image"])
def test_png_is_lossless_and_jpeg_is_not(layout: str) -> None:
    images = _images(4, 3)
    size, back = code_images(images, "PNG", None, layout)
    assert size > 0
    np.testing.assert_array_equal(back, images)
    points = codec_points(torch.from_numpy(images), [50], [0], layout)
    assert [(p["codec"], p["quality"]) for p in points] == [("png", None), ("jpeg", 50), ("webp", 0)]
    assert points[0]["psnr"] == 100.0 and points[1]["psnr"] < 100.0
    assert points[1]["bits_per_pixel"] == pytest.approx(8 * points[1]["bytes"] / (4 * 8 * 6))


def test_image_files_read_as_one_array(tmp_path) -> None:
    images = _images(3, 1)
    for i, image in enumerate(images):
        Image.fromarray(image[0]).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    array, names = read_image_files(str(tmp_path), channels=1)
    assert names == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(array.numpy(), images)
    rgb, _ = read_image_files(str(tmp_path / "0.png"), channels=3)
    assert rgb.shape == (1, 3, 8, 6)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "3.png")
    with pytest.raises(ValueError, match="same size"):
        read_image_files(str(tmp_path), channels=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image_files(str(tmp_path / "missing"), channels=1)
