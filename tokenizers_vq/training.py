"""What one training step of any model yields: the loss to minimise and the figures to log."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A figure of a training step: one number, or one per quantizer level.
Figure = float | list[float]


@dataclass
class StepOutput:
    """One training step: the loss to minimise and the figures to log.

    ``figures`` are averaged over each log interval, lists element-wise, e.g.
    ``{"loss": 0.31, "psnr": 21.4, "usage": [0.9, 0.7]}`` (a two-level tokenizer).
    """

    loss: torch.Tensor  # scalar, of this rank's share of the batch
    figures: dict[str, Figure]
