"""Round-trip held-out images through a tokenizer: a PNG grid (originals above reconstructions) and its figures.

Dimension legend: ``n`` images, ``c`` channels, ``h``/``w`` image size, ``r`` images per grid row.

The output directory (``out``, default ``<tokenizer dir>/../reconstructions``) gets
``reconstructions.png``, ``reconstructions.json`` (MSE, PSNR, SSIM of those images, their indices)
and ``config.yaml``.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from modalities.image import reconstruction_metrics, to_uint8
from recipes.engine.config import save_config
from recipes.engine.results import format_figures
from recipes.engine.runtime import autocast
from recipes.image.common import check_fits, load_split, open_tokenizer, setup_runtime
from recipes.image.config import ImageRecipeConfig
from tokenizers_vq.io import atomic_write_bytes, atomic_write_json

GRID_NAME = "reconstructions.png"
FIGURES_NAME = "reconstructions.json"


@dataclass
class ReconstructResult:
    """The grid's location and the reconstruction figures of the images in it."""

    out_dir: str
    grid: str  # path of the PNG
    tokenizer: str
    dataset: str
    split: str
    indices: list[int]  # which images of the split, left to right, top to bottom
    figures: dict[str, float] = field(default_factory=dict)  # mse, psnr, ssim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        head = {"grid": self.grid, "data": f"{self.dataset}/{self.split}", "images": len(self.indices)}
        return format_figures({**head, **self.figures}, title="reconstruct")


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


def default_out(tokenizer_dir: Path) -> Path:
    return tokenizer_dir.resolve().parent / "reconstructions"


def run(cfg: ImageRecipeConfig) -> ReconstructResult:
    """Reconstruct ``cfg.reconstruct.num_images`` images (seeded draw) of the held-out split."""
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "reconstruct")
    cfg = replace(cfg, model=model.config)
    split = cfg.reconstruct.split or cfg.data.eval_split
    data = load_split(cfg, split)
    check_fits(cfg, data)
    out = Path(cfg.out).expanduser() if cfg.out else default_out(tokenizer_dir)

    count = min(cfg.reconstruct.num_images, len(data))
    generator = torch.Generator().manual_seed(cfg.seed)
    indices = torch.randperm(len(data), generator=generator)[:count].sort().values
    originals = data.images[indices]
    with torch.no_grad(), autocast(cfg.precision, device):
        reconstructions = model.reconstruct(originals).float().cpu()
    figures = reconstruction_metrics(originals, reconstructions).to_dict()
    grid = comparison_grid(originals, to_uint8(reconstructions), cfg.reconstruct.per_row, cfg.reconstruct.min_cell)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / GRID_NAME, png_bytes(grid))
    result = ReconstructResult(
        out_dir=str(out),
        grid=str(out / GRID_NAME),
        tokenizer=str(tokenizer_dir),
        dataset=data.name,
        split=data.split,
        indices=[int(i) for i in indices],
        figures=figures,
    )
    atomic_write_json(out / FIGURES_NAME, result.to_dict())
    save_config(cfg, out / "config.yaml")
    return result
