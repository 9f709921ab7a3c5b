"""The end-to-end benchmark's smoke run, and the re-implemented peer VQ-VAE-2 checked against the original's layers."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest
import torch


@pytest.fixture
def load(load_benchmark: Callable[[str], ModuleType]) -> Callable[[str], ModuleType]:
    """The benchmark loader (its folder on sys.path, so ``peers`` imports too), with torch on one thread."""
    torch.set_num_threads(1)
    return load_benchmark


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out  # weight and bias, the same for a transposed convolution


def _original_count(in_ch: int = 3, ch: int = 128, blocks: int = 2, res: int = 32, d: int = 64) -> int:
    """Parameters of rosinality/vq-vae-2-pytorch's VQVAE, layer by layer as its vqvae.py lists them."""
    res_blocks = blocks * (_conv(ch, res, 3) + _conv(res, ch, 1))
    enc_b = _conv(in_ch, ch // 2, 4) + _conv(ch // 2, ch, 4) + _conv(ch, ch, 3) + res_blocks
    enc_t = _conv(ch, ch // 2, 4) + _conv(ch // 2, ch, 3) + res_blocks
    dec_t = _conv(d, ch, 3) + res_blocks + _conv(ch, d, 4)
    dec = _conv(2 * d, ch, 3) + res_blocks + _conv(ch, ch // 2, 4) + _conv(ch // 2, in_ch, 4)
    quantize_convs = _conv(ch, d, 1) + _conv(d + ch, d, 1)
    return enc_b + enc_t + dec_t + dec + quantize_convs + _conv(d, d, 4)  # last: upsample_t


def test_peer_matches_the_original_size_and_shapes(load: Callable[[str], ModuleType]) -> None:
    from peers.rosinality_vqvae import PARAMETERS, VQVAE

    model = VQVAE()
    assert sum(p.numel() for p in model.parameters()) == _original_count() == PARAMETERS == 1_388_867
    small = VQVAE(in_channel=1, channel=32, n_res_block=1, n_res_channel=8, embed_dim=16, n_embed=64)
    assert sum(p.numel() for p in small.parameters()) == _original_count(1, 32, 1, 8, 16)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    quant_t, quant_b, diff, codes_t, codes_b = small.encode(x)
    assert quant_t.shape == (2, 16, 4, 4) and quant_b.shape == (2, 16, 8, 8) and diff.shape == (1,)
    assert codes_t.shape == (2, 4, 4) and codes_b.shape == (2, 8, 8)
    assert small(x)[0].shape == x.shape


def test_peer_quantizer_is_nearest_neighbour_with_ema_in_training_only(load: Callable[[str], ModuleType]) -> None:
    from peers.rosinality_vqvae import Quantize

    torch.manual_seed(0)  # unseeded draws can hold a near-tie that the peer's expanded distance breaks otherwise
    q = Quantize(dim=4, n_embed=8)
    x = torch.randn(3, 5, 4)
    q.eval()
    before = q.embed.clone()
    quantized, diff, codes = q(x)
    brute = torch.cdist(x.reshape(-1, 4), q.embed.t()).argmin(1).view(3, 5)
    assert torch.equal(codes, brute) and torch.equal(q.embed, before)
    assert torch.allclose(quantized, q.embed.t()[codes])
    assert torch.isclose(diff, (q.embed.t()[codes] - x).pow(2).mean())
    q.train()
    q(x)
    assert not torch.equal(q.embed, before)  # the EMA update moved the codebook


def test_end_to_end_quick_json(load: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]) -> None:
    module = load("end_to_end")
    assert module.main(["--quick", "--json", "--steps", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in result["training"]["rows"]}
    assert list(rows) == ["rosinality VQVAE (peer)", "ours VQ-VAE-2", "ours VQ-VAE"]
    assert rows["rosinality VQVAE (peer)"]["code_grids"] == rows["ours VQ-VAE-2"]["code_grids"] == [[4, 4], [8, 8]]
    assert rows["ours VQ-VAE"]["code_grids"] == [[8, 8]]
    assert rows["rosinality VQVAE (peer)"]["relative_to_peer"] == 1.0
    for r in rows.values():
        assert r["images_per_second"] > 0 and r["trainable_parameters"] > 0
    assert len(result["image_tokenizing"]["rows"]) == 4 and len(result["speech_tokenizing"]["rows"]) == 5
    assert all(r["encode_images_per_s"] > 0 for r in result["image_tokenizing"]["rows"])
    assert [r["naive_seconds"] for r in result["sampling"]["rows"]] == [None, None]
    assert all(r["codes_per_second"] > 0 for r in result["sampling"]["rows"])


def test_end_to_end_rejects_an_image_size_it_cannot_halve_three_times(
    load: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    module = load("end_to_end")
    with pytest.raises(SystemExit):
        module.main(["--quick", "--image-size", "20"])
    assert "multiple of 8" in capsys.readouterr().err
