"""The codes of a batch of images: one integer grid per level, top level first.

Dimension legend: ``b`` batch, ``h_l``/``w_l`` height and width of level ``l``'s grid, ``n`` the
number of codes per image over all levels (``sum(h_l * w_l)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from tokenizers_vq.tokenizer import Codes


@dataclass(eq=False)
class ImageCodes(Codes):
    """Codes of ``b`` images: ``levels[l]`` is an int64 grid ``(b, h_l, w_l)``, top (coarsest) first.

    A VQ-VAE has one level, e.g. ``[(8, 8, 8)]`` for eight 32×32 images at factor 4; a two-level
    VQ-VAE-2 on the same images has ``[(8, 4, 4), (8, 8, 8)]``. Integer index → a batch of one
    (the batch axis is kept), slices, index lists and boolean masks select images.
    """

    grid_ndim: ClassVar[int | None] = 2

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Grid size ``(h_l, w_l)`` of each level, top first."""
        return [(g.shape[1], g.shape[2]) for g in self.levels]

    @property
    def codes_per_image(self) -> int:
        """Number of codes per image over all levels."""
        return self.codes_per_item

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
