"""The training task of causal language models over id sequences (``bpe``'s priors, ``train-mixed``).

Dimension legend: ``b`` the global batch, ``b / world`` one rank's share of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from priors.sequence import lm_nll_sum
from recipes.engine.parallel import Ranks
from recipes.engine.trainer import StepOutput
from tokenizers_vq import distributed

LN2 = math.log(2.0)


@dataclass
class SequenceTask:
    """A causal LM over id sequences: the mean NLL per token of the global batch, logged in bits per token.

    With several ranks each step's ``indices`` are this rank's share of the global batch and ``net`` the
    DistributedDataParallel wrapper; the step is the one a single process takes over the whole batch,
    whatever each share's length and padding.
    """

    sequence: Callable[[int], Sequence[int]]  # training item i → its ids
    count: int  # training items
    ranks: Ranks
    held_out: Callable[[], dict[str, Any]] | None = None  # held-out figures, with ``bits_per_token``
    pad: int = 0
    progress: ClassVar[tuple[str, ...]] = ("bits_per_token",)

    def __len__(self) -> int:
        return self.count

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        world = self.ranks.world
        total, tokens = lm_nll_sum(net, [self.sequence(i) for i in indices.tolist()], self.pad)
        # The shares predict different numbers of tokens, so each rank divides its NLL sum by the global
        # count (not its own), times ``world`` because DDP averages the ranks' gradients: the average is
        # then the gradient of the global batch's mean NLL per token.
        if world > 1:
            tokens = distributed.all_reduce_sum(tokens.float())
        loss = total * world / tokens
        mean = loss.detach().clone()
        if world > 1:  # the global batch's mean, which rank 0 logs
            mean = distributed.all_reduce_sum(mean) / world
        return StepOutput(loss, {"bits_per_token": float(mean) / LN2})

    def evaluate(self) -> dict[str, Any] | None:
        return None if self.held_out is None else self.held_out()

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        return f"eval @ step {step}: {figures['bits_per_token']:.4f} bits/token"
