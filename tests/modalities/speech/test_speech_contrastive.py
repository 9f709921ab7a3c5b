"""The CPC auxiliary loss: against a loop-by-loop reference, its gradients, and what it learns."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modalities.speech.contrastive import FuturePrediction


def _reference(module: FuturePrediction, z: torch.Tensor) -> torch.Tensor:
    """InfoNCE written out one context frame at a time."""
    b, n, d = z.shape
    c, _ = module.context(z)
    steps = min(module.steps, n - 1)
    per_step = []
    for k in range(steps):
        w = module.predict.weight[k * d : (k + 1) * d]  # (d, h): the map of step k + 1
        bias = module.predict.bias[k * d : (k + 1) * d]
        terms = []
        for i in range(b):
            for t in range(n - k - 1):
                prediction = w @ c[i, t] + bias  # (d,)
                scores = z[i] @ prediction  # (n,): every frame of the same sequence is a candidate
                terms.append(-F.log_softmax(scores, dim=0)[t + k + 1])
        per_step.append(torch.stack(terms).mean())
    return torch.stack(per_step).mean()


def test_matches_the_reference_and_trains_its_input() -> None:
    torch.manual_seed(0)
    module = FuturePrediction(dim=4, context=6, steps=3)
    z = torch.randn(2, 7, 4, requires_grad=True)
    loss = module(z)
    torch.testing.assert_close(loss, _reference(module, z))
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert module.context.weight_ih_l0.grad.abs().sum() > 0 and module.predict.weight.grad.abs().sum() > 0


def test_short_sequences_and_bad_shapes() -> None:
    module = FuturePrediction(dim=4, context=6, steps=5)
    assert module(torch.randn(2, 1, 4)).item() == 0.0  # nothing to predict
    assert torch.isfinite(module(torch.randn(2, 3, 4)))  # fewer frames than steps: predicts what exists
    with pytest.raises(ValueError, match=r"\(b, n, d\)"):
        module(torch.randn(4, 4))
    with pytest.raises(ValueError, match="steps"):
        FuturePrediction(dim=4, context=6, steps=0)


def test_learns_a_predictable_sequence() -> None:
    # A cycle of 8 distinct vectors: the next one is fully determined, so the loss falls far below chance.
    torch.manual_seed(0)
    symbols = torch.randn(8, 4)
    z = symbols[torch.arange(24) % 8][None].repeat(2, 1, 1)  # (2, 24, 4)
    module = FuturePrediction(dim=4, context=16, steps=2)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        loss = module(z)
        loss.backward()
        optimizer.step()
    # Each true future has two twins (the cycle repeats three times in 24 frames): the floor is log 3.
    with torch.no_grad():
        assert float(module(z)) < math.log(3) + 0.3 < math.log(24)
