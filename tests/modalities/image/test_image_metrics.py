"""Reconstruction metrics against known values, and a tokenizer evaluation end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from modalities.image import ImageCodes, evaluate_tokenizer, load_image_dataset, reconstruction_metrics
from modalities.image.metrics import PSNR_CAP_DB


def test_constant_offset_has_known_mse_and_psnr():
    originals = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2
    m = reconstruction_metrics(originals, originals + 0.1)
    assert m.mse == pytest.approx(0.01, rel=1e-4)
    assert m.psnr == pytest.approx(20.0, abs=1e-3)  # 10·log10(1 / 0.01)
    assert 0.0 < m.ssim < 1.0


def test_gaussian_noise_psnr():
    gen = torch.Generator().manual_seed(0)
    originals = torch.full((8, 1, 64, 64), 0.5)
    noisy = originals + 0.05 * torch.randn(originals.shape, generator=gen)  # |noise| < 0.5: no clipping
    assert reconstruction_metrics(originals, noisy).psnr == pytest.approx(20 * math.log10(1 / 0.05), abs=0.1)


def test_identical_images():
    images = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    m = reconstruction_metrics(images, images)
    assert m.to_dict() == {"mse": 0.0, "psnr": PSNR_CAP_DB, "ssim": pytest.approx(1.0)}


@pytest.mark.parametrize("size", [4, 8, 16])
def test_ssim_of_flat_images_is_the_luminance_term(size):
    # For constant images SSIM reduces to (2ab + C1) / (a² + b² + C1) with C1 = (0.01 · range)²;
    # sizes below the 11×11 window use a smaller one. The tolerance covers float32 cancellation in the
    # covariance E[xy] − E[x]E[y], which the small C2 = (0.03)² turns into ~1e-4 of SSIM.
    a, b, c1 = 0.5, 0.6, 0.01**2
    m = reconstruction_metrics(torch.full((1, 1, size, size), a), torch.full((1, 1, size, size), b))
    assert m.ssim == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=2e-4)


def test_uint8_and_float_agree():
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=gen)
    as_uint8, as_float = reconstruction_metrics(x, y), reconstruction_metrics(x / 255, y / 255)
    assert as_uint8.mse == pytest.approx(as_float.mse)
    assert as_uint8.ssim == pytest.approx(as_float.ssim, abs=1e-6)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="must both have shape"):
        reconstruction_metrics(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 4))


def test_evaluate_tokenizer_on_digits(make_tokenizer):
    data = load_image_dataset("digits", "test")
    images, labels = data.images[:40], data.labels[:40]
    tok = make_tokenizer(kind="vqvae2", num_levels=2, downsample=2)
    result = evaluate_tokenizer(tok, images, labels, batch_size=16)

    assert result.num_images == 40 and result.images_per_second > 0
    reference = reconstruction_metrics(images, tok.reconstruct(images))
    assert result.mse == pytest.approx(reference.mse, rel=1e-5)
    assert result.psnr == pytest.approx(reference.psnr, rel=1e-5)
    assert result.ssim == pytest.approx(reference.ssim, rel=1e-4)

    codes = tok.encode(images)
    assert [lv.shape for lv in result.levels] == codes.shapes == [(4, 4), (8, 8)]
    for lv, grid in zip(result.levels, codes.levels, strict=True):
        used = len(torch.unique(grid))
        assert lv.usage == used / 16 and lv.dead_codes == 16 - used
        assert 1.0 <= lv.perplexity <= used + 1e-4
        assert 0.0 <= lv.label_nmi <= 1.0

    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {"mse", "psnr", "ssim", "images_per_second", "num_images", "levels"} <= d.keys()
    assert set(d["levels"][0]) == {"level", "shape", "codebook_size", "usage", "perplexity", "dead_codes", "label_nmi"}
    assert d["levels"][1]["shape"] == [8, 8]

    again = evaluate_tokenizer(tok, images, None, batch_size=40)  # batching does not change the figures
    assert again.mse == pytest.approx(result.mse, rel=1e-5)
    assert again.levels[1].perplexity == pytest.approx(result.levels[1].perplexity)
    assert again.levels[0].label_nmi is None


def test_label_nmi_follows_the_labels(make_tokenizer, monkeypatch):
    # Every code position carries its image's label: codes that name the class give NMI 1,
    # codes that ignore it give 0.
    tok = make_tokenizer()
    images = torch.zeros(8, 1, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    by_class = ImageCodes([(labels * 5 + 3)[:, None, None].expand(8, 2, 2).clone()])
    monkeypatch.setattr(tok, "encode", lambda batch: by_class[: len(batch)])
    assert evaluate_tokenizer(tok, images, labels).levels[0].label_nmi == pytest.approx(1.0)
    mixed = ImageCodes([torch.tensor([[0, 1], [2, 3]]).expand(8, 2, 2).clone()])
    monkeypatch.setattr(tok, "encode", lambda batch: mixed[: len(batch)])
    assert evaluate_tokenizer(tok, images, labels).levels[0].label_nmi == pytest.approx(0.0, abs=1e-12)


def test_evaluate_checks_its_inputs(make_tokenizer):
    tok = make_tokenizer()
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        evaluate_tokenizer(tok, images, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one image"):
        evaluate_tokenizer(tok, images[:0])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_tokenizer(tok, images, batch_size=0)
