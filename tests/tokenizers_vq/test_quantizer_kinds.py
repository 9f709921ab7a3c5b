"""The contract every quantizer kind keeps: shapes, encode = forward, decode, gradients, state, dtypes, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tokenizers_vq import (
    FSQConfig,
    LFQConfig,
    RVQConfig,
    SimVQConfig,
    VQConfig,
    build_quantizer,
)

DIM = 6
CONFIGS = {
    "vq": VQConfig(dim=DIM, codebook_size=16),
    "vq-rotation": VQConfig(dim=DIM, codebook_size=16, gradient="rotation"),
    "fsq": FSQConfig(dim=DIM, levels=[5, 4, 3]),
    "fsq-unprojected": FSQConfig(dim=3, levels=[7, 5, 3]),
    "lfq": LFQConfig(dim=DIM, codebook_size=16),
    "bsq": LFQConfig(dim=DIM, codebook_size=16, geometry="sphere"),
    "simvq": SimVQConfig(dim=DIM, codebook_size=16),
    "simvq-rotation": SimVQConfig(dim=DIM, codebook_size=16, gradient="rotation"),
    "residual-fsq": RVQConfig(FSQConfig(dim=DIM, levels=[5, 5, 5]), num_levels=3),
    "residual-lfq": RVQConfig(LFQConfig(dim=DIM, codebook_size=8), num_levels=2),
    "residual-simvq": RVQConfig(SimVQConfig(dim=DIM, codebook_size=8), num_levels=2),
}
KINDS = list(CONFIGS)


def make(kind: str):
    torch.manual_seed(0)  # projections are nn.Linear layers
    return build_quantizer(CONFIGS[kind])


def dim(kind: str) -> int:
    cfg = CONFIGS[kind]
    return (cfg.level if isinstance(cfg, RVQConfig) else cfg).dim


def code_shape(kind: str, lead: tuple[int, ...]) -> tuple[int, ...]:
    cfg = CONFIGS[kind]
    return (*lead, cfg.num_levels) if isinstance(cfg, RVQConfig) else lead


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_codes_in_range_and_encode_matches_forward(kind):
    q = make(kind)
    x = torch.randn(3, 5, 7, dim(kind))
    out = q(x)  # training: k-means, EMA
    assert out.quantized.shape == x.shape and out.codes.shape == code_shape(kind, (3, 5, 7))
    assert out.codes.dtype == torch.int64 and 0 <= int(out.codes.min()) and int(out.codes.max()) < q.codebook_size
    q.eval()
    out = q(x)
    torch.testing.assert_close(q.encode(x), out.codes, rtol=0, atol=0)
    torch.testing.assert_close(q.decode(out.codes), out.quantized, rtol=1e-5, atol=1e-5)
    for name in ("perplexity", "usage"):
        value = getattr(out, name)
        assert torch.isfinite(value).all() and (value > 0).all(), name
    assert out.dead_codes.dtype == torch.int64 and 0 <= int(out.dead_codes)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_encoder_through_the_reconstruction_and_the_loss(kind):
    q = make(kind)
    encoder = nn.Linear(4, dim(kind))
    out = q(encoder(torch.randn(64, 4)))
    (g,) = torch.autograd.grad(out.quantized.square().sum(), encoder.weight, retain_graph=True)
    assert torch.count_nonzero(g) > 0, "the reconstruction's gradient must reach the encoder"
    assert torch.isfinite(out.loss)
    if out.loss.requires_grad:  # FSQ has no loss term at all
        (g,) = torch.autograd.grad(out.loss, encoder.weight, allow_unused=True)
        assert g is not None and torch.count_nonzero(g) > 0, "the quantizer's loss must reach the encoder"


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_resumes_the_same_quantizer(kind):
    q = make(kind)
    for _ in range(3):
        q(torch.randn(128, dim(kind)))
    torch.manual_seed(123)  # another start for the fresh copy's layers
    fresh = build_quantizer(CONFIGS[kind])
    fresh.load_state_dict(q.state_dict())
    x = torch.randn(40, dim(kind))
    torch.testing.assert_close(fresh.encode(x), q.encode(x), rtol=0, atol=0)
    q.eval(), fresh.eval()
    a, b = q(x), fresh(x)
    torch.testing.assert_close(a.quantized, b.quantized)
    assert int(a.dead_codes) == int(b.dead_codes), "the usage average is state, saved and loaded"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_in_and_out(kind, dtype):
    q = make(kind).eval()
    x = torch.randn(4, 5, dim(kind))
    out = q(x.to(dtype))
    assert out.quantized.dtype == dtype
    assert torch.equal(out.codes, q.encode(x.to(dtype).float()))


@pytest.mark.parametrize("kind", KINDS)
def test_float32_under_autocast(kind):
    q = make(kind).eval()
    x = torch.randn(200, dim(kind))
    want = q.encode(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(x)
        codes = q.encode(x)
    torch.testing.assert_close(out.codes, want, rtol=0, atol=0)
    torch.testing.assert_close(codes, want, rtol=0, atol=0)
    assert out.quantized.dtype == torch.float32 and out.loss.dtype == torch.float32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [True, False])
def test_empty_batch(kind, training):
    q = make(kind).train(training)
    x = torch.randn(0, 7, dim(kind), requires_grad=True)
    out = q(x)
    assert out.quantized.shape == (0, 7, dim(kind)) and out.codes.shape == code_shape(kind, (0, 7))
    assert torch.isfinite(out.loss) and float(out.loss.detach()) == 0.0
    (out.loss + out.quantized.sum()).backward()
    assert q.encode(torch.randn(0, dim(kind))).shape == code_shape(kind, (0,))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda d: torch.randn(3, d + 1), r"shape \(\.\.\., \d+\)"),
        (lambda d: torch.ones(3, d, dtype=torch.int64), "floating-point"),
        (lambda d: torch.full((2, d), float("nan")), "NaN or infinite"),
        (lambda d: torch.tensor(1.0), "shape"),
    ],
)
def test_bad_input_raises_clear_value_error(kind, make_input, message):
    q = make(kind)
    x = make_input(dim(kind))
    with pytest.raises(ValueError, match=message):
        q(x)
    with pytest.raises(ValueError, match=message):
        q.encode(x)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_codes_raise(kind):
    q = make(kind)
    k = q.codebook_size
    bad = torch.full(code_shape(kind, (2,)), k)
    with pytest.raises(ValueError, match=rf"\[0, {k - 1}\]"):
        q.decode(bad)
    with pytest.raises(ValueError, match="integer"):
        q.decode(bad.float())


def test_codebook_sizes():
    assert build_quantizer(FSQConfig(dim=4, levels=[8, 8, 8])).codebook_size == 512
    assert build_quantizer(LFQConfig(dim=4, codebook_size=512)).codebook_size == 512
    assert build_quantizer(RVQConfig(FSQConfig(dim=4, levels=[8, 5, 5, 5]), num_levels=2)).codebook_size == 1000
    with pytest.raises(TypeError, match="build_quantizer takes"):
        build_quantizer({"dim": 4})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FSQConfig(dim=4, levels=[8, 2]), r"integers >= 3.*use LFQ"),
        (lambda: FSQConfig(dim=4, levels=[]), "non-empty"),
        (lambda: LFQConfig(dim=4, codebook_size=500), "power of two.*got 500"),
        (lambda: LFQConfig(dim=4, codebook_size=2**20), "power of two"),
        (lambda: LFQConfig(dim=4, geometry="torus"), "geometry"),
        (lambda: SimVQConfig(dim=4, gradient="reinforce"), "gradient must be one of"),
        (lambda: VQConfig(dim=4, gradient="rotate"), "gradient must be one of"),
    ],
)
def test_bad_configs_raise(build, message):
    with pytest.raises(ValueError, match=message):
        build()
