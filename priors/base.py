"""What every prior over codes shares: the layout of the codes it models, its output, its interface.

Dimension legend: ``b`` batch, ``*grid`` one level's grid (``(h, w)`` for images, ``(t,)`` for
speech), ``n`` codes per item over all levels, ``K`` a level's codebook size, ``C`` classes.

Codes are given as a list of integer tensors, one per level, top level first, each ``(b, *grid)``:
exactly ``ImageCodes.levels`` for images, a one-element list ``[(b, t)]`` for speech. Flattened,
an item's codes run level by level, each level in raster order; "position ``i``" below means that order.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from priors.sampling import SamplingConfig
from tokenizers_vq.layout import CodeLayout

__all__ = ["CodeLayout", "CodePrior", "PriorOutput", "SampleResult", "nll_from_logits"]


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

    @classmethod
    def from_logits(cls, logits: list[torch.Tensor], levels: Sequence[torch.Tensor]) -> PriorOutput:
        """The output for per-level ``logits`` of the codes ``levels``: their NLL, and its mean as the loss."""
        nll = nll_from_logits(logits, levels)
        return cls(logits=logits, nll=nll, loss=nll.mean())


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

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | None = None,
        batch_size: int | None = None,
        sampling: SamplingConfig | None = None,
        cached: bool = True,
    ) -> SampleResult:
        """Draw codes for every level, top first; ``labels`` ``(b,)`` for a conditional prior, else ``batch_size``.

        ``sampling`` defaults to ``SamplingConfig()``. ``cached=True`` reuses the work of earlier positions
        (fast); ``cached=False`` re-runs the whole network for every code. Both give the same codes for
        the same ``sampling.seed``.
        """
        return self._sample(labels, batch_size, sampling or SamplingConfig(), cached)

    @abstractmethod
    def _sample(
        self, labels: torch.Tensor | None, batch_size: int | None, sampling: SamplingConfig, cached: bool
    ) -> SampleResult:
        """What :meth:`sample` does for this kind of prior (without gradients, ``sampling`` given)."""

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
