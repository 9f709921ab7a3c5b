"""The codes of a batch of images: one integer grid per level, top level first.

Dimension legend: ``b`` batch, ``h_l``/``w_l`` height and width of level ``l``'s grid, ``n`` the
number of codes per image over all levels (``sum(h_l * w_l)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ImageCodes:
    """Codes of ``b`` images: ``levels[l]`` is an int64 grid ``(b, h_l, w_l)``, top (coarsest) first.

    A VQ-VAE has one level, e.g. ``[(8, 8, 8)]`` for eight 32×32 images at factor 4; a two-level
    VQ-VAE-2 on the same images has ``[(8, 4, 4), (8, 8, 8)]``. Integer index → a batch of one
    (the batch axis is kept), slices, index lists and boolean masks select images.
    """

    levels: list[torch.Tensor]

    def __post_init__(self) -> None:
        if isinstance(self.levels, torch.Tensor) or not isinstance(self.levels, Sequence) or not self.levels:
            raise TypeError(
                "ImageCodes.levels must be a non-empty list of (b, h, w) integer tensors, top level first; "
                f"got {type(self.levels).__name__}. Wrap a single grid as ImageCodes([codes])."
            )
        levels = []
        for i, grid in enumerate(self.levels):
            if isinstance(grid, np.ndarray):
                grid = torch.from_numpy(grid)
            if not isinstance(grid, torch.Tensor):
                raise TypeError(f"ImageCodes.levels[{i}] must be a tensor; got {type(grid).__name__}.")
            if grid.is_floating_point() or grid.is_complex() or grid.dtype == torch.bool:
                raise ValueError(f"ImageCodes.levels[{i}] must hold integer codes; got dtype {grid.dtype}.")
            if grid.ndim != 3:
                raise ValueError(
                    f"ImageCodes.levels[{i}] must have shape (b, h, w); got {tuple(grid.shape)}. "
                    "Add a batch axis for a single image (codes[None])."
                )
            levels.append(grid.long())
        batch = {g.shape[0] for g in levels}
        if len(batch) != 1:
            raise ValueError(
                f"all levels of ImageCodes must have the same batch size; got shapes {self._shapes(levels)}."
            )
        if len({g.device for g in levels}) != 1:
            raise ValueError("all levels of ImageCodes must be on the same device; move them with .to(device).")
        self.levels = levels

    @staticmethod
    def _shapes(levels: Sequence[torch.Tensor]) -> list[tuple[int, ...]]:
        return [tuple(g.shape) for g in levels]

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Grid size ``(h_l, w_l)`` of each level, top first."""
        return [(g.shape[1], g.shape[2]) for g in self.levels]

    @property
    def batch_size(self) -> int:
        return self.levels[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.levels[0].device

    @property
    def codes_per_image(self) -> int:
        """Number of codes per image over all levels."""
        return sum(h * w for h, w in self.shapes)

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> ImageCodes:
        if isinstance(index, int):
            b = self.batch_size
            if not -b <= index < b:
                raise IndexError(f"image index {index} is out of range for a batch of {b}.")
            # Keep the batch axis, so codes[i] can go straight to a tokenizer's decode.
            index = slice(index % b, index % b + 1)
        return ImageCodes([g[index] for g in self.levels])

    def to(self, device: torch.device | str) -> ImageCodes:
        return ImageCodes([g.to(device) for g in self.levels])

    def cpu(self) -> ImageCodes:
        return self.to("cpu")

    def numpy(self) -> list[np.ndarray]:
        """The grids as int64 numpy arrays (on the CPU), top first."""
        return [g.cpu().numpy() for g in self.levels]

    def flatten(self) -> torch.Tensor:
        """All codes of each image in one row, ``(b, n)``: levels top first, each in raster order."""
        return torch.cat([g.reshape(g.shape[0], -1) for g in self.levels], dim=1)

    @classmethod
    def unflatten(cls, flat: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> ImageCodes:
        """Inverse of :meth:`flatten`: ``(b, n)`` rows and the level ``shapes`` → ``ImageCodes``."""
        if flat.ndim != 2:
            raise ValueError(f"flat codes must have shape (b, n); got {tuple(flat.shape)}.")
        sizes = [h * w for h, w in shapes]
        if flat.shape[1] != sum(sizes):
            raise ValueError(
                f"flat codes have {flat.shape[1]} codes per image but the shapes {list(shapes)} need {sum(sizes)}."
            )
        parts = torch.split(flat, sizes, dim=1)
        return cls([p.reshape(flat.shape[0], h, w) for p, (h, w) in zip(parts, shapes, strict=True)])

    @classmethod
    def cat(cls, batches: Sequence[ImageCodes]) -> ImageCodes:
        """Concatenate along the batch axis; every batch must have the same level shapes."""
        if not batches:
            raise ValueError("ImageCodes.cat needs at least one batch.")
        shapes = batches[0].shapes
        for i, b in enumerate(batches):
            if b.shapes != shapes:
                raise ValueError(f"ImageCodes.cat: batch {i} has level shapes {b.shapes}, batch 0 has {shapes}.")
        return cls([torch.cat([b.levels[lvl] for b in batches]) for lvl in range(len(shapes))])

    def equal(self, other: ImageCodes) -> bool:
        """True when both hold the same levels with the same codes."""
        return self.shapes == other.shapes and all(
            torch.equal(a, b.to(a.device)) for a, b in zip(self.levels, other.levels, strict=True)
        )
