"""The ``train`` section every training recipe shares: steps, batch, Adam, the learning-rate schedule, the budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recipes.engine.config import check_positive


@dataclass
class TrainConfig:
    """Step-based Adam training with periodic evaluation and checkpoints."""

    steps: int = 2000  # optimizer steps in total; a resumed run continues up to this count
    batch_size: int = 64
    lr: float = 3e-4
    schedule: str = "constant"  # "constant", or "cosine": decays to 0 at train.steps (set steps to fit the budget)
    warmup_steps: int = 0  # linear warm-up to lr over these first steps (fewer than steps); the cosine follows it
    weight_decay: float = 0.0
    adam_beta2: float = 0.999  # Adam's second-moment decay; 0.99 adapts faster, which helps small batches
    grad_clip: float | None = 1.0  # max global gradient norm; null: no clipping
    max_minutes: float | None = None  # wall-clock budget per invocation; stops early with a checkpoint
    log_every: int = 25  # steps between training rows of metrics.jsonl (means over the interval)
    eval_every: int = 500  # steps between evaluations on the held-out split (and one at the end)
    eval_images: int | None = 512  # evaluate on the first N held-out images during training; null: all
    checkpoint_every: int = 200  # steps between checkpoints (and one at the end)

    def __post_init__(self) -> None:
        check_positive("train", self, "steps", "batch_size", "lr", "log_every", "eval_every", "checkpoint_every")
        check_positive("train", self, "grad_clip", "max_minutes", "eval_images", optional=True)
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0; got {self.weight_decay}.")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"train.schedule must be 'constant' or 'cosine'; got {self.schedule!r}.")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0; got {self.warmup_steps}.")
        if self.warmup_steps and self.warmup_steps >= self.steps:
            raise ValueError(
                f"train.warmup_steps ({self.warmup_steps}) must be fewer than train.steps ({self.steps}), or the "
                f"rate never reaches train.lr; pass e.g. train.warmup_steps={self.steps // 10}."
            )
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ValueError(f"train.adam_beta2 must be in (0, 1); got {self.adam_beta2}.")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based); a function of the step alone, so resumes match.

        As nanoGPT's: a linear warm-up reaches ``lr`` at step ``warmup_steps - 1``; the cosine then
        decays from ``lr`` to 0 over the remaining steps. E.g. ``steps=100, warmup_steps=10, lr=1e-3``:
        1e-4 at step 0, 1e-3 at steps 9 and 10, 5e-4 at step 55, 0 at step 100.
        """
        if step < self.warmup_steps:
            # The warm-up is not multiplied by the cosine: that would peak below lr (26% of it for
            # warmup_steps = steps = 200).
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "cosine":
            progress = min(1.0, (step - self.warmup_steps) / (self.steps - self.warmup_steps))
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr
