"""Sampling controls shared by every prior: temperature, top-k, top-p and a seeded draw.

Dimension legend: ``b`` batch, ``K`` number of choices at one position.

The filters are transformers' own logits warpers, so a PixelCNN and a transformer prior given the
same :class:`SamplingConfig` filter their logits the same way. The draw is an inverse-CDF lookup of
one uniform number per row, taken from an explicit ``torch.Generator``: the naive and the cached
PixelCNN samplers consume that stream in the same order, so equal logits give equal samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper


@dataclass
class SamplingConfig:
    """How to turn a prior's logits into codes.

    ``temperature`` divides the logits (below 1: sharper, above 1: more diverse); ``top_k`` keeps the
    ``k`` most likely codes (null: all); ``top_p`` keeps the smallest set whose probability reaches
    ``p`` (1.0: all); ``seed`` seeds the draw, so the same seed gives the same samples.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"sampling.temperature must be positive; got {self.temperature}. Use e.g. 1.0.")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"sampling.top_k must be a positive integer or null; got {self.top_k}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"sampling.top_p must be in (0, 1]; got {self.top_p}.")

    def warpers(self) -> LogitsProcessorList:
        """transformers' warpers for these settings (temperature, then top-k, then top-p), as ``generate`` orders them."""
        warpers = LogitsProcessorList()
        if self.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k is not None:
            warpers.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(self.top_p))
        return warpers

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """A fresh generator on ``device`` seeded with ``seed``."""
        return torch.Generator(device=device).manual_seed(self.seed)


def filter_logits(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Logits ``(b, K)`` after temperature, top-k and top-p (removed entries are ``-inf``)."""
    warpers = sampling.warpers()
    if not warpers:
        return logits
    # The warpers ignore the ids argument; an empty (b, 0) tensor stands in for it.
    ids = torch.empty((logits.shape[0], 0), dtype=torch.long, device=logits.device)
    return warpers(ids, logits.float())


def draw(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """One code per row of ``logits`` ``(b, K)`` → int64 ``(b,)``, filtered by ``sampling``.

    Uses one uniform number per row from ``generator`` (inverse CDF), so two samplers that compute
    the same logits and share a generator state draw the same codes.
    """
    probs = torch.softmax(filter_logits(logits, sampling).float(), dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device, dtype=cdf.dtype)
    # Scale u by the last CDF entry so rounding (cdf[-1] slightly below 1) never runs off the end.
    codes = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return codes.clamp_max(logits.shape[-1] - 1)
