"""ResidualVectorQuantizer: every level's gradient reaches the encoder, dropout, round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tokenizers_vq import ResidualVectorQuantizer, RVQConfig, VQConfig


def make(levels=3, dropout=0.0, update="ema", **vq):
    return ResidualVectorQuantizer(
        RVQConfig(VQConfig(dim=8, codebook_size=16, update=update, **vq), num_levels=levels, dropout_prob=dropout)
    )


def test_shapes_and_straight_through():
    rvq = make()
    x = torch.randn(2, 5, 8, requires_grad=True)
    out = rvq(x)
    assert out.codes.shape == (2, 5, 3) and out.quantized.shape == x.shape
    assert out.perplexity.shape == (3,) and out.usage.shape == (3,)
    upstream = torch.randn_like(x)
    (g,) = torch.autograd.grad(out.quantized, x, upstream)
    torch.testing.assert_close(g, upstream)  # identity, not l × identity


@pytest.mark.parametrize("level", [0, 1, 2])
def test_every_levels_commitment_loss_reaches_the_encoder(level):
    """The EnCodec #25 bug left later levels' inputs constant; here each level's term has a gradient."""
    torch.manual_seed(0)
    rvq = make(levels=3)
    encoder = nn.Linear(4, 8)
    inputs = []
    handles = [lvl.register_forward_hook(lambda m, a, o: inputs.append(a[0])) for lvl in rvq.levels]
    out = rvq(encoder(torch.randn(32, 4)))
    for h in handles:
        h.remove()
    per_level = rvq.levels[level](inputs[level]).commitment_loss  # recompute that level's own term
    grads = torch.autograd.grad(per_level, [encoder.weight, inputs[level]], retain_graph=True)
    assert all(torch.count_nonzero(g) > 0 for g in grads), f"level {level}'s commitment loss does not reach the encoder"
    assert inputs[level].requires_grad
    out.loss.backward()


def test_total_commitment_gradient_matches_the_formula():
    """∂/∂x Σ_i β‖r_i − sg(q_i)‖² with r_i = x − Σ_{j<i} sg(q_j): every level contributes."""
    torch.manual_seed(1)
    rvq = make(levels=2).eval()  # eval: no codebook updates between levels
    x = torch.randn(64, 8, requires_grad=True)
    out = rvq(x)
    (g,) = torch.autograd.grad(out.commitment_loss, x)
    q = [lvl.decode(out.codes[:, i]) for i, lvl in enumerate(rvq.levels)]
    n = x.numel()
    beta = 0.25
    expected = 2 * beta / n * ((x - q[0]) + (x - q[0] - q[1]))
    torch.testing.assert_close(g, expected.detach())


def test_encode_decode_match_forward_in_eval():
    rvq = make(levels=4)
    for _ in range(3):
        rvq(torch.randn(256, 8))
    rvq.eval()
    x = torch.randn(10, 8)
    out = rvq(x)
    codes = rvq.encode(x)
    torch.testing.assert_close(codes, out.codes)
    torch.testing.assert_close(rvq.decode(codes), out.quantized, rtol=1e-5, atol=1e-5)
    err = [(x - rvq.decode(codes[..., :n])).pow(2).mean() for n in range(1, 5)]
    assert err[-1] < err[0], "more levels must reconstruct better"


def test_quantizer_dropout_varies_levels_and_is_seeded():
    def run():
        rvq = make(levels=4, dropout=1.0)
        return [rvq(torch.randn(16, 8)).codes.shape[-1] for _ in range(20)]

    first = run()
    assert len(set(first)) > 1 and all(1 <= n <= 4 for n in first)
    assert first == run()
    rvq = make(levels=4, dropout=1.0).eval()
    assert rvq(torch.randn(3, 8)).codes.shape == (3, 4)  # never drops at inference
    assert rvq.encode(torch.randn(3, 8), num_levels=2).shape == (3, 2)


def test_residual_bad_input():
    rvq = make(levels=2)
    with pytest.raises(ValueError, match="levels last"):
        rvq.decode(torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        rvq(torch.randn(3, 7))
    with pytest.raises(ValueError, match="num_levels"):
        rvq.encode(torch.randn(3, 8), num_levels=3)


def test_residual_state_dict_round_trip():
    rvq = make(levels=2, init="kmeans")
    rvq(torch.randn(100, 8))
    fresh = make(levels=2, init="kmeans")
    fresh.load_state_dict(rvq.state_dict())
    x = torch.randn(20, 8)
    torch.testing.assert_close(fresh.encode(x), rvq.encode(x))
    assert all(bool(lvl.initialized) for lvl in fresh.levels)
