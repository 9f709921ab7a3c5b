"""Causality: the prediction for code i never depends on codes at positions >= i (every model, by perturbation)."""

from __future__ import annotations

import torch
from prior_factories import GRID_LAYOUT, make_pixelcnn, random_codes, random_labels

from priors.base import CodePrior


def _flat_logits(prior: CodePrior, levels, labels) -> list[torch.Tensor]:
    """Logits of each flattened position, as a list of (b, K_level) tensors."""
    with torch.no_grad():
        out = prior(levels, labels)
    return [row for lg in out.logits for row in lg.flatten(1, -2).unbind(1)]


def _set_flat(levels, position: int, value_fn) -> list[torch.Tensor]:
    """A copy of ``levels`` with flattened ``position`` changed (to another valid code)."""
    levels = [g.clone() for g in levels]
    for g in levels:
        flat = g.view(g.shape[0], -1)
        if position < flat.shape[1]:
            flat[:, position] = value_fn(flat[:, position])
            return levels
        position -= flat.shape[1]
    raise IndexError(position)


def test_changing_a_code_never_changes_earlier_or_own_predictions(any_prior):
    layout = any_prior.layout
    n = layout.codes_per_item
    base_levels, base_labels = random_codes(layout, 1), random_labels(layout, 1)
    # Item 0 is the base; item i + 1 has code i changed (to the next valid code). One forward pass for all.
    flat = torch.cat([g.flatten(1) for g in base_levels], dim=1).repeat(n + 1, 1)  # (n + 1, n)
    sizes = torch.tensor(
        [k for k, m in zip(layout.codebook_sizes, layout.level_lengths, strict=True) for _ in range(m)]
    )
    idx = torch.arange(n)
    flat[idx + 1, idx] = (flat[idx + 1, idx] + 1) % sizes
    levels = [
        p.reshape(n + 1, *shape)
        for p, shape in zip(torch.split(flat, layout.level_lengths, dim=1), layout.shapes, strict=True)
    ]
    labels = None if base_labels is None else base_labels.repeat(n + 1)
    logits = _flat_logits(any_prior, levels, labels)  # n tensors of (n + 1, K)
    influenced_later = 0
    for i in range(n):
        for j in range(i + 1):
            assert torch.allclose(logits[j][i + 1], logits[j][0], atol=1e-12, rtol=0), (
                f"changing code {i} changed the prediction at position {j} <= {i}"
            )
        influenced_later += any(not torch.allclose(logits[j][i + 1], logits[j][0], atol=1e-9) for j in range(i + 1, n))
    # The check has teeth: almost every code does influence some later prediction.
    assert influenced_later >= n - 2


def test_condition_changes_predictions(any_prior):
    layout = any_prior.layout
    levels = random_codes(layout, 2)
    a = _flat_logits(any_prior, levels, torch.tensor([0, 0]))
    b = _flat_logits(any_prior, levels, torch.tensor([1, 1]))
    assert not torch.allclose(a[0], b[0]), "the class label must reach the very first prediction"


def test_gated_pixelcnn_has_no_blind_spot():
    """Every earlier position of a grid within the receptive field reaches the last prediction, up-right ones too."""
    prior = make_pixelcnn(GRID_LAYOUT, attention_every=0)  # no attention: the stacks alone must cover it
    top = prior.levels[0]
    H, W = GRID_LAYOUT.shapes[0]
    codes = random_codes(GRID_LAYOUT, 1)[0]
    labels = torch.tensor([1])
    codes = codes.double().requires_grad_(False).long()
    emb = top.embed.weight
    # Gradient of the last position's logits with respect to each input embedding.
    x = emb[codes].detach().requires_grad_(True)  # (1, H, W, d)
    original = top.embed.forward
    top.embed.forward = lambda _codes: x
    try:
        logits = top(codes, labels)
    finally:
        top.embed.forward = original
    logits[0, :, H - 1, 1].sum().backward()
    reach = x.grad.abs().sum(-1)[0]  # (H, W)
    target = (H - 1) * W + 1
    for pos in range(H * W):
        i, j = divmod(pos, W)
        if pos < target:
            assert reach[i, j] > 0, f"position ({i}, {j}) is in the blind spot of ({H - 1}, 1)"
        else:
            assert reach[i, j] == 0, f"position ({i}, {j}) leaks into the prediction at ({H - 1}, 1)"
