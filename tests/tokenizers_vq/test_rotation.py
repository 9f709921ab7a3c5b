"""The rotation trick: the code forward, the rotated and rescaled gradient backward; as VectorQuantizer's option."""

from __future__ import annotations

import pytest
import torch

from tokenizers_vq import VectorQuantizer, VQConfig
from tokenizers_vq.rotation import rotation_trick, straight_through


def rotation_matrix(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """‖q‖/‖x‖ · R with R = I − 2wwᵀ + 2vuᵀ as an explicit d × d matrix (the paper's eq. 4.2)."""
    u, v = x / x.norm(), q / q.norm()
    w = (u + v) / (u + v).norm()
    eye = torch.eye(len(x), dtype=x.dtype)
    return q.norm() / x.norm() * (eye - 2 * torch.outer(w, w) + 2 * torch.outer(v, u))


def test_forward_is_the_code_and_the_jacobian_is_the_scaled_rotation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    q = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    out = rotation_trick(x, q)
    torch.testing.assert_close(out, q, rtol=0, atol=0)
    for i in range(5):
        upstream = torch.zeros(5, 4, dtype=torch.float64)
        for j in range(4):
            upstream.zero_()
            upstream[i, j] = 1.0
            (g,) = torch.autograd.grad(out, x, upstream, retain_graph=True)
            torch.testing.assert_close(g[i], rotation_matrix(x[i].detach(), q[i])[j])  # row j of ∂q̃/∂x
            assert torch.count_nonzero(torch.cat([g[:i], g[i + 1 :]])) == 0  # vectors do not mix
        m = rotation_matrix(x[i].detach(), q[i])
        torch.testing.assert_close(m @ x[i].detach(), q[i])  # it does take x onto q


def test_parallel_vectors_only_rescale_and_degenerate_ones_copy():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    q = torch.tensor([[3.0, 6.0], [1.0, 1.0], [-2.0, 0.0]])  # same direction ×3, zero input, opposite direction
    out = rotation_trick(x, q)
    torch.testing.assert_close(out, q)
    (g,) = torch.autograd.grad(out, x, torch.ones_like(x))
    torch.testing.assert_close(g, torch.tensor([[3.0, 3.0], [1.0, 1.0], [-2.0, 2.0]]))  # ×3; copy; reflected ×2


def test_straight_through_is_the_identity():
    x = torch.randn(3, 4, requires_grad=True)
    q = torch.randn(3, 4)
    up = torch.randn(3, 4)
    (g,) = torch.autograd.grad(straight_through(x, q), x, up)
    torch.testing.assert_close(g, up)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_vector_quantizer_with_the_rotation_trick(distance):
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, gradient="rotation", distance=distance, init="random"))
    x = torch.randn(50, 4, requires_grad=True)
    out = vq.eval()(x)
    torch.testing.assert_close(out.quantized, vq.decode(out.codes))  # same codes and vectors as without it
    plain = VectorQuantizer(VQConfig(dim=4, codebook_size=16, distance=distance, init="random")).eval()
    assert torch.equal(plain(x).codes, out.codes)
    up = torch.randn(50, 4)
    (g,) = torch.autograd.grad(out.quantized, x, up)
    if distance == "euclidean":  # the rotation acts on the vectors themselves
        q = vq.decode(out.codes)
        want = torch.stack([rotation_matrix(x[i].detach(), q[i]).T @ up[i] for i in range(50)])
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(g, up), "not the straight-through copy"
