"""FiniteScalarQuantizer: codes against a brute-force search of its implicit grid, mixed-radix codes, residual FSQ."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tokenizers_vq import FiniteScalarQuantizer, FSQConfig, ResidualVectorQuantizer, RVQConfig
from tokenizers_vq.fsq import BOUND_EPS


def grid_reference(z: np.ndarray, levels: list[int]) -> np.ndarray:
    """The paper's quantizer written plainly: bound each dimension, then the index of the nearest of all
    ∏L grid points (enumerated, dimension 0 least significant)."""
    lv = np.array(levels, dtype=np.float64)
    half = (lv - 1) * (1 + BOUND_EPS) / 2
    offset = np.where(lv % 2 == 0, 0.5, 0.0)
    bounded = np.tanh(z + np.arctanh(offset / half)) * half - offset  # (n, c)
    points = np.array(list(itertools.product(*[range(n) for n in reversed(levels)])))[:, ::-1]  # (K, c) digits
    grid = points - (lv // 2)
    index = (points * np.cumprod([1, *levels[:-1]])).sum(1)
    nearest = ((bounded[:, None, :] - grid[None]) ** 2).sum(-1).argmin(1)
    return index[nearest]


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [3, 4], [7, 6, 3]])
def test_codes_match_a_brute_force_search_of_the_grid(levels):
    fsq = FiniteScalarQuantizer(FSQConfig(dim=len(levels), levels=levels))  # no projection: z is the input
    z = torch.randn(2000, len(levels), dtype=torch.float64) * 2
    codes = fsq.encode(z)
    np.testing.assert_array_equal(codes.numpy(), grid_reference(z.numpy(), levels))


def test_every_code_decodes_to_its_mixed_radix_grid_point():
    fsq = FiniteScalarQuantizer(FSQConfig(dim=3, levels=[8, 5, 3]))
    points = fsq.decode(torch.arange(fsq.codebook_size))  # (120, 3), each dimension in [-1, 1]
    digits = [(i % 8, i // 8 % 5, i // 40) for i in range(120)]  # dimension 0 least significant
    want = torch.tensor([[(a - 4) / 4, (b - 2) / 2, (c - 1) / 1] for a, b, c in digits])
    torch.testing.assert_close(points, want)


def test_straight_through_rounding_and_bounded_outputs():
    fsq = FiniteScalarQuantizer(FSQConfig(dim=2, levels=[5, 5]))
    z = torch.tensor([[0.1, -30.0], [30.0, 0.3]], requires_grad=True)
    out = fsq(z)
    torch.testing.assert_close(out.quantized.detach(), torch.tensor([[0.0, -1.0], [1.0, 0.5]]))
    (g,) = torch.autograd.grad(out.quantized.sum(), z)
    torch.testing.assert_close(
        g, (1 - torch.tanh(z.detach()) ** 2) * 2.002 / 2
    )  # d/dz of the bounded tanh, ÷ half width
    assert float(out.loss) == 0.0 and not out.loss.requires_grad  # no codebook: nothing to commit to


def test_residual_fsq_levels_refine_the_reconstruction():
    torch.manual_seed(0)
    rfsq = ResidualVectorQuantizer(RVQConfig(FSQConfig(dim=4, levels=[5, 5, 5, 5]), num_levels=3)).eval()
    x = torch.rand(500, 4) * 1.6 - 0.8  # inside the first level's range
    codes = rfsq.encode(x)
    errors = [float((x - rfsq.decode(codes[..., :n])).square().mean()) for n in (1, 2, 3)]
    assert errors[1] < errors[0] / 4 and errors[2] < errors[1] / 4, errors
    assert [lvl.scale.tolist() for lvl in rfsq.levels] == [[1.0] * 4, [0.25] * 4, [0.0625] * 4]


def test_usage_tracks_codes_and_counts_dead_ones():
    fsq = FiniteScalarQuantizer(FSQConfig(dim=2, levels=[3, 3]))
    for _ in range(40):
        out = fsq(torch.tensor([[5.0, 5.0], [-5.0, -5.0]]).repeat(8, 1))  # only two of nine codes
    assert float(out.usage) == pytest.approx(2 / 9) and float(out.perplexity) == pytest.approx(2.0)
    assert int(out.dead_codes) == 7
