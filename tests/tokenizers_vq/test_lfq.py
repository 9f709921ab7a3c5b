"""LookupFreeQuantizer: sign-bit codes, entropies against a brute-force softmax, the batch term against collapse, BSQ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tokenizers_vq import LFQConfig, LookupFreeQuantizer


def test_codes_are_the_sign_bits_most_significant_first():
    lfq = LookupFreeQuantizer(LFQConfig(dim=3, codebook_size=8))  # no projection
    x = torch.tensor([[1.0, -2.0, 0.5], [-1.0, -1.0, -1.0], [0.1, 0.1, 0.1]])
    assert lfq.encode(x).tolist() == [0b101, 0b000, 0b111]
    torch.testing.assert_close(lfq.decode(torch.tensor([5, 0])), torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, -1.0]]))


@pytest.mark.parametrize("geometry", ["cube", "sphere"])
def test_codes_are_the_nearest_of_all_codes(geometry):
    lfq = LookupFreeQuantizer(LFQConfig(dim=5, codebook_size=32, geometry=geometry))
    x = torch.randn(300, 5, dtype=torch.float64)
    z = x / x.norm(dim=1, keepdim=True) if geometry == "sphere" else x
    book = lfq.decode(torch.arange(32)).double()  # (32, 5)
    reference = torch.cdist(z, book).argmin(1)
    assert torch.equal(lfq.encode(x), reference)
    if geometry == "sphere":
        torch.testing.assert_close(book.norm(dim=1), torch.ones(32, dtype=torch.float64))


@pytest.mark.parametrize("geometry", ["cube", "sphere"])
@pytest.mark.parametrize("rows", [7, 300])  # one piece, and several (ENTROPY_CHUNK_ELEMENTS shrunk below)
def test_entropy_terms_match_a_brute_force_softmax_over_all_codes(geometry, rows, monkeypatch):
    import tokenizers_vq.lfq as lfq_module

    monkeypatch.setattr(lfq_module, "ENTROPY_CHUNK_ELEMENTS", 16 * 40)  # 40 rows per piece
    cfg = LFQConfig(dim=4, codebook_size=16, geometry=geometry, temperature=0.5, diversity=0.7, entropy_weight=2.0)
    lfq = LookupFreeQuantizer(cfg)
    x = torch.randn(rows, 4, dtype=torch.float64) * 0.3
    out = lfq(x)
    z = x / x.norm(dim=1, keepdim=True) if geometry == "sphere" else x
    book = lfq.decode(torch.arange(16)).double()
    p = torch.softmax(-torch.cdist(z, book).square() / 0.5, dim=1).numpy()  # (n, 16)
    per_sample = -(p * np.log(p)).sum(1).mean()
    mean = p.mean(0)
    batch = -(mean * np.log(mean)).sum()
    assert float(out.entropy_loss) == pytest.approx(2.0 * (per_sample - 0.7 * batch), rel=1e-5, abs=1e-5)
    assert float(out.loss) == pytest.approx(float(out.entropy_loss + out.commitment_loss))


def test_no_entropy_term_outside_training():
    lfq = LookupFreeQuantizer(LFQConfig(dim=4, codebook_size=16)).eval()
    assert float(lfq(torch.randn(10, 4)).entropy_loss) == 0.0


@pytest.mark.parametrize("geometry", ["cube", "sphere"])
def test_the_batch_entropy_term_is_what_prevents_collapse(geometry):
    """Pitfall: the per-sample term alone only makes each input confident; started on one code (every
    input's bits positive), the encoder stays on a handful. The batch term spreads it over the codebook."""
    perplexity = {}
    for diversity in (0.0, 1.0):
        torch.manual_seed(0)
        encoder = nn.Linear(8, 6)
        with torch.no_grad():
            encoder.bias.fill_(1.0)  # every bit starts set: one code for all
        lfq = LookupFreeQuantizer(
            LFQConfig(dim=6, codebook_size=64, geometry=geometry, diversity=diversity, beta=0.0, entropy_weight=1.0)
        )
        opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        for _ in range(150):
            out = lfq(encoder(torch.randn(512, 8, generator=gen)))
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        lfq.eval()
        perplexity[diversity] = float(lfq(encoder(torch.randn(4096, 8, generator=gen))).perplexity)
    assert perplexity[0.0] < 5, "without the batch term the codes stay collapsed"
    assert perplexity[1.0] > 45, "with it the 64 codes are used nearly evenly"


def test_residual_levels_halve_the_code_scale():
    from tokenizers_vq import ResidualVectorQuantizer, RVQConfig

    rlfq = ResidualVectorQuantizer(RVQConfig(LFQConfig(dim=3, codebook_size=8), num_levels=3))
    assert [lvl.side for lvl in rlfq.levels] == [1.0, 0.5, 0.25]
    x = torch.tensor([[0.6, -0.3, 0.9]])
    torch.testing.assert_close(rlfq.eval()(x).quantized, torch.tensor([[0.75, -0.25, 0.75]]))
