"""Classic image codecs on the same images: PNG (lossless), JPEG and WebP (Pillow) over a sweep of qualities.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size, ``r``/``q`` mosaic rows and columns.

``layout="mosaic"`` codes all images as one picture (``q = ceil(sqrt(n))`` columns, the last row
padded with black tiles) so each format's header is paid once, as our code file's is;
``layout="per_image"`` codes each image as its own file, headers and all. Distortion is measured
per image either way, with the same PSNR/SSIM as the tokenizers.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from modalities.image import reconstruction_metrics


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


def at_rate(
    points: list[dict[str, Any]],
    codec: str,
    rate: float,
    x: str = "bits_per_pixel",
    metrics: Sequence[str] = ("psnr", "ssim"),
    setting: str = "quality",
) -> dict[str, Any]:
    """A codec's ``metrics`` at ``rate`` (in units of key ``x``), interpolated between the two settings that bracket it.

    Returns ``{codec}_{metric}`` for each metric, ``{codec}_between`` (the two bracketing settings) and
    ``{codec}_lowest_{x}``; outside the codec's range (e.g. below its smallest setting's size) the
    metrics are None, and the lowest rate says how far the codec reaches.
    """
    curve = sorted((p for p in points if p["codec"] == codec), key=lambda p: p[x])
    out: dict[str, Any] = {f"{codec}_{m}": None for m in metrics}
    out[f"{codec}_between"] = None
    out[f"{codec}_lowest_{x}"] = curve[0][x] if curve else None
    for lo, hi in itertools.pairwise(curve):
        if lo[x] <= rate <= hi[x]:
            t = (rate - lo[x]) / (hi[x] - lo[x]) if hi[x] > lo[x] else 0.0
            out.update({f"{codec}_{m}": lo[m] + t * (hi[m] - lo[m]) for m in metrics})
            out[f"{codec}_between"] = [lo[setting], hi[setting]]
            break
    return out
