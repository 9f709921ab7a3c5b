"""Likelihood of held-out codes under a prior: bits per code, bits per item, and bits per dimension.

Dimension legend: ``b`` batch, ``n`` codes per item, ``D`` dimensions of the item the codes stand
for (pixels × channels of an image), ``c``/``h``/``w`` image channels and size.

Two bits/dim figures, so the number means what it says:

- ``bits_per_dim``: the codes' rate, ``bits_per_item / D``: what a lossless entropy coder driven by
  the prior spends on each image dimension (the tokenizer's decoder rebuilds the image from it).
- ``elbo_bits_per_dim`` (when a distortion is given): rate plus ``-log2 p(x | codes)`` per dimension,
  with ``p(x | codes)`` a discretised Gaussian around the decoder's output, an upper bound on the
  image's negative log-likelihood. The VQ-VAE paper's 4.67 bits/dim for CIFAR-10 is this kind of
  figure (there with a uniform prior over the codes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from priors.base import CodePrior

LN2 = math.log(2.0)


@dataclass
class LikelihoodResult:
    """Held-out likelihood figures of a prior (all in bits; means over the items scored)."""

    bits_per_code: float  # mean over every code position
    level_bits_per_code: list[float]  # the same per level, top first
    bits_per_item: float  # total bits of one item's codes
    bits_per_dim: float | None  # bits_per_item / dims_per_item (None when the dimension count is unknown)
    num_items: int
    dims_per_item: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate_likelihood(
    prior: CodePrior,
    batches: Iterable[tuple[Sequence[torch.Tensor], torch.Tensor | None]],
    dims_per_item: int | None = None,
) -> LikelihoodResult:
    """Score every ``(levels, labels)`` batch under ``prior`` (eval mode, no gradients).

    ``dims_per_item`` is the number of values one item has in the data space (e.g. ``28 * 28 * 1`` for
    Fashion-MNIST); with it the result also has ``bits_per_dim``.
    """
    was_training = prior.training
    prior.eval()
    lengths = prior.layout.level_lengths
    level_sums = torch.zeros(len(lengths), dtype=torch.float64)
    items = 0
    try:
        for levels, labels in batches:
            nll = prior(levels, labels).nll.double().cpu()  # (b, n) nats
            level_sums += torch.stack([part.sum() for part in torch.split(nll, lengths, dim=1)])
            items += nll.shape[0]
    finally:
        prior.train(was_training)
    if items == 0:
        raise ValueError("evaluate_likelihood got no items to score; check the corpus and max_items.")
    level_bits = (level_sums / LN2 / (items * torch.tensor(lengths, dtype=torch.float64))).tolist()
    bits_per_item = float(level_sums.sum()) / LN2 / items
    return LikelihoodResult(
        bits_per_code=bits_per_item / sum(lengths),
        level_bits_per_code=level_bits,
        bits_per_item=bits_per_item,
        bits_per_dim=None if dims_per_item is None else bits_per_item / dims_per_item,
        num_items=items,
        dims_per_item=dims_per_item,
    )


def discretized_gaussian_bits(images: torch.Tensor, means: torch.Tensor, sigma: float) -> torch.Tensor:
    """``-log2 p(x | μ)`` of each item, summed over its dimensions: ``(b,)`` bits.

    ``images`` are uint8 ``(b, c, h, w)`` in ``[0, 255]``, ``means`` floats of the same shape in
    ``[0, 1]`` (a decoder's output), ``sigma`` the Gaussian's standard deviation in pixel levels
    (0–255 units). Each level ``x`` gets the Gaussian mass of ``[x - ½, x + ½]``; levels 0 and 255
    take the tails beyond them, so the 256 probabilities sum to one.
    """
    if images.shape != means.shape:
        raise ValueError(f"images {tuple(images.shape)} and means {tuple(means.shape)} must have the same shape.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}.")
    x = images.double()
    mu = means.double().clamp(0, 1) * 255.0
    normal = torch.distributions.Normal(torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64))
    upper = torch.where(x >= 255, torch.ones_like(x), normal.cdf((x + 0.5 - mu) / sigma))
    lower = torch.where(x <= 0, torch.zeros_like(x), normal.cdf((x - 0.5 - mu) / sigma))
    bits = -torch.log2((upper - lower).clamp_min(1e-300))
    return bits.flatten(1).sum(dim=1)
