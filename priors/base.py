"""What every prior over codes shares: the layout of the codes it models, its output, its interface.

Dimension legend: ``b`` batch, ``*grid`` one level's grid (``(h, w)`` for images, ``(t,)`` for
speech), ``n`` codes per item over all levels, ``K`` a level's codebook size, ``C`` classes.

Codes are given as a list of integer tensors, one per level, top level first, each ``(b, *grid)``:
exactly ``ImageCodes.levels`` for images, a one-element list ``[(b, t)]`` for speech. Flattened,
an item's codes run level by level, each level in raster order; "position ``i``" below means that order.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from priors.sampling import SamplingConfig


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


@dataclass
class PriorOutput:
    """What a prior's ``forward`` returns for codes ``levels`` (each ``(b, *grid_l)``).

    - ``logits``: one tensor per level, ``(b, *grid_l, K_l)``; entry ``[..., k]`` scores code ``k`` at
      that position given every code before it (in the flattened order) and the condition.
    - ``nll``: ``(b, n)`` negative log-likelihood in nats of each code, flattened level by level.
    - ``loss``: scalar mean of ``nll``: what training minimises (nats per code).
    """

    logits: list[torch.Tensor]
    nll: torch.Tensor
    loss: torch.Tensor


@dataclass
class SampleResult:
    """Sampled codes (one ``(b, *grid_l)`` int64 tensor per level, top first), the labels asked for, and the time taken."""

    levels: list[torch.Tensor]
    labels: torch.Tensor | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def nll_from_logits(logits: Sequence[torch.Tensor], levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-code NLL in nats ``(b, n)`` from per-level logits ``(b, *grid, K)`` and codes ``(b, *grid)``.

    Computed in float32 or better, whatever the logits' dtype (log-softmax of bf16 logits loses bits).
    """
    parts = [
        nn.functional.cross_entropy(
            _at_least_fp32(lg).flatten(1, -2).transpose(1, 2), g.flatten(1).long(), reduction="none"
        )
        for lg, g in zip(logits, levels, strict=True)
    ]
    return torch.cat(parts, dim=1)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class CodePrior(nn.Module, ABC):
    """Interface of every prior: scores codes (``forward``), samples them, saves and loads itself."""

    layout: CodeLayout

    @abstractmethod
    def forward(self, levels: Sequence[torch.Tensor], labels: torch.Tensor | None = None) -> PriorOutput:
        """Logits and per-code NLL of ``levels`` given ``labels`` (teacher forcing)."""

    @abstractmethod
    def sample(
        self, labels: torch.Tensor | None = None, batch_size: int | None = None, sampling: SamplingConfig | None = None
    ) -> SampleResult:
        """Draw codes for every level, top first; ``labels`` ``(b,)`` for a conditional prior, else ``batch_size``."""

    @abstractmethod
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the prior's directory (config and weights) and return its path."""

    def _batch(self, labels: torch.Tensor | None, batch_size: int | None) -> int:
        """The batch size of a ``sample`` call, checked against the layout."""
        if labels is not None:
            self.layout.check_labels(labels, labels.shape[0] if labels.ndim == 1 else -1)
            return labels.shape[0]
        if batch_size is None or batch_size < 1:
            raise ValueError(
                "sample needs labels (b,) for a conditional prior, or batch_size >= 1 for an unconditional one."
            )
        self.layout.check_labels(None, batch_size)
        return batch_size


def config_dict(config: Any) -> dict[str, Any]:
    """A prior config dataclass as a JSON-ready dict (tuples as lists)."""
    return asdict(config)
