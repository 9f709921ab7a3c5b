"""What the recipes over variable-length id sequences share (``bpe``, ``train-mixed``): item codes, one training step.

Dimension legend: ``T`` codes per (padded) utterance, ``h``/``w`` an image level's grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from priors.sequence import lm_nll_sum
from recipes.engine.parallel import Ranks
from recipes.engine.runtime import optimizer_step
from recipes.image.config import TrainConfig
from recipes.priors.corpus import CodeCorpus
from tokenizers_vq import distributed


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


def fit_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sequences: Sequence[Sequence[int]],
    pad: int,
    train: TrainConfig,
    step: int,
    ranks: Ranks | None = None,
) -> float:
    """One Adam step on the mean NLL per token of the global batch at ``train.lr_at(step)``; returns that mean in nats.

    With several ``ranks``, ``sequences`` is this rank's share of the global batch and ``model`` the
    DistributedDataParallel wrapper (:meth:`recipes.engine.parallel.Ranks.wrap`); the step is the one a
    single process takes over the whole batch, whatever each share's length and padding.
    """
    for group in optimizer.param_groups:
        group["lr"] = train.lr_at(step)
    world = 1 if ranks is None else ranks.world
    total, tokens = lm_nll_sum(model, sequences, pad)
    # The shares predict different numbers of tokens, so each rank divides its NLL sum by the global
    # count (not its own), times ``world`` because DDP averages the ranks' gradients: the average is
    # then the gradient of the global batch's mean NLL per token.
    if world > 1:
        tokens = distributed.all_reduce_sum(tokens.float())
    loss = total * world / tokens
    mean = loss.detach().clone()
    if world > 1:  # the global batch's mean, which every rank logs and raises on alike
        mean = distributed.all_reduce_sum(mean) / world
    if not torch.isfinite(mean):
        raise FloatingPointError(f"the loss became {float(mean)} at step {step + 1}; lower train.lr.")
    optimizer_step(loss, optimizer, model, train.grad_clip, step, "lower train.lr")
    return float(mean)
