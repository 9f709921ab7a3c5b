"""Contrastive predictive coding of code vectors: an auxiliary loss that makes speech codes phone-like.

CPC (van den Oord, Li and Vinyals 2018) as VQ-CPC uses it for acoustic units (van Niekerk, Nortje
and Kamper 2020), here on the encoder's vectors just before they are quantized: a causal context
network summarises the vectors up to frame ``t`` and, for each of the next ``steps`` frames, a
linear map predicts that frame's vector; the InfoNCE loss asks the prediction to pick the true
future vector out of the other frames of the same sequence. Negatives from the same utterance share
its speaker and channel, so only the content (which sound comes next) tells them apart.

Dimension legend: ``b`` batch, ``n`` code frames, ``d`` code dimension, ``h`` context channels,
``k`` prediction steps, ``s`` candidate frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn


class FuturePrediction(nn.Module):
    """InfoNCE loss of predicting code vectors 1..``steps`` frames ahead from a causal GRU context.

    Shapes: ``z`` ``(b, n, d)`` → a scalar loss, the mean over steps of the cross-entropy of each
    prediction against all ``n`` frames of its own sequence; e.g. ``(16, 100, 64)`` with
    ``steps=6``: 6 × 16 × ~97 classifications among 100 frames, whose chance loss is ``log 100``.

    Args:
        dim: code dimension ``d``.
        context: GRU channels ``h``.
        steps: how many future frames each context predicts (6 at 50 codes/s looks 120 ms ahead).
    """

    def __init__(self, dim: int, context: int, steps: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"FuturePrediction needs steps >= 1; got {steps}.")
        self.steps = steps
        self.context = nn.GRU(dim, context, batch_first=True)
        self.predict = nn.Linear(context, steps * dim)  # the k step-specific maps W_k as one matrix

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 3:
            raise ValueError(f"FuturePrediction takes code vectors (b, n, d); got shape {tuple(z.shape)}.")
        b, n, _ = z.shape
        steps = min(self.steps, n - 1)
        if steps < 1:
            return z.new_zeros(())  # a one-frame sequence has no future to predict
        c, _ = self.context(z)  # (b, n, h)
        predictions = rearrange(self.predict(c), "b n (k d) -> b k n d", k=self.steps)[:, :steps]
        logits = einsum(predictions.float(), z.float(), "b k t d, b s d -> b k t s")  # (b, k, n, n)
        losses = []
        for k in range(steps):
            # Context t predicts frame t + k + 1; the last k + 1 contexts have no such frame.
            rows = logits[:, k, : n - k - 1]  # (b, n - k - 1, s)
            target = torch.arange(k + 1, n, device=z.device).expand(b, -1)  # (b, n - k - 1)
            losses.append(F.cross_entropy(rearrange(rows, "b t s -> (b t) s"), target.reshape(-1)))
        return torch.stack(losses).mean()
