"""What the recipes over variable-length id sequences share (``bpe``, ``train-mixed``): item codes, one training step.

Dimension legend: ``T`` codes per (padded) utterance, ``h``/``w`` an image level's grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LlamaForCausalLM

from priors.sequence import lm_loss
from recipes.image.config import TrainConfig
from recipes.priors.corpus import CodeCorpus


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
    model: LlamaForCausalLM,
    optimizer: torch.optim.Optimizer,
    sequences: Sequence[Sequence[int]],
    pad: int,
    train: TrainConfig,
    step: int,
) -> float:
    """One Adam step on the mean NLL per token of ``sequences`` at ``train.lr_at(step)``; returns the loss in nats."""
    for group in optimizer.param_groups:
        group["lr"] = train.lr_at(step)
    loss = lm_loss(model, sequences, pad)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss became {float(loss)} at step {step + 1}; lower train.lr.")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if train.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
    optimizer.step()
    return float(loss.detach())
