"""The layout of the codes a tokenizer makes and a prior models: each level's grid and codebook size, and classes.

Dimension legend: ``h``/``w`` an image level's grid, ``t`` a sequence level's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CodeLayout:
    """The codes a prior models: each level's grid shape and codebook size, top first, and the classes.

    ``CodeLayout(shapes=[(7, 7)], codebook_sizes=[64], num_classes=10)`` is one 7×7 grid of a
    64-entry codebook with 10 class labels; a VQ-VAE-2 on 32×32 images at factor 4 has
    ``shapes=[(4, 4), (8, 8)]``; a speech corpus ``shapes=[(200,)]``. ``num_classes=0`` means unconditional.
    """

    shapes: list[tuple[int, ...]]
    codebook_sizes: list[int]
    num_classes: int = 0

    def __post_init__(self) -> None:
        self.shapes = [tuple(int(s) for s in shape) for shape in self.shapes]
        self.codebook_sizes = [int(k) for k in self.codebook_sizes]
        if not self.shapes or len(self.shapes) != len(self.codebook_sizes):
            raise ValueError(
                f"CodeLayout needs one shape and one codebook size per level (at least one level); got "
                f"{len(self.shapes)} shapes and {len(self.codebook_sizes)} codebook sizes."
            )
        dims = {len(s) for s in self.shapes}
        if dims not in ({1}, {2}):
            raise ValueError(
                f"every level must be a 2-D grid (h, w) or every level a 1-D sequence (t,); got shapes {self.shapes}."
            )
        if any(s < 1 for shape in self.shapes for s in shape) or any(k < 2 for k in self.codebook_sizes):
            raise ValueError(
                f"grid sides must be positive and codebooks hold at least 2 codes; got {self.shapes}, "
                f"{self.codebook_sizes}."
            )
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: unconditional); got {self.num_classes}.")

    @property
    def num_levels(self) -> int:
        return len(self.shapes)

    @property
    def ndim(self) -> int:
        """1 for sequences, 2 for image grids."""
        return len(self.shapes[0])

    @property
    def level_lengths(self) -> list[int]:
        """Number of codes in each level's grid."""
        return [math.prod(s) for s in self.shapes]

    @property
    def codes_per_item(self) -> int:
        return sum(self.level_lengths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shapes": [list(s) for s in self.shapes],
            "codebook_sizes": self.codebook_sizes,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CodeLayout:
        return cls(
            shapes=[tuple(s) for s in values["shapes"]],
            codebook_sizes=list(values["codebook_sizes"]),
            num_classes=int(values.get("num_classes", 0)),
        )

    def check(self, levels: Sequence[torch.Tensor], labels: torch.Tensor | None) -> int:
        """Raise ``TypeError``/``ValueError`` unless ``levels`` (and ``labels``) fit this layout; returns the batch size."""
        if isinstance(levels, torch.Tensor) or not isinstance(levels, Sequence):
            raise TypeError(
                "codes must be a list of integer tensors, one per level, top first (e.g. ImageCodes.levels); "
                f"got {type(levels).__name__}. Wrap a single grid as [codes]."
            )
        if len(levels) != self.num_levels:
            raise ValueError(f"this prior models {self.num_levels} level(s); got {len(levels)}.")
        batch = None
        for i, (grid, shape, k) in enumerate(zip(levels, self.shapes, self.codebook_sizes, strict=True)):
            if not isinstance(grid, torch.Tensor) or grid.is_floating_point() or grid.dtype == torch.bool:
                raise TypeError(f"level {i} codes must be an integer tensor; got {getattr(grid, 'dtype', type(grid))}.")
            if tuple(grid.shape[1:]) != shape:
                raise ValueError(
                    f"level {i} codes must have shape (b, {', '.join(map(str, shape))}); got {tuple(grid.shape)}. "
                    "Was the prior trained on another tokenizer or image size?"
                )
            if batch is not None and grid.shape[0] != batch:
                raise ValueError(
                    f"all levels must have the same batch size; level {i} has {grid.shape[0]}, not {batch}."
                )
            batch = grid.shape[0]
            if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= k):
                raise ValueError(f"level {i} codes must lie in [0, {k - 1}]; got {int(grid.min())}..{int(grid.max())}.")
        assert batch is not None, "a layout has at least one level"
        self.check_labels(labels, batch)
        return batch

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        """Raise ``ValueError`` unless ``labels`` suit a batch of ``batch``: ``(b,)`` ints for a conditional prior, else None."""
        if self.num_classes == 0:
            if labels is not None:
                raise ValueError("this prior is unconditional (num_classes=0); pass labels=None.")
            return
        if labels is None:
            raise ValueError(f"this prior is class-conditional ({self.num_classes} classes); pass labels (b,).")
        if labels.shape != (batch,) or labels.is_floating_point():
            raise ValueError(f"labels must be integers of shape ({batch},); got {labels.dtype} {tuple(labels.shape)}.")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes - 1}]; got {int(labels.min())}..{int(labels.max())}."
            )
