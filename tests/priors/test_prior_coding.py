"""Lossless coding with a prior: decompress(compress(x)) == x for every kind of prior, and the size matches the NLL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prior_factories import SEQ_LAYOUT, make_pixelcnn, random_codes, random_labels

from priors import CodeLayout, SamplingConfig, TransformerConfig, TransformerPrior
from priors.base import CodePrior
from priors.coding import decode_codes, encode_codes, sequential_pass
from tokenizers_vq.entropy import CodeDecoder, CodeEncoder


def _round_trip(prior: CodePrior, levels, labels, chunk: int, end_code: int | None = None):
    encoder = CodeEncoder()
    n = levels[0].shape[0]
    for start in range(0, n, chunk):
        part = slice(start, min(start + chunk, n))
        encode_codes(prior, [g[part] for g in levels], None if labels is None else labels[part], encoder, end_code)
    payload = encoder.finish()
    decoder = CodeDecoder(payload)
    parts = [decode_codes(prior, min(chunk, n - start), decoder, end_code) for start in range(0, n, chunk)]
    decoder.finish()
    back = [torch.cat([p[0][lvl] for p in parts]) for lvl in range(len(levels))]
    back_labels = None if labels is None else torch.cat([p[1] for p in parts])
    return back, back_labels, payload, encoder


def test_round_trip_on_many_random_code_arrays(any_prior: CodePrior) -> None:
    for seed in range(3):
        levels = random_codes(any_prior.layout, 6, seed=seed)
        labels = random_labels(any_prior.layout, 6, seed=seed)
        back, back_labels, _, _ = _round_trip(any_prior, levels, labels, chunk=4)
        for original, decoded in zip(levels, back, strict=True):
            torch.testing.assert_close(decoded, original, rtol=0, atol=0)
        torch.testing.assert_close(back_labels, labels, rtol=0, atol=0)


def test_sequential_pass_scores_like_the_forward_pass(any_prior: CodePrior) -> None:
    levels = random_codes(any_prior.layout, 3, seed=7)
    labels = random_labels(any_prior.layout, 3, seed=7)
    encoder = CodeEncoder()
    encode_codes(any_prior, levels, labels, encoder)
    label_bits = 3 * math.log2(any_prior.layout.num_classes)
    with torch.no_grad():
        nll_bits = float(any_prior(levels, labels).nll.sum()) / math.log(2.0)
    assert encoder.information_bits - label_bits == pytest.approx(nll_bits, rel=1e-6)


def test_payload_is_within_one_percent_of_the_nll_on_a_realistic_batch() -> None:
    torch.manual_seed(0)
    layout = CodeLayout(shapes=[(7, 7)], codebook_sizes=[64], num_classes=10)
    prior = TransformerPrior(layout, TransformerConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32))
    prior.eval()
    # Codes drawn from the prior itself, so the NLL is what a trained prior would see on its own data.
    labels = torch.arange(200) % 10
    levels = prior.sample(labels, sampling=SamplingConfig(seed=1)).levels
    _, _, payload, encoder = _round_trip(prior, levels, labels, chunk=100)
    with torch.no_grad():
        nll_bits = float(prior(levels, labels).nll.double().sum()) / math.log(2.0) + 200 * math.log2(10)
    assert encoder.information_bits == pytest.approx(nll_bits, rel=1e-6)
    assert nll_bits <= 8 * len(payload) <= 1.01 * nll_bits + 64


def test_sequences_stop_at_their_end_code() -> None:
    prior = make_pixelcnn(SEQ_LAYOUT)
    end = SEQ_LAYOUT.codebook_sizes[0] - 1
    levels = random_codes(SEQ_LAYOUT, 5, seed=3)
    levels[0] = levels[0].clamp_max(end - 1)
    for item, length in enumerate([0, 3, 10, 23, 24]):
        levels[0][item, length:] = end
    labels = random_labels(SEQ_LAYOUT, 5)
    back, _, _, encoder = _round_trip(prior, levels, labels, chunk=5, end_code=end)
    torch.testing.assert_close(back[0], levels[0], rtol=0, atol=0)
    assert encoder.symbols == 5 + (1 + 4 + 11 + 24 + 24)  # labels, then each item up to its end code


def test_codes_after_the_end_code_are_refused() -> None:
    prior = make_pixelcnn(SEQ_LAYOUT)
    end = SEQ_LAYOUT.codebook_sizes[0] - 1
    levels = [torch.full((1, 24), end)]
    levels[0][0, 5] = 0
    levels[0][0, :2] = 1
    with pytest.raises(ValueError, match="end code"):
        encode_codes(prior, levels, random_labels(SEQ_LAYOUT, 1), CodeEncoder(), end_code=end)


def test_another_prior_does_not_decode_the_same_codes() -> None:
    prior, other = make_pixelcnn(), make_pixelcnn()
    with torch.no_grad():
        other.levels[0].head_out.weight.add_(
            torch.randn(
                other.levels[0].head_out.weight.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
            )
        )
    levels = random_codes(prior.layout, 4, seed=5)
    labels = random_labels(prior.layout, 4)
    encoder = CodeEncoder()
    encode_codes(prior, levels, labels, encoder)
    back, _ = decode_codes(other, 4, CodeDecoder(encoder.finish()))
    assert any(not torch.equal(a, b) for a, b in zip(back, levels, strict=True))


def test_sequential_pass_visits_every_position_in_raster_order(any_prior: CodePrior) -> None:
    seen: list[tuple[int, int]] = []

    def choose(level: int, position: int, logits: torch.Tensor) -> torch.Tensor:
        seen.append((level, position))
        return torch.full((logits.shape[0],), position % logits.shape[1])

    labels = random_labels(any_prior.layout, 2)
    out = sequential_pass(any_prior, 2, labels, choose)
    lengths = any_prior.layout.level_lengths
    assert seen == [(lvl, p) for lvl, m in enumerate(lengths) for p in range(m)]
    for grid, k in zip(out, any_prior.layout.codebook_sizes, strict=True):
        np.testing.assert_array_equal(grid[0].flatten().numpy(), np.arange(grid[0].numel()) % k)
