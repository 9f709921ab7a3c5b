"""Code usage of quantizers without a learned codebook table (FSQ, LFQ, SimVQ): counts, moving average, health.

Dimension legend: ``n`` codes in a batch, ``k`` codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tokenizers_vq import distributed
from tokenizers_vq.metrics import perplexity_from_counts


@dataclass
class Health:
    """A batch's codebook health, as :class:`~tokenizers_vq.QuantizerOutput` reports it (0-dim tensors); its fields
    are the output's, so ``QuantizerOutput(..., **vars(health))`` fills them."""

    perplexity: torch.Tensor
    usage: torch.Tensor
    dead_codes: torch.Tensor


class CodeUsage(nn.Module):
    """Moving average of each code's uses per batch, for the dead-code count; its state resumes with the quantizer.

    In training the batch's counts are summed over ranks first, so every rank holds the same average
    (as :class:`~tokenizers_vq.VectorQuantizer`'s ``usage`` buffer). A code is dead while its average is
    below ``threshold`` uses per batch. The buffers start at the threshold: no code is dead before data.

    Args:
        codebook_size: ``k``.
        decay: of the moving average (0.9, as ``VQConfig.dead_code_decay``).
        threshold: uses per batch below which a code counts as dead.
    """

    def __init__(self, codebook_size: int, decay: float = 0.9, threshold: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"CodeUsage decay must be in [0, 1); got {decay}.")
        self.codebook_size, self.decay, self.threshold = codebook_size, decay, threshold
        self.register_buffer("usage", torch.full((codebook_size,), float(threshold)))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def observe(self, codes: torch.Tensor) -> Health:
        """Count ``codes`` (any shape, ints in ``[0, k)``); in training also all ranks' counts into the average."""
        counts = torch.bincount(codes.reshape(-1), minlength=self.codebook_size).float()
        if self.training:
            distributed.all_reduce_sum(counts)
            if codes.numel() or distributed.is_distributed():  # an empty batch on every rank teaches nothing
                if counts.sum() > 0:
                    self.usage.lerp_(counts, 1 - self.decay)
                    self.steps.add_(1)
        return Health(
            perplexity=perplexity_from_counts(counts),
            usage=torch.count_nonzero(counts) / self.codebook_size,
            dead_codes=(self.usage < self.threshold).sum(),
        )
