"""A few Adam steps on the bundled digits lower the loss: the pieces train together."""

from __future__ import annotations

import pytest
import torch

from modalities.image import load_image_dataset


@pytest.mark.parametrize(
    "architecture", [{"kind": "vqvae", "downsample": 4}, {"kind": "vqvae2", "num_levels": 2, "downsample": 4}]
)
def test_few_steps_on_digits_reduce_the_loss(make_tokenizer, architecture):
    data = load_image_dataset("digits", "train")
    tok = make_tokenizer(hidden_channels=32, res_channels=16, codebook_size=32, code_dim=16, **architecture).train()
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(20):
        batch = data.images[torch.randint(len(data), (32,), generator=gen)]
        out = tok(tok.preprocess(batch))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.reconstruction_loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, f"reconstruction loss went from {first:.3f} to {last:.3f}"
    assert all(q.initialized for q in tok.quantizers)  # k-means ran on the first training batch
