"""Image files: reading PNG/JPEG/... files, and PNG (lossless), JPEG and WebP (Pillow) as rate–distortion baselines.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size, ``r``/``q`` mosaic rows and columns.

The baselines code the same images over a sweep of qualities. ``layout="mosaic"`` codes all images as
one picture (``q = ceil(sqrt(n))`` columns, the last row padded with black tiles) so each format's
header is paid once, as a code file's is; ``layout="per_image"`` codes each image as its own file,
headers and all. Distortion is measured per image either way, with the same PSNR/SSIM as the tokenizers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modalities.base import input_files
from modalities.image.files import read_image
from modalities.image.metrics import reconstruction_metrics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def mosaic(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, c, h, w)`` → one ``(r·h, q·w, c)`` picture, row by row."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    padded = np.zeros((rows * cols, c, h, w), dtype=np.uint8)
    padded[:n] = images
    return padded.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)


def tiles(picture: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
    """The inverse of :func:`mosaic`: ``(r·h, q·w, c)`` → the first ``n`` tiles ``(n, c, h, w)``."""
    rows, cols, c = picture.shape[0] // h, picture.shape[1] // w, picture.shape[2]
    return picture.reshape(rows, h, cols, w, c).transpose(0, 2, 4, 1, 3).reshape(rows * cols, c, h, w)[:n]


def _round_trip(picture: np.ndarray, fmt: str, quality: int | None) -> tuple[int, np.ndarray]:
    """Bytes of ``picture`` ``(H, W, c)`` in ``fmt`` and the picture decoded back."""
    grey = picture.shape[2] == 1
    image = Image.fromarray(picture[..., 0] if grey else picture, mode="L" if grey else "RGB")
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, format="PNG", optimize=True)
    elif fmt == "WEBP":
        image.save(buffer, format="WEBP", quality=quality, method=6)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    size = buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        back = np.asarray(decoded.convert("L" if grey else "RGB"))
    return size, back[..., None] if grey else back


def code_images(images: np.ndarray, fmt: str, quality: int | None, layout: str) -> tuple[int, np.ndarray]:
    """Total bytes of ``images`` uint8 ``(n, c, h, w)`` in ``fmt`` and the decoded images."""
    n, _, h, w = images.shape
    if layout == "mosaic":
        size, back = _round_trip(mosaic(images), fmt, quality)
        return size, tiles(back, n, h, w)
    sizes, decoded = zip(*(_round_trip(image.transpose(1, 2, 0), fmt, quality) for image in images), strict=True)
    return sum(sizes), np.stack(decoded).transpose(0, 3, 1, 2)


def codec_points(images: torch.Tensor, jpeg: Sequence[int], webp: Sequence[int], layout: str) -> list[dict[str, Any]]:
    """Bits per pixel, PSNR and SSIM of PNG, and of JPEG and WebP at each quality, on uint8 ``images``."""
    array = images.numpy()
    pixels = array.shape[0] * array.shape[2] * array.shape[3]
    runs = [("png", "PNG", None)] + [("jpeg", "JPEG", q) for q in jpeg] + [("webp", "WEBP", q) for q in webp]
    points = []
    for name, fmt, quality in runs:
        size, back = code_images(array, fmt, quality, layout)
        metrics = reconstruction_metrics(images, torch.from_numpy(np.ascontiguousarray(back)))
        points.append({"codec": name, "quality": quality, "bytes": size, "bits_per_pixel": 8 * size / pixels,
                       "psnr": metrics.psnr, "ssim": metrics.ssim})  # fmt: skip
    return points


def read_image_files(path: str, channels: int) -> tuple[torch.Tensor, list[str]]:
    """An image file, or every image file of a folder (sorted), as uint8 ``(n, c, h, w)``, and their names."""
    files = input_files(path, IMAGE_SUFFIXES, "image")
    arrays = [read_image(file, channels) for file in files]
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"all images of one file must have the same size; {path} has sizes {sorted(sizes)}.")
    return torch.from_numpy(np.stack(arrays)), [f.name for f in files]


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 ``(c, h, w)`` image as a PNG file."""
    Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(path)
