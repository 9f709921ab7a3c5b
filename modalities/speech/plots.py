"""A confusion-matrix picture (PNG) of true phones against the phones their codes map to."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tokenizers_vq.io import atomic_path


def confusion_png(
    confusion: np.ndarray, phones: Sequence[str], path: str | os.PathLike[str], title: str = "", cell: int = 14
) -> Path:
    """Draw row-normalised ``confusion`` ``(C, C)`` (rows: true phone, columns: mapped phone) as a PNG.

    Dark cells are frequent; each row sums to 1 (a row of a phone that never occurs stays white).
    Phones are written along both axes; the file is written atomically.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    c = len(phones)
    if confusion.shape != (c, c):
        raise ValueError(f"confusion must be ({c}, {c}) for {c} phones; got {confusion.shape}.")
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    font = ImageFont.load_default(size=max(8, cell - 4))
    label_w = max(int(font.getlength(p)) for p in phones) + 8
    top = label_w + (18 if title else 4)
    size_w, size_h = label_w + c * cell + 8, top + c * cell + 8
    image = Image.new("RGB", (size_w, size_h), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    for i in range(c):
        for j in range(c):
            level = round(255 * (1.0 - share[i, j]))
            x0, y0 = label_w + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(level, level, 255 if i == j else level))
    for i, phone in enumerate(phones):
        draw.text((label_w - 4 - font.getlength(phone), top + i * cell), phone, fill="black", font=font)
        # column labels written vertically: render, rotate and paste
        text = Image.new("RGB", (label_w, cell), "white")
        ImageDraw.Draw(text).text((4, 0), phone, fill="black", font=font)
        image.paste(text.rotate(90, expand=True), (label_w + i * cell, top - label_w))
    draw.rectangle([label_w - 1, top - 1, label_w + c * cell, top + c * cell], outline="black")
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
