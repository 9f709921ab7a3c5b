"""Duration-penalised code search: the dynamic programme finds the cheapest code sequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers_vq import ResidualVectorQuantizer, RVQConfig, VectorQuantizer, VQConfig
from tokenizers_vq.search import penalized_codes


def total_cost(distances: np.ndarray, codes, penalty: float) -> float:
    changes = sum(a != b for a, b in itertools.pairwise(codes))
    return float(sum(distances[t, c] for t, c in enumerate(codes)) + penalty * changes)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    k=st.integers(1, 3),
    penalty=st.floats(0.0, 3.0),
    seed=st.integers(0, 10_000),
)
def test_codes_have_the_least_cost_of_all_sequences(n: int, k: int, penalty: float, seed: int) -> None:
    d = np.random.default_rng(seed).random((n, k)).astype(np.float32)
    codes = penalized_codes(torch.from_numpy(d)[None], penalty)[0].tolist()
    best = min(total_cost(d, seq, penalty) for seq in itertools.product(range(k), repeat=n))
    assert total_cost(d, codes, penalty) == pytest.approx(best, abs=1e-5)


def test_no_penalty_is_the_nearest_code_and_a_huge_one_a_single_code() -> None:
    d = torch.rand(3, 40, 7)
    assert torch.equal(penalized_codes(d, 0.0), d.argmin(-1))
    one = penalized_codes(d, 1e6)
    assert torch.equal(one, d.sum(1).argmin(-1)[:, None].expand(3, 40))  # the best constant sequence per row


def test_a_penalty_removes_short_blips_and_is_per_row() -> None:
    d = torch.tensor([[0.0, 1.0]] * 5 + [[0.6, 0.0]] + [[0.0, 1.0]] * 5)[None].repeat(2, 1, 1)  # (2, 11, 2)
    codes = penalized_codes(d, torch.tensor([0.1, 1.0]))
    assert codes[0].tolist() == [0] * 5 + [1] + [0] * 5  # cheap changes: the blip stays
    assert codes[1].tolist() == [0] * 11  # two changes cost 2.0 > 0.6: the blip goes


def test_relative_penalty_is_in_units_of_the_mean_quantization_error() -> None:
    d = torch.rand(2, 30, 5) * torch.tensor([1.0, 100.0])[:, None, None]
    scale = d.min(-1).values.mean(1)
    torch.testing.assert_close(penalized_codes(d, 1.5, relative=True), penalized_codes(d, 1.5 * scale))
    # scaling the distances scales the penalty with them: the same codes
    assert torch.equal(penalized_codes(d, 1.5, relative=True), penalized_codes(d * 9, 1.5, relative=True))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\(b, n, k\)"):
        penalized_codes(torch.rand(5, 3), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        penalized_codes(torch.rand(1, 5, 3), -1.0)
    with pytest.raises(ValueError, match="2 of them"):
        penalized_codes(torch.rand(2, 5, 3), torch.ones(3))
    assert penalized_codes(torch.rand(2, 0, 3), 1.0).shape == (2, 0)


def test_vector_quantizer_encode_sequence() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).eval()
    vq(torch.randn(64, 4))  # k-means initialisation
    x = torch.randn(2, 50, 4)
    assert torch.equal(vq.encode_sequence(x, 0.0), vq.encode(x))
    smooth = vq.encode_sequence(x, 2.0)
    changes = lambda c: int((c[:, 1:] != c[:, :-1]).sum())  # noqa: E731
    assert smooth.shape == (2, 50) and changes(smooth) < changes(vq.encode(x))
    with pytest.raises(ValueError, match=r"sequences \(b, n, 4\)"):
        vq.encode_sequence(x[0], 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        vq.encode_sequence(x, -0.5)


def test_residual_encode_sequence_penalises_the_first_level() -> None:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(RVQConfig(VQConfig(dim=4, codebook_size=8), num_levels=3)).eval()
    rvq(torch.randn(64, 4))
    x = torch.randn(1, 30, 4)
    codes = rvq.encode_sequence(x, 2.0)
    assert codes.shape == (1, 30, 3)
    assert torch.equal(codes[..., 0], rvq.levels[0].encode_sequence(x, 2.0))
    residual = x - rvq.levels[0].decode(codes[..., 0])
    assert torch.equal(codes[..., 1], rvq.levels[1].encode(residual))
    assert torch.equal(rvq.encode_sequence(x, 0.0), rvq.encode(x))
    assert rvq.encode_sequence(x, 1.0, num_levels=2).shape == (1, 30, 2)
