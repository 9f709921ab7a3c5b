"""Bits per code and bits/dim against a hand computation; the discretised Gaussian decoder term."""

from __future__ import annotations

import math

import pytest
import torch
from prior_factories import GRID_LAYOUT, make_pixelcnn, make_transformer, random_codes, random_labels

from priors import discretized_gaussian_bits, evaluate_likelihood


@pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])
def test_bits_per_code_and_per_dim_match_a_hand_computation(kind):
    prior = make_pixelcnn() if kind == "pixelcnn" else make_transformer()
    batches = [(random_codes(GRID_LAYOUT, 3, seed=s), random_labels(GRID_LAYOUT, 3, seed=s)) for s in range(2)]
    dims = 24 * 32  # e.g. a 24×32 grey image behind a 3×4 + 6×8 hierarchy
    result = evaluate_likelihood(prior, batches, dims_per_item=dims)

    # By hand: -log2 softmax(logits)[code] at every position, from plain Python floats.
    total_bits, level_bits = 0.0, [0.0, 0.0]
    with torch.no_grad():
        for levels, labels in batches:
            logits = prior(levels, labels).logits
            for lvl, (lg, codes) in enumerate(zip(logits, levels, strict=True)):
                for row, code in zip(lg.reshape(-1, lg.shape[-1]).tolist(), codes.reshape(-1).tolist(), strict=True):
                    log_z = math.log(sum(math.exp(v) for v in row))
                    bits = (log_z - row[code]) / math.log(2)
                    total_bits += bits
                    level_bits[lvl] += bits
    items = 6
    assert result.num_items == items
    assert result.bits_per_item == pytest.approx(total_bits / items, rel=1e-9)
    assert result.bits_per_code == pytest.approx(total_bits / (items * GRID_LAYOUT.codes_per_item), rel=1e-9)
    for lvl, length in enumerate(GRID_LAYOUT.level_lengths):
        assert result.level_bits_per_code[lvl] == pytest.approx(level_bits[lvl] / (items * length), rel=1e-9)
    assert result.bits_per_dim == pytest.approx(total_bits / items / dims, rel=1e-9)


def test_uniform_prior_costs_log2_k_bits_per_code():
    prior = make_pixelcnn()
    with torch.no_grad():  # zero output weights: every level's logits are all equal
        for net in prior.levels:
            net.head_out.weight.zero_()
            net.head_out.bias.zero_()
    result = evaluate_likelihood(prior, [(random_codes(GRID_LAYOUT, 2), random_labels(GRID_LAYOUT, 2))])
    assert result.level_bits_per_code == pytest.approx([math.log2(7), math.log2(5)])
    assert result.bits_per_dim is None


def test_no_items_is_an_error():
    with pytest.raises(ValueError, match="no items"):
        evaluate_likelihood(make_pixelcnn(), [])


def test_discretized_gaussian_is_a_distribution_over_256_levels():
    levels = torch.arange(256, dtype=torch.uint8).reshape(256, 1, 1, 1)
    for mean in (0.0, 0.3, 1.0):
        bits = discretized_gaussian_bits(levels, torch.full((256, 1, 1, 1), mean), sigma=7.5)
        assert float((2.0**-bits).sum()) == pytest.approx(1.0, abs=1e-9)


def test_discretized_gaussian_matches_the_formula_for_one_pixel():
    x = torch.tensor([[[[100]]]], dtype=torch.uint8)
    mean = torch.tensor([[[[102 / 255]]]])
    sigma = 3.0
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    expected = -math.log2(phi((100.5 - 102) / sigma) - phi((99.5 - 102) / sigma))
    assert float(discretized_gaussian_bits(x, mean, sigma)[0]) == pytest.approx(expected, rel=1e-6)
