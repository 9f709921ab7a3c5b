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
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these first steps
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
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ValueError(f"train.adam_beta2 must be in (0, 1); got {self.adam_beta2}.")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based); a function of the step alone, so resumes match."""
        scale = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "cosine":
            scale *= 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return self.lr * scale
