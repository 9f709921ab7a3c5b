"""What the recipes over variable-length id sequences share (``bpe``, ``train-mixed``): item codes, the training task.

Dimension legend: ``T`` codes per (padded) utterance, ``h``/``w`` an image level's grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from priors.sequence import lm_nll_sum
from recipes.engine.parallel import Ranks
from recipes.engine.trainer import StepOutput
from tokenizers_vq import distributed
from tokenizers_vq.corpus import CodeCorpus

LN2 = math.log(2.0)


def item_codes(corpus: CodeCorpus, index: int) -> list[np.ndarray]:
    """The codes of item ``index``, one flat int64 array per level (raster order); speech: its frames only."""
    if corpus.lengths is not None:
        row = np.asarray(corpus.levels[0][index], dtype=np.int64)  # (T,), end codes after the frames
        return [row[: min(int(corpus.lengths[index]), row.shape[0])]]
    return [np.asarray(level[index], dtype=np.int64).reshape(-1) for level in corpus.levels]  # (h * w,) each


def code_sequences(corpus: CodeCorpus, limit: int | None = None) -> list[np.ndarray]:
    """Each of the first ``limit`` items' codes as one flat sequence (levels one after another)."""
    n = len(corpus) if limit is None else min(limit, len(corpus))
    return [np.concatenate(item_codes(corpus, i)) for i in range(n)]


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
