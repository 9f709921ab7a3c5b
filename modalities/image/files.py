"""Image files read as 8-bit pixels, whatever their depth, with errors that name the file.

Every image that comes from a user's file goes through :func:`open_image`: the files given to
``compress``, an ``imagefolder`` data set, the CIFAR-10 subset's PNG batches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

# Pillow's modes of 16-bit grey pixels (PNG, TIFF). Pillow's convert("L") clips them at 255 instead of
# scaling, which turns a 16-bit picture near-white; open_image scales them to 8 bits itself. (16-bit RGB and
# RGBA PNGs Pillow already reads as 8-bit "RGB"/"RGBA".)
_GREY_16 = ("I;16", "I;16L", "I;16B", "I;16N")
# Formats whose 32-bit mode "I" holds 16-bit grey in [0, 65535] (a 16-bit PGM; a 16-bit PNG in some Pillows).
# Elsewhere (TIFF) "I" is a true 32-bit integer image, with no known 8-bit scale.
_FORMATS_I_16 = ("PNG", "PPM")


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """The pixels of an image file as an 8-bit Pillow image (mode ``L``, ``RGB``, ``RGBA``, ``P``, ...).

    16-bit grey images are scaled to 8 bits (65535 → 255), not clipped. Raises ``FileNotFoundError`` for
    a missing file and ``ValueError`` naming the file for one that cannot be decoded (not an image,
    truncated, empty) or holds 32-bit integer or float pixels, which have no agreed 8-bit scale.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist.")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a damaged file fails here, with its name
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the file system's own error (permissions, ...), which names the file
        reason = str(err) or type(err).__name__
        raise ValueError(
            f"cannot read {path} as an image ({reason}); it is damaged, or not a PNG, JPEG, WebP, BMP, GIF or TIFF."
        ) from err
    return to_8bit(image, str(path))


def to_8bit(image: Image.Image, source: str) -> Image.Image:
    """``image`` with 8-bit pixels: 16-bit grey scaled (65535 → 255, not clipped as Pillow's ``convert`` does),
    8-bit modes as they are; ``ValueError`` naming ``source`` for 32-bit integer or float pixels."""
    if image.mode in _GREY_16 or (image.mode == "I" and image.format in _FORMATS_I_16):
        pixels = np.asarray(image).astype(np.uint32)  # (h, w) in [0, 65535]
        return Image.fromarray(((pixels * 255 + 32767) // 65535).astype(np.uint8))  # mode L
    if image.mode in ("I", "F"):
        raise ValueError(
            f"{source} holds {'32-bit integer' if image.mode == 'I' else 'floating-point'} pixels, which have no "
            "8-bit scale to read them at; save it as an 8-bit or 16-bit PNG first."
        )
    return image


def is_grey(image: Image.Image) -> bool:
    """Whether an image from :func:`open_image` holds grey pixels only: modes ``L``, ``1`` and ``LA`` (grey with
    alpha), and a palette image whose colours are all grey (as some tools save grey PNGs)."""
    if image.mode in ("L", "1", "LA"):
        return True
    if image.mode == "P":
        rgb = np.asarray(image.convert("RGB"))  # (h, w, 3): the palette's colours as used
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return False


def read_image(path: str | os.PathLike[str], channels: int) -> np.ndarray:
    """An image file as uint8 ``(c, h, w)`` with ``channels`` 1 (grey) or 3 (RGB), converted as needed."""
    array = np.asarray(open_image(path).convert("L" if channels == 1 else "RGB"))
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def stack_images(loaded: list[Any], where: str) -> torch.Tensor:
    """PIL images of one size → uint8 ``(n, 1, h, w)`` when all are grey, else ``(n, 3, h, w)``; 16-bit grey
    images scaled to 8 bits (:func:`~modalities.image.files.to_8bit`), deeper ones refused naming ``where``."""
    loaded = [to_8bit(img, where) for img in loaded]
    mode = "L" if all(is_grey(img) for img in loaded) else "RGB"
    pixels = [np.asarray(img.convert(mode)) for img in loaded]
    sizes = sorted({p.shape[:2] for p in pixels})
    if len(sizes) != 1:
        raise ValueError(f"images in {where} have different sizes {sizes[:5]}; resize them to one size first.")
    stacked = np.stack(pixels)  # (n, h, w) grey or (n, h, w, 3) RGB
    return torch.from_numpy(stacked[:, None] if mode == "L" else np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)))
