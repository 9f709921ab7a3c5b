"""SimVQ: assignments against a brute-force search of B Wᵀ, a frozen basis, a map that moves every code, #177."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tokenizers_vq import SimVQ, SimVQConfig


def test_assignments_match_numpy_reference():
    torch.manual_seed(0)
    q = SimVQ(SimVQConfig(dim=6, codebook_size=37, chunk_bytes=4096))  # several chunks of the search
    x = torch.randn(5, 41, 6)
    codebook = (q.basis.double() @ q.transform.weight.detach().double().T).numpy()
    flat = x.reshape(-1, 6).double().numpy()
    ref = ((flat[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(q.encode(x).reshape(-1).numpy(), ref)


def test_the_basis_is_frozen_state_and_the_map_learns_every_code():
    q = SimVQ(SimVQConfig(dim=4, codebook_size=32, seed=3))
    assert "basis" in dict(q.named_buffers()) and [n for n, _ in q.named_parameters()] == ["transform.weight"]
    torch.testing.assert_close(q.basis, SimVQ(SimVQConfig(dim=4, codebook_size=32, seed=3)).basis)  # seeded
    before = q.codebook().detach().clone()
    out = q(torch.randn(3, 4) + 5.0)  # three vectors: at most three codes chosen
    out.codebook_loss.backward()
    with torch.no_grad():
        q.transform.weight -= 0.1 * q.transform.weight.grad
    moved = (q.codebook().detach() - before).norm(dim=1) > 0
    assert int(moved.sum()) == 32, "one linear map moves the unused codes too: none is left behind to die"


def test_losses_commitment_weighted_by_beta_and_codebook_term_trains_only_the_map():
    x = torch.randn(64, 4, requires_grad=True)
    outs = {beta: SimVQ(SimVQConfig(dim=4, codebook_size=8, beta=beta))(x) for beta in (0.25, 1.0)}
    torch.testing.assert_close(outs[1.0].commitment_loss * 0.25, outs[0.25].commitment_loss)
    torch.testing.assert_close(outs[1.0].codebook_loss, outs[1.0].commitment_loss)  # the same distance at β = 1
    (g_x,) = torch.autograd.grad(outs[1.0].codebook_loss, x, allow_unused=True)
    assert g_x is None or torch.count_nonzero(g_x) == 0, "the codebook term must not move the encoder"


@pytest.mark.parametrize("gradient", ["straight_through", "rotation"])
def test_encode_sequence_without_penalty_is_encode(gradient):
    q = SimVQ(SimVQConfig(dim=4, codebook_size=8, gradient=gradient))
    x = torch.randn(2, 30, 4)
    assert torch.equal(q.encode_sequence(x, 0.0), q.encode(x))
    runs = (q.encode_sequence(x, 50.0).diff(dim=1) != 0).sum()
    assert runs < (q.encode(x).diff(dim=1) != 0).sum()


def _train(beta: float, gradient: str, steps: int = 200) -> float:
    """A small autoencoder through SimVQ; returns the final mean squared distance of the encoder's vectors to their codes."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    decoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
    q = SimVQ(SimVQConfig(dim=8, codebook_size=64, beta=beta, gradient=gradient))
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters(), *q.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(256, 16, generator=gen)
        z = encoder(x)
        out = q(z)
        loss = (decoder(out.quantized) - x).square().mean() + out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float((z.detach() - q.decode(out.codes).detach()).square().mean())


def test_rotation_trick_keeps_the_encoder_at_its_codes_only_with_the_commitment_term():
    """vector-quantize-pytorch #177: SimVQ with the rotation trick and without the input's half of the commitment
    loss ran with a commitment loss far above the straight-through run's. The rotation's gradient only turns and
    rescales what reaches the code, so nothing else holds the encoder to its codes; SimVQ keeps β‖z − sg(q)‖²."""
    kept, dropped = _train(0.25, "rotation"), _train(0.0, "rotation")
    assert kept < 0.05 and dropped > 10 * kept, (kept, dropped)
    assert _train(0.0, "straight_through") > 100 * kept  # and the straight-through copy drifts without bound
