"""The speech units tokenizer's parts: span masking, per-utterance normalisation, the encoder's shapes, masked
prediction's gradients, the stage schedule, encode/decode and the save/load round trip (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modalities.base import load_tokenizer
from modalities.speech import SpeechCodes
from modalities.speech.units import (
    UnitsEncoder,
    UnitsSchedule,
    UnitsTokenizer,
    UnitsTokenizerConfig,
    span_mask,
    utterance_norm,
)
from modalities.speech.units.training import unit_frames


def tiny_config(**changes) -> UnitsTokenizerConfig:
    values = dict(code_dim=16, num_layers=2, num_heads=2, target_clusters=[8, 6], target_layer=1, code_layer=1,
                  codebook_size=16, hidden_channels=16, num_res_blocks=1, speaker_dim=8, speakers=["ann", "bob"],
                  griffin_lim_iters=2)  # fmt: skip
    return UnitsTokenizerConfig(**{**values, **changes})


def test_span_mask_masks_spans_of_real_frames_only() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 50, 3])
    mask = span_mask(lengths, 200, prob=0.08, span=10, generator=gen)
    assert mask.shape == (3, 200) and mask.dtype == torch.bool
    assert not mask[1, 50:].any() and not mask[2, 3:].any(), "padding is never masked"
    assert mask.any(dim=1).all(), "every utterance has a masked span"
    assert 0.3 < mask[0].float().mean() < 0.8  # about 1 - (1 - 0.08)^10 = 57% of a long utterance
    runs = torch.diff(
        mask[0].int(), prepend=torch.zeros(1, dtype=torch.int32), append=torch.zeros(1, dtype=torch.int32)
    )
    starts, ends = (runs == 1).nonzero().flatten(), (runs == -1).nonzero().flatten()
    assert ((ends - starts) >= 10).all() or ends[-1] == 200, "masked runs are whole spans (cut only at the end)"


def test_utterance_norm_ignores_padding() -> None:
    x = torch.randn(1, 4, 30) * 3 + 5
    padded = torch.cat([x, x[..., -1:].expand(1, 4, 10)], dim=-1)  # (1, 4, 40)
    alone = utterance_norm(x)
    batched = utterance_norm(padded, torch.tensor([30]))[..., :30]
    torch.testing.assert_close(batched, alone)
    assert torch.allclose(alone.mean(-1), torch.zeros(1, 4), atol=1e-5)


def test_encoder_shapes() -> None:
    enc = UnitsEncoder(n_mels=80, dim=32, num_layers=3, num_heads=4, num_targets=10).eval()
    out = enc(torch.randn(2, 80, 101))
    assert len(out.hidden) == 4 and all(h.shape == (2, 51, 32) for h in out.hidden)
    assert out.logits is not None and out.logits.shape == (2, 51, 10)
    middle = enc(torch.randn(2, 80, 101), num_layers=1)
    assert len(middle.hidden) == 2 and middle.logits is None


def test_masked_prediction_trains_the_encoder_and_its_iterations_head_only() -> None:
    torch.manual_seed(0)
    model = UnitsTokenizer(tiny_config())
    x, lengths = torch.randn(2, 80, 40), torch.tensor([40, 30])
    targets = torch.randint(0, 6, (2, 20))
    loss, accuracy = model.masked_prediction(x, lengths, targets, iteration=1)
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= float(accuracy) <= 1.0
    assert model.heads[1].weight.grad is not None and model.heads[0].weight.grad is None
    assert model.encoder.transformer.mask_embedding.grad is not None
    assert all(p.grad is None for p in model.decoder.parameters()), "masked prediction leaves the decoder alone"


def test_schedule_stages_and_learning_rate() -> None:
    schedule = UnitsSchedule([10, 20], 5, warmup=0.1)
    assert schedule.total_steps == 35
    assert [schedule.stage(s) for s in (0, 9, 10, 29, 30, 34)] == [(0, 0), (0, 9), (1, 0), (1, 19), (2, 0), (2, 4)]
    assert schedule.scale(0) == 1.0 and schedule.scale(10) == 0.5 and schedule.scale(11) == 1.0  # warm-up of 1 and 2
    assert schedule.scale(29) < 0.05 and schedule.scale(30) == 1.0
    with pytest.raises(ValueError, match="iteration_steps"):
        UnitsSchedule([10, 0], 5)


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="code_layer"):
        tiny_config(code_layer=3)
    with pytest.raises(ValueError, match="target_clusters"):
        tiny_config(target_clusters=[])
    with pytest.raises(ValueError, match="quantizer=vq"):
        tiny_config(quantizer="fsq")
    with pytest.raises(ValueError, match="speaker_conditioning=table"):
        tiny_config(speaker_conditioning="reference")
    assert tiny_config().iterations == 2
    assert tiny_config().target_features == ["mfcc"]  # configs written before the setting existed load as before
    assert tiny_config(target_features="logmel").target_features == ["logmel"]
    with pytest.raises(ValueError, match="target_features must name one or more of mfcc, logmel, each once"):
        tiny_config(target_features="mel")
    for bad in ([], ["mfcc", "mfcc"]):
        with pytest.raises(ValueError, match="target_features"):
            tiny_config(target_features=bad)


def test_masked_prediction_with_two_target_sets_trains_one_head_per_set() -> None:
    """target_features=[logmel, mfcc]: iteration 1 takes (b, n, 2) targets, each set scored by its own head (both
    get gradients; the loss is the sum of the two sets'), later iterations one set with their own head."""
    torch.manual_seed(0)
    model = UnitsTokenizer(tiny_config(target_features=["logmel", "mfcc"]))
    assert len(model.feature_heads) == 1 and model.feature_heads[0].out_features == 8
    x, lengths = torch.randn(2, 80, 40), torch.tensor([40, 30])
    targets = torch.randint(0, 6, (2, 20, 2))
    loss, accuracy = model.masked_prediction(x, lengths, targets, 0, torch.Generator().manual_seed(0))
    loss.backward()
    assert model.heads[0].weight.grad.abs().sum() > 0 and model.feature_heads[0].weight.grad.abs().sum() > 0
    assert model.heads[1].weight.grad is None and 0.0 <= float(accuracy) <= 1.0
    with pytest.raises(ValueError, match="iteration 1 has 2 target sets; got 1"):
        model.masked_prediction(x, lengths, targets[..., 0], 0)
    single = UnitsTokenizer(tiny_config())
    assert len(single.feature_heads) == 0 and not any(k.startswith("feature_heads") for k in single.state_dict())


def test_the_codebook_keeps_the_restart_with_the_lowest_distance() -> None:
    """codebook_restarts=3: k-means with seeds s, s + 1, s + 2 on the standardised layer vectors; the codebook is the
    run whose vectors lie closest (mean squared distance) to their nearest centroid, and 1 restart is seed s."""
    from modalities.speech.units.training import fit_codebook, layer_vectors
    from tokenizers_vq.search import kmeans

    torch.manual_seed(0)
    features = [torch.randn(80, int(f)) for f in (30, 41, 25)]
    model = UnitsTokenizer(tiny_config(codebook_restarts=3, codebook_size=6))
    vectors = torch.cat(layer_vectors(model, features, 1))
    standard = (vectors - vectors.mean(0)) / vectors.std(0).clamp_min(1e-5)
    runs = [kmeans(standard, 6, iters=20, seed=7 + r)[0] for r in range(3)]
    distances = [float(torch.cdist(standard, c).square().min(1).values.mean()) for c in runs]
    assert len({round(d, 6) for d in distances}) > 1  # the starts differ, so the choice matters
    fit_codebook(model, features, seed=7)
    assert torch.allclose(model.quantizer.embedding, runs[distances.index(min(distances))])
    one = UnitsTokenizer(tiny_config(codebook_size=6))
    one.load_state_dict(model.state_dict())
    fit_codebook(one, features, seed=7)
    assert torch.allclose(one.quantizer.embedding, runs[0])
    with pytest.raises(ValueError, match="codebook_restarts"):
        tiny_config(codebook_restarts=0)


def test_unit_frames_average_the_two_mel_frames_under_each_unit_frame() -> None:
    """Log-mel (m, f) → (ceil(f / 2), m): unit frame i is the mean of mel frames 2i and 2i + 1, the last one repeated
    when f is odd, as many frames as the encoder gives."""
    x = torch.arange(10.0).reshape(2, 5)  # 2 bins, 5 frames
    frames = unit_frames(x)
    assert frames.shape == (UnitsEncoder.num_frames(5), 2)
    assert torch.equal(frames, torch.tensor([[0.5, 5.5], [2.5, 7.5], [4.0, 9.0]]))
    assert torch.equal(unit_frames(x[:, :4]), frames[:2])


def test_encode_decode_shapes_and_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = UnitsTokenizer(tiny_config())
    model.set_codebook(torch.randn(16, 16), torch.zeros(16), torch.ones(16))
    model.eval()
    wave = 0.1 * torch.randn(16000)
    codes = model.encode(wave, sample_rate=16000)
    assert isinstance(codes, SpeechCodes) and codes.codes.shape == (1, 51) and codes.frame_rate == 50.0
    assert codes.first_frame_time == model.config.first_code_time
    smoother = model.encode(wave, sample_rate=16000, duration_penalty=4.0)
    assert smoother.codes.shape == (1, 51)
    runs = lambda c: int((c[0, 1:] != c[0, :-1]).sum())  # noqa: E731
    assert runs(smoother.codes) <= runs(codes.codes)
    assert model.decode(codes, speaker="bob").shape == (1, 16160)
    assert model.reconstruct(wave, 16000, speaker="ann").shape == (1, 16000)

    model.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is UnitsTokenizer and loaded.kind == "speech-units-tokenizer"
    assert torch.equal(loaded.encode(wave, sample_rate=16000).codes, codes.codes)
    assert loaded.content_id() == model.content_id()


def test_decoder_pass_leaves_the_encoder_frozen() -> None:
    torch.manual_seed(0)
    model = UnitsTokenizer(tiny_config())
    model.set_codebook(torch.randn(16, 16), torch.zeros(16), torch.ones(16))
    x = torch.randn(2, 80, 40)
    out = model(x, speaker=torch.tensor([0, 1]), lengths=torch.tensor([40, 25]))
    out.loss.backward()
    assert out.codes.shape == (2, 20) and out.reconstruction.shape == (2, 80, 40)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.speaker_embedding.weight.grad is not None
