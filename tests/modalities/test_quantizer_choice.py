"""Tokenizers of every quantizer kind, chosen by config: codebook sizes, round trips, saved configs of before."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

from modalities.image import ImageTokenizer, ImageTokenizerConfig
from modalities.speech import SpeechTokenizer, SpeechTokenizerConfig
from tokenizers_vq import FiniteScalarQuantizer, LookupFreeQuantizer, ResidualVectorQuantizer, SimVQ, VectorQuantizer
from tokenizers_vq.pretrained import directory_identity
from tokenizers_vq.tokenizer import Tokenizer

# (config fields, the quantizer class, codes per level)
KINDS = {
    "vq": ({}, VectorQuantizer, 16),
    "vq-rotation": ({"gradient": "rotation"}, VectorQuantizer, 16),
    "fsq": ({"quantizer": "fsq", "fsq_levels": [5, 4, 3]}, FiniteScalarQuantizer, 60),
    "lfq": ({"quantizer": "lfq"}, LookupFreeQuantizer, 16),
    "bsq": ({"quantizer": "bsq", "codebook_size": 32}, LookupFreeQuantizer, 32),
    "simvq": ({"quantizer": "simvq", "gradient": "rotation"}, SimVQ, 16),
}


def _inputs(tokenizer: Tokenizer) -> tuple[torch.Tensor, dict]:
    """A training batch for ``forward`` and the keyword arguments of ``encode`` for the same items."""
    if isinstance(tokenizer, ImageTokenizer):
        images = torch.rand(4, 1, 16, 16)
        return tokenizer.preprocess(images), {"images": images}
    wave = torch.randn(1, 8000) * 0.1
    return tokenizer.features(tokenizer.preprocess(wave[0], 16000)), {"waveform": wave[0], "sample_rate": 16000}


@pytest.mark.parametrize("tokenizer_class", [ImageTokenizer, SpeechTokenizer])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_trains_encodes_decodes_and_reloads(
    make_tokenizer: Callable[..., Tokenizer], tokenizer_class: type[Tokenizer], kind: str, tmp_path
) -> None:
    fields, quantizer_class, k = KINDS[kind]
    tokenizer = make_tokenizer(**fields)
    quantizers = tokenizer.quantizers if isinstance(tokenizer, ImageTokenizer) else [tokenizer.quantizer]
    assert all(type(q) is quantizer_class for q in quantizers)
    assert tokenizer.codebook_sizes == [k] and tokenizer.config.num_codes == k
    x, encode_args = _inputs(tokenizer)
    out = tokenizer(x)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    encoder = tokenizer.encoders if isinstance(tokenizer, ImageTokenizer) else tokenizer.encoder
    assert all(p.grad is not None and torch.count_nonzero(p.grad) for p in encoder.parameters()), "gradients reach it"
    tokenizer.eval()
    codes = tokenizer.encode(**encode_args)
    assert all(0 <= int(g.min()) and int(g.max()) < k for g in codes.levels)
    assert torch.isfinite(tokenizer.decode(codes)).all()
    tokenizer.save_pretrained(tmp_path)
    loaded = tokenizer_class.from_pretrained(tmp_path)
    assert loaded.encode(**encode_args).equal(codes)
    assert loaded.content_id() == tokenizer.content_id() == directory_identity(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["config"]
    assert all(saved[name] == value for name, value in fields.items()), "a chosen kind is written to config.json"


def test_speech_residual_stacks_of_every_kind() -> None:
    for quantizer, extra in (("rvq", {}), ("fsq", {"fsq_levels": [5, 5]}), ("simvq", {}), ("lfq", {})):
        cfg = SpeechTokenizerConfig(hidden_channels=16, num_res_blocks=1, codebook_size=16, code_dim=8,
                                    quantizer=quantizer, num_quantizers=3, quantizer_dropout=0.5, **extra)  # fmt: skip
        tokenizer = SpeechTokenizer(cfg).eval()
        assert isinstance(tokenizer.quantizer, ResidualVectorQuantizer) and cfg.residual
        codes = tokenizer.encode(torch.randn(4000) * 0.1, 16000)
        assert codes.codes.shape[-1] == 3 and tokenizer.codebook_sizes == [cfg.num_codes] * 3
        assert tokenizer.decode(codes, num_levels=2).ndim == 2
    one = SpeechTokenizerConfig(quantizer="fsq", fsq_levels=[8, 8, 8])
    assert not one.residual and one.num_codes == 512 and one.bitrate == pytest.approx(50 * 9)


# What to_dict() gave before the quantizer kinds: every such config.json must read back unchanged.
BEFORE = {
    ImageTokenizerConfig: {
        "kind": "vqvae", "in_channels": 1, "hidden_channels": 128, "res_channels": 32, "num_res_blocks": 2,
        "activation": "relu", "downsample": 4, "num_levels": 1, "codebook_size": 512, "code_dim": 64,
        "codebook_dim": None, "distance": "euclidean", "update": "ema", "init": "kmeans", "dead_code": "restart",
        "beta": 0.25, "decay": 0.99, "seed": 0,
    },
}  # fmt: skip


def test_configs_saved_before_the_kinds_read_back_to_the_same_dict() -> None:
    before = BEFORE[ImageTokenizerConfig]
    assert ImageTokenizerConfig.from_dict(before).to_dict() == before
    assert ImageTokenizerConfig().to_dict() == before
    speech = SpeechTokenizerConfig(quantizer="rvq", num_quantizers=2).to_dict()
    assert not {"gradient", "fsq_levels", "lfq_entropy_weight"} & set(speech)
    assert SpeechTokenizerConfig.from_dict(speech).to_dict() == speech
    chosen = ImageTokenizerConfig(quantizer="fsq", fsq_levels=[8, 8, 8]).to_dict()
    assert chosen["quantizer"] == "fsq" and chosen["fsq_levels"] == [8, 8, 8] and "gradient" not in chosen


@pytest.mark.parametrize(
    ("config_class", "fields", "message"),
    [
        (ImageTokenizerConfig, {"quantizer": "pq"}, r"ImageTokenizerConfig\.quantizer must be one of"),
        (ImageTokenizerConfig, {"quantizer": "lfq", "codebook_size": 500}, r"codebook_size.*power of two.*500"),
        (ImageTokenizerConfig, {"quantizer": "fsq", "gradient": "rotation"}, r"gradient='rotation' needs a codebook"),
        (ImageTokenizerConfig, {"fsq_levels": [8, 1]}, r"ImageTokenizerConfig\.fsq_levels"),
        (ImageTokenizerConfig, {"lfq_entropy_weight": -1.0}, "lfq_entropy_weight must be >= 0"),
        (SpeechTokenizerConfig, {"quantizer": "fsq", "duration_penalty": 1.0}, "duration_penalty needs a nearest-code"),
        (SpeechTokenizerConfig, {"quantizer": "vq", "num_quantizers": 2}, "Use quantizer='rvq'"),
        (SpeechTokenizerConfig, {"quantizer": "fsq", "quantizer_dropout": 0.5}, "0 for one level"),
        (SpeechTokenizerConfig, {"quantizer": "bsq", "codebook_size": 100}, "power of two"),
    ],
)
def test_bad_quantizer_fields_raise_naming_the_field(config_class: type, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_class(**fields)


def test_speech_encode_refuses_a_duration_penalty_without_a_codebook_search() -> None:
    tokenizer = SpeechTokenizer(SpeechTokenizerConfig(hidden_channels=16, num_res_blocks=1, quantizer="fsq")).eval()
    with pytest.raises(ValueError, match="duration_penalty needs a nearest-code search"):
        tokenizer.encode(torch.randn(4000) * 0.1, 16000, duration_penalty=1.0)
