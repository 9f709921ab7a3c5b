"""Image grids for people to look at: originals above their reconstructions, and PNG bytes.

Dimension legend: ``n`` images, ``c`` channels, ``h``/``w`` image size, ``r`` images per grid row.
"""

from __future__ import annotations

import io
import math

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from modalities.image.codes import ImageCodes
from modalities.image.preprocess import to_uint8
from modalities.image.tokenizer import ImageTokenizer


def comparison_grid(
    originals: torch.Tensor, reconstructions: torch.Tensor, per_row: int, min_cell: int
) -> torch.Tensor:
    """uint8 ``(3, H, W)`` grid: each row of ``r = per_row`` originals sits above its reconstructions.

    ``originals`` and ``reconstructions`` are uint8 ``(n, c, h, w)``, e.g. 16 digits (16, 1, 16, 16)
    with ``per_row=8`` and ``min_cell=64`` give four rows of 64×64 cells. Images smaller than
    ``min_cell`` are enlarged by an integer factor (nearest neighbour), so pixels stay sharp.
    """
    if originals.shape != reconstructions.shape:
        raise ValueError(
            f"originals {tuple(originals.shape)} and reconstructions {tuple(reconstructions.shape)} differ."
        )
    n, c, h, _ = originals.shape
    r = min(per_row, n)
    pad = (-n) % r
    blank = originals.new_zeros((pad, c, *originals.shape[2:]))
    top, bottom = torch.cat([originals, blank]), torch.cat([reconstructions, blank])
    # (rows, r, c, h, w) twice → interleave row by row: originals, reconstructions, originals, ...
    pairs = torch.stack([top.view(-1, r, *top.shape[1:]), bottom.view(-1, r, *bottom.shape[1:])], dim=1)
    cells = pairs.reshape(-1, *top.shape[1:]).float() / 255.0
    scale = max(1, math.ceil(min_cell / h))
    if scale > 1:
        cells = F.interpolate(cells, scale_factor=scale, mode="nearest")
    grid = make_grid(cells, nrow=r, padding=2, pad_value=0.5)  # 1-channel cells come out as 3 channels
    return to_uint8(grid)


def png_bytes(grid: torch.Tensor) -> bytes:
    """uint8 ``(3, H, W)`` → PNG file contents."""
    buffer = io.BytesIO()
    Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy(), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def image_grid(images: torch.Tensor, per_row: int, min_cell: int) -> torch.Tensor:
    """uint8 ``(3, H, W)`` grid of uint8 images ``(n, c, h, w)``, ``per_row`` a row, enlarged to ``min_cell`` pixels."""
    scale = max(1, -(-min_cell // images.shape[-1]))
    x = F.interpolate(images.float(), scale_factor=scale, mode="nearest") if scale > 1 else images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return make_grid(x, nrow=per_row, padding=2, pad_value=255).round().to(torch.uint8)


def decode_images(tokenizer: ImageTokenizer, levels: list[torch.Tensor], batch_size: int = 256) -> torch.Tensor:
    """Codes (one ``(n, h_l, w_l)`` grid per level) → uint8 images ``(n, c, h, w)`` on the CPU."""
    out = []
    for start in range(0, levels[0].shape[0], batch_size):
        codes = ImageCodes([g[start : start + batch_size] for g in levels])
        out.append(to_uint8(tokenizer.decode(codes)).cpu())
    return torch.cat(out)
