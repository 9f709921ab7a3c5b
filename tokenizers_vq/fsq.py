"""Finite scalar quantization: each dimension rounded to a few levels, the code a mixed-radix integer.

Dimension legend: ``...`` leading shape, ``d`` input dim, ``c`` quantized dims (one per level count),
``n`` flattened vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from tokenizers_vq.base import QuantizerOutput, SingleLevelQuantizer, check_codes, check_vectors, zero_loss
from tokenizers_vq.usage import CodeUsage

#: Boundaries sit a hair inside the tanh's range, so its extremes round to the outermost levels.
BOUND_EPS = 1e-3


def check_fsq_levels(levels: Any, owner: str) -> None:
    """Raise ``ValueError`` unless ``levels`` is a non-empty list of integers >= 3; ``owner`` names the field."""
    if (
        not isinstance(levels, list | tuple)
        or not levels
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 3 for n in levels)
    ):
        raise ValueError(
            f"{owner} must be a non-empty list of integers >= 3, one per quantized dimension "
            f"(e.g. [8, 5, 5, 5]: 1,000 codes); got {levels!r}. For two levels per dimension use LFQ."
        )


@dataclass
class FSQConfig:
    """Configuration of a :class:`FiniteScalarQuantizer`.

    The codebook size is the product of ``levels``; the paper's (Mentzer et al. 2023, table 1)
    choices are [8, 5, 5, 5] for 2^10 codes, [8, 8, 8, 5, 5, 5] for 2^16, and [8, 8, 8] for 512.
    """

    dim: int
    levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # levels per quantized dimension
    # Position in a residual stack: inputs and codes are scaled by (L − 1)^−residual_level per dimension,
    # so deeper levels round ever finer residuals (residual FSQ).
    residual_level: int = 0

    def __post_init__(self) -> None:
        check_fsq_levels(self.levels, "FSQConfig.levels")
        self.levels = list(self.levels)
        if self.dim <= 0:
            raise ValueError(f"FSQConfig.dim must be positive; got {self.dim}")
        if self.residual_level < 0:
            raise ValueError(f"FSQConfig.residual_level must be >= 0; got {self.residual_level}")

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def for_residual_level(self, level: int) -> FSQConfig:
        return replace(self, residual_level=level)

    def build(self) -> FiniteScalarQuantizer:
        return FiniteScalarQuantizer(self)


class FiniteScalarQuantizer(SingleLevelQuantizer):
    """FSQ (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple"): no codebook to learn.

    Inputs are projected to ``c = len(levels)`` dimensions (when ``d != c``), each bounded by a
    shifted tanh to ``L_i`` values and rounded with a straight-through gradient; the code is the
    mixed-radix number of the rounded values (dimension 0 least significant). Nothing collapses, so
    there is no commitment or codebook loss, no initialisation and no restarts; usage is tracked for
    the dead-code count only. Shape contract: ``x`` ``(..., d)`` → ``quantized`` ``(..., d)``, codes
    ``(...)`` in ``[0, ∏ L_i)``; e.g. ``(8, 7, 7, 64)`` with levels [8, 8, 8] → codes ``(8, 7, 7)`` < 512.
    Rounding runs in float32 under autocast.

    Args:
        config: an :class:`FSQConfig`, or leave it out and pass its fields as keywords.
    """

    def __init__(self, config: FSQConfig | None = None, **kwargs) -> None:
        super().__init__(FSQConfig, config, kwargs)
        config = self.config
        c = len(config.levels)
        self.project_in = nn.Linear(config.dim, c) if config.dim != c else nn.Identity()
        self.project_out = nn.Linear(c, config.dim) if config.dim != c else nn.Identity()
        levels = torch.tensor(config.levels, dtype=torch.float32)
        # Derived constants, rebuilt from the config: not state to save.
        self.register_buffer("grid_levels", levels, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.tensor([1, *config.levels[:-1]]), 0), persistent=False)
        scale = (levels - 1) ** -float(config.residual_level)
        self.register_buffer("scale", scale, persistent=False)
        half = (levels - 1) * (1 + BOUND_EPS) / 2
        # Even L: the grid is shifted by a half step, so the tanh is shifted to keep 0 mapping to 0.
        offset = (levels % 2 == 0).float() * 0.5
        self.register_buffer("bound_half", half, persistent=False)
        self.register_buffer("bound_offset", offset, persistent=False)
        self.register_buffer("bound_shift", torch.atanh(offset / half), persistent=False)
        self.register_buffer("radius", levels // 2, persistent=False)  # grid values run from -radius
        self.register_buffer("grid_step", scale / (levels // 2), persistent=False)  # grid value → output coordinate
        self.tracker = CodeUsage(config.codebook_size)

    # ---- the scalar grid ------------------------------------------------------------------------
    def _round(self, z: torch.Tensor) -> torch.Tensor:
        """Integer grid values ``(n, c)`` in ``[-(L//2), L - 1 - L//2]`` of ``z``, rounded with a straight-through gradient."""
        bounded = torch.tanh(z + self.bound_shift) * self.bound_half - self.bound_offset
        return bounded + (bounded.round() - bounded).detach()

    def _to_grid(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_in(x.reshape(-1, self.dim).float()) / self.scale  # (n, c)

    def _from_grid(self, rounded: torch.Tensor) -> torch.Tensor:
        """Quantized vectors ``(n, d)`` of grid values ``(n, c)``: each dimension in [-1, 1], then projected out."""
        return self.project_out(rounded * self.grid_step)

    def _codes(self, rounded: torch.Tensor) -> torch.Tensor:
        digits = (rounded.detach() + self.radius).round().long()  # (n, c) in [0, L)
        return (digits * self.basis).sum(-1)

    # ---- the interface ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            rounded = self._round(self._to_grid(x))
            codes = self._codes(rounded)
            quantized = self._from_grid(rounded).reshape(x.shape).to(x.dtype)
            health = self.tracker.observe(codes)
            zero = rounded.new_zeros(()) if rounded.shape[0] else zero_loss(rounded)  # no loss terms at all
        return QuantizerOutput(quantized, codes.reshape(x.shape[:-1]), zero, zero, **vars(health))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._codes(self._round(self._to_grid(x))).reshape(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.codebook_size)
        digits = (codes.long()[..., None] // self.basis) % self.grid_levels.long()  # (..., c)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self._from_grid(digits.float() - self.radius)
