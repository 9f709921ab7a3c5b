"""ImageTokenizer: shapes and dtypes through encode/decode, the training pass, gradients, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modalities.image import ImageCodes, ImageTokenizer, ImageTokenizerConfig
from modalities.image.layers import activation

H, W = 16, 24  # a multiple of every test architecture's total downsampling (at most 8), not square


def _images(form: str, channels: int, batch: int = 3) -> tuple[object, int]:
    """Images in the given ``form`` and the batch size the tokenizer should see."""
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (batch, channels, H, W), dtype=torch.uint8, generator=gen)
    if form == "uint8":
        return pixels, batch
    if form == "float":
        return pixels.float() / 255, batch
    if form == "single":
        return pixels[0], 1  # (c, h, w)
    if form == "numpy":
        return pixels.numpy(), batch
    if form == "numpy_hw":
        return pixels[0, 0].numpy(), 1  # (h, w): grey only
    raise AssertionError(form)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("form", ["uint8", "float", "single", "numpy", "numpy_hw"])
def test_encode_decode_shapes_and_dtypes(make_tokenizer, architecture, channels, form):
    if form == "numpy_hw" and channels == 3:
        pytest.skip("(h, w) images are grey")
    tok = make_tokenizer(in_channels=channels, **architecture)
    images, batch = _images(form, channels)

    codes = tok.encode(images)
    assert isinstance(codes, ImageCodes)
    assert codes.num_levels == architecture["num_levels"]
    assert codes.shapes == tok.level_shapes(H, W)
    assert codes.batch_size == batch
    for grid, size in zip(codes.levels, tok.codebook_sizes, strict=True):
        assert grid.dtype == torch.int64
        assert 0 <= int(grid.min()) and int(grid.max()) < size

    decoded = tok.decode(codes)
    assert decoded.shape == (batch, channels, H, W)
    assert decoded.dtype == torch.float32
    assert 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0
    assert torch.equal(tok.reconstruct(images), decoded)


@pytest.mark.parametrize(
    ("overrides", "shape", "grids", "total"),
    [
        ({"kind": "vqvae", "downsample": 4}, (28, 28), [(7, 7)], 4),
        ({"kind": "vqvae", "downsample": 8}, (32, 16), [(4, 2)], 8),
        ({"kind": "vqvae2", "num_levels": 2, "downsample": 4}, (32, 32), [(4, 4), (8, 8)], 8),
        ({"kind": "vqvae2", "num_levels": 2, "downsample": 2}, (28, 28), [(7, 7), (14, 14)], 4),
        ({"kind": "vqvae2", "num_levels": 3, "downsample": 2}, (32, 32), [(4, 4), (8, 8), (16, 16)], 8),
    ],
)
def test_layout(make_tokenizer, overrides, shape, grids, total):
    tok = make_tokenizer(**overrides)
    assert tok.total_downsample == total
    assert tok.level_shapes(*shape) == grids
    assert tok.codebook_sizes == [16] * len(grids)
    assert tok.encode(torch.zeros(2, 1, *shape, dtype=torch.uint8)).shapes == grids


def test_forward_output_adds_up(make_tokenizer, architecture):
    tok = make_tokenizer(in_channels=3, **architecture)
    x = tok.preprocess(torch.randint(0, 256, (4, 3, H, W), dtype=torch.uint8))
    out = tok(x)
    assert out.reconstruction.shape == x.shape
    assert out.codes.shapes == tok.level_shapes(H, W)
    assert len(out.quantizer_outputs) == architecture["num_levels"]
    assert torch.allclose(out.reconstruction_loss, torch.mean((out.reconstruction - x) ** 2))
    quantizer_loss = sum(q.loss for q in out.quantizer_outputs)
    assert torch.allclose(out.loss, out.reconstruction_loss + quantizer_loss)
    for q, shape in zip(out.quantizer_outputs, tok.level_shapes(H, W), strict=True):
        assert q.codes.shape == (4, *shape)


def test_encode_agrees_with_forward_in_eval_mode(make_tokenizer, architecture):
    tok = make_tokenizer(**architecture).eval()
    images = torch.randint(0, 256, (4, 1, H, W), dtype=torch.uint8)
    assert tok.encode(images).equal(tok(tok.preprocess(images)).codes)


def test_gradients_reach_every_trainable_parameter(make_tokenizer, architecture):
    # Codebook gradients ("loss" update) and encoder gradients through the straight-through estimator:
    # a missing path (e.g. an upper level cut off, as in encodec issue #25) leaves some grads at zero.
    tok = make_tokenizer(update="loss", init="random", dead_code="none", **architecture).train()
    x = tok.preprocess(torch.randint(0, 256, (2, 1, H, W), dtype=torch.uint8))
    tok(x).loss.backward()
    for name, p in tok.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert float(p.grad.abs().sum()) > 0, f"{name} got a zero gradient"


def test_reconstruction_loss_alone_reaches_every_encoder(make_tokenizer, architecture):
    tok = make_tokenizer(**architecture).train()
    x = tok.preprocess(torch.randint(0, 256, (2, 1, H, W), dtype=torch.uint8))
    tok(x).reconstruction_loss.backward()
    for level, encoder in enumerate(tok.encoders):
        first_conv = encoder.net[0].weight
        assert first_conv.grad is not None and float(first_conv.grad.abs().sum()) > 0, f"encoder {level}"


def test_encode_and_decode_leave_the_model_unchanged(make_tokenizer, architecture):
    tok = make_tokenizer(**architecture).train()  # training mode on purpose: encode must still not learn
    images = torch.randint(0, 256, (4, 1, H, W), dtype=torch.uint8)
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    tok.decode(tok.encode(images))
    after = tok.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tok(tok.preprocess(images))  # whereas a training pass initialises and moves the codebooks
    assert not all(torch.equal(before[k], tok.state_dict()[k]) for k in before)


def test_preprocess_scales_to_signed_unit_without_touching_the_input(make_tokenizer):
    tok = make_tokenizer(in_channels=1)
    pixels = torch.tensor([[0, 255], [51, 204]], dtype=torch.uint8).repeat(2, 2)  # (4, 4)
    x = tok.preprocess(pixels)
    assert x.shape == (1, 1, 4, 4) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    floats = pixels.float() / 255
    copy = floats.clone()
    assert torch.allclose(tok.preprocess(floats), x, atol=1e-6)
    assert torch.equal(floats, copy)
    assert torch.allclose(tok.preprocess(floats.numpy()), x, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), ValueError, "1-channel"),
        (torch.zeros(2, 16, 16, 1, dtype=torch.uint8), ValueError, "channels-last"),
        (torch.zeros(5, 16, 16, dtype=torch.uint8), ValueError, r"images\[:, None\]"),
        (torch.zeros(2, 1, 18, 16, dtype=torch.uint8), ValueError, "multiples of .* 4.*20×16"),
        (torch.zeros(2, 1, 16, 16, dtype=torch.int32), ValueError, "uint8"),
        (torch.full((2, 1, 16, 16), 255.0), ValueError, r"\[0, 1\]"),
        (torch.full((2, 1, 16, 16), -0.5), ValueError, r"\[0, 1\]"),
        (torch.full((2, 1, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.zeros(1, 1, 1, 16, 16), ValueError, r"\(b, c, h, w\)"),
        ([[0, 1], [2, 3]], TypeError, "numpy"),
    ],
)
def test_preprocess_rejects_bad_images(make_tokenizer, images, error, match):
    tok = make_tokenizer(in_channels=1, downsample=4)
    with pytest.raises(error, match=match):
        tok.preprocess(images)
    with pytest.raises(error, match=match):
        tok.encode(images)


def test_forward_rejects_raw_pixels(make_tokenizer):
    tok = make_tokenizer()
    with pytest.raises(TypeError, match="preprocess"):
        tok(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_decode_checks_codes(make_tokenizer):
    tok = make_tokenizer(kind="vqvae2", num_levels=2, downsample=2)
    good = tok.encode(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    assert good.shapes == [(4, 4), (8, 8)]
    with pytest.raises(ValueError, match="2 level"):
        tok.decode(ImageCodes(good.levels[1:]))
    with pytest.raises(ValueError, match="do not fit"):
        tok.decode(ImageCodes([torch.zeros(2, 3, 3, dtype=torch.long), good.levels[1]]))
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        tok.decode(ImageCodes([good.levels[0], good.levels[1] + 16]))
    with pytest.raises(TypeError, match="ImageCodes"):
        tok.decode(good.levels)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"kind": "vqgan"}, "kind"),
        ({"in_channels": 2}, "1 \\(grey\\) or 3"),
        ({"downsample": 3}, "power of two"),
        ({"downsample": 1}, "power of two"),
        ({"kind": "vqvae", "num_levels": 2}, "kind='vqvae2'"),
        ({"kind": "vqvae2", "num_levels": 1}, "num_levels >= 2"),
        ({"update": "adam"}, "update"),
        ({"codebook_size": 0}, "codebook_size"),
        ({"code_dim": 2.5}, "code_dim"),
        ({"decay": 1.0}, "decay"),
        ({"beta": -1.0}, "beta"),
        ({"distance": "manhattan"}, "distance"),
        ({"codebook_dim": 0}, "codebook_dim"),
        ({"code_dim": 16, "codebook_dim": 32}, "codebook_dim"),
        ({"activation": "tanh"}, "activation"),
    ],
)
def test_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        ImageTokenizerConfig(**overrides)


def test_config_round_trips_through_a_dict():
    cfg = ImageTokenizerConfig(kind="vqvae2", num_levels=3, in_channels=3, codebook_size=256)
    assert ImageTokenizerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ImageTokenizerConfig field"):
        ImageTokenizerConfig.from_dict({**cfg.to_dict(), "channels": 3})


def test_factorised_cosine_codes_reach_the_quantizers(make_tokenizer):
    tok = make_tokenizer(code_dim=16, codebook_dim=4, distance="cosine")
    for q in tok.quantizers:
        assert (q.config.codebook_dim, q.config.distance) == (4, "cosine")
        assert q.embedding.shape[-1] == 4
    images = torch.rand(2, 1, 16, 16)
    codes = tok.encode(images)
    assert tok.decode(codes).shape == images.shape


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_activation_reaches_every_layer_and_survives_saving(make_tokenizer, tmp_path, name):
    tok = make_tokenizer(kind="vqvae2", num_levels=2, downsample=2, activation=name).eval()
    kinds = {type(m) for m in tok.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.SiLU, torch.nn.GELU))}
    assert kinds == {type(activation(name))}
    images = torch.rand(2, 1, 16, 16)
    tok.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.config.activation == name
    assert torch.equal(loaded.encode(images).levels[0], tok.encode(images).levels[0])
    assert torch.equal(loaded.decode(tok.encode(images)), tok.decode(tok.encode(images)))


def test_levels_have_their_own_codebooks(make_tokenizer):
    tok = make_tokenizer(kind="vqvae2", num_levels=3, downsample=2)
    embeddings = [q.embedding for q in tok.quantizers]
    assert len({e.data_ptr() for e in embeddings}) == 3
    assert [q.config.seed for q in tok.quantizers] == [0, 1, 2]


def test_module_does_not_pick_a_device_or_dtype(make_tokenizer):
    tok = make_tokenizer().double()
    x = tok.preprocess(np.zeros((2, 1, 16, 16), dtype=np.uint8))
    assert x.dtype == torch.float64
    assert tok.decode(tok.encode(x.new_zeros(2, 1, 16, 16))).dtype == torch.float32
    assert isinstance(tok, ImageTokenizer)


def test_package_docstring_example_runs():
    import doctest

    import modalities.image

    result = doctest.testmod(modalities.image)
    assert result.attempted > 0 and result.failed == 0
