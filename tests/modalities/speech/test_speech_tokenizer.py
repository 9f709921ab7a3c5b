"""The speech tokenizer: shapes and rates, gradients, saving and loading, speakers, voice conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modalities.speech import (
    AudioError,
    FrontEndConfig,
    SpeechCodes,
    SpeechTokenizer,
    SpeechTokenizerConfig,
    convert_voice,
    evaluate_reconstruction,
    list_utterances,
    load_audio,
)


def test_encode_decode_shapes_and_rate(make_tokenizer) -> None:
    tok = make_tokenizer(speakers=["ann", "bob"]).eval()
    codes = tok.encode(0.1 * torch.randn(16000), sample_rate=16000)
    assert isinstance(codes, SpeechCodes)
    assert codes.codes.shape == (1, 51) and codes.codes.dtype == torch.int64
    assert codes.frame_rate == 50.0 and codes.first_frame_time == pytest.approx(0.005)
    assert 0 <= int(codes.codes.min()) and int(codes.codes.max()) < 16
    assert tok.decode(codes, speaker="bob").shape == (1, (51 * 2 - 1) * 160)  # centred frames: (f - 1) hops
    # any input rate, batches (b, 1, t), channels (b, c, t); (c, t) is ambiguous (test_modality_bad_inputs.py)
    assert tok.encode(0.1 * torch.randn(2, 1, 8000), sample_rate=8000).codes.shape == (2, 51)
    assert tok.encode(0.1 * torch.randn(2, 2, 16000), sample_rate=16000).codes.shape == (2, 51)
    with pytest.raises(ValueError, match=r"\(t,\), \(1, t\) or \(b, c, t\)"):
        tok.encode(torch.randn(1, 1, 1, 100), 16000)


@pytest.mark.parametrize(("downsample", "rate"), [(1, 100.0), (4, 25.0), (8, 12.5)])
def test_code_rate_follows_downsample(make_tokenizer, downsample: int, rate: float) -> None:
    tok = make_tokenizer(downsample=downsample).eval()
    codes = tok.encode(0.1 * torch.randn(16000), 16000)
    assert codes.frame_rate == rate and codes.codes.shape[1] == -(-101 // downsample)
    assert tok.config.bitrate == pytest.approx(rate * 4)  # log2(16) bits per code


def test_bad_audio_is_refused(make_tokenizer) -> None:
    tok = make_tokenizer()
    with pytest.raises(AudioError, match="empty"):
        tok.encode(torch.zeros(0), 16000)
    with pytest.raises(AudioError, match="silent"):
        tok.encode(torch.zeros(16000), 16000)
    with pytest.raises(AudioError, match="NaN"):
        tok.encode(torch.full((100,), float("inf")), 16000)


def test_forward_trains_every_part(make_tokenizer) -> None:
    tok = make_tokenizer(speakers=["a", "b"], update="loss", jitter=0.5).train()
    x = tok.features(tok.preprocess(0.1 * torch.randn(2, 1, 4000), 16000))
    out = tok(x, speaker=torch.tensor([0, 1]))
    assert out.reconstruction.shape == x.shape and out.codes.shape == (2, 13)
    out.loss.backward()
    for name in ("encoder.input.weight", "decoder.output.weight", "quantizer.embedding", "speaker_embedding.weight"):
        grad = dict(tok.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, f"{name} got no gradient"


def test_residual_codes(make_tokenizer) -> None:
    tok = make_tokenizer(quantizer="rvq", num_quantizers=3).eval()
    codes = tok.encode(0.1 * torch.randn(8000), 16000)
    assert codes.codes.shape == (1, 26, 3) and codes.num_levels == 3
    assert tok.decode(codes).shape == (1, (26 * 2 - 1) * 160)
    assert tok.config.bitrate == pytest.approx(50 * 3 * 4)
    with pytest.raises(ValueError, match=r"\(b, n, 3\)"):
        tok.decode(torch.zeros(1, 26, dtype=torch.long))


def test_decoding_the_first_levels_sums_only_their_vectors(make_tokenizer) -> None:
    tok = make_tokenizer(quantizer="rvq", num_quantizers=3, speakers=["a"]).eval()
    codes = tok.encode(0.1 * torch.randn(8000), 16000).codes  # (1, 26, 3)
    for depth in (1, 2, 3):
        q = sum(tok.quantizer.levels[i].decode(codes[..., i]) for i in range(depth))  # (1, 26, d) by hand
        by_hand = tok.target_to_features(tok._decode_vectors(q, tok.speaker_ids("a", 1)))
        assert torch.equal(tok.decode_features(codes, "a", num_levels=depth), by_hand)
        assert torch.equal(tok.decode_features(codes[..., :depth], "a"), by_hand)
    assert not torch.equal(tok.decode_features(codes, "a", num_levels=1), tok.decode_features(codes, "a"))
    assert tok.decode(codes, "a", num_levels=2).shape == tok.decode(codes, "a").shape
    for bad in (0, 4, True, 1.0):
        with pytest.raises(ValueError, match=r"num_levels must be an integer in 1\.\.3"):
            tok.decode(codes, "a", num_levels=bad)
    with pytest.raises(ValueError, match="hold 2 level"):
        tok.decode(codes[..., :2], "a", num_levels=3)
    plain = make_tokenizer().eval()
    one = plain.encode(0.1 * torch.randn(4000), 16000)
    assert torch.equal(plain.decode_features(one, num_levels=1), plain.decode_features(one))
    with pytest.raises(ValueError, match=r"1\.\.1"):
        plain.decode(one, num_levels=2)


def test_quantizer_dropout_reaches_the_residual_quantizer(make_tokenizer) -> None:
    tok = make_tokenizer(quantizer="rvq", num_quantizers=3, quantizer_dropout=1.0).train()
    x = tok.features(tok.preprocess(0.1 * torch.randn(1, 4000), 16000))
    depths = {tok(x).codes.shape[-1] for _ in range(20)}  # every batch drops levels: depth ~ U{1..3}
    assert depths == {1, 2, 3}
    assert tok.eval()(x).codes.shape[-1] == 3
    with pytest.raises(ValueError, match="quantizer_dropout"):
        SpeechTokenizerConfig(quantizer_dropout=0.5)  # one codebook: nothing to drop
    with pytest.raises(ValueError, match="quantizer_dropout"):
        SpeechTokenizerConfig(quantizer="rvq", num_quantizers=2, quantizer_dropout=1.5)


def test_encode_never_changes_the_model(make_tokenizer) -> None:
    tok = make_tokenizer().train()
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    tok.encode(0.1 * torch.randn(8000), 16000)
    for key, value in tok.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed"


def test_speaker_arguments(make_tokenizer) -> None:
    tok = make_tokenizer(speakers=["ann", "bob"]).eval()
    codes = tok.encode(0.1 * torch.randn(4000), 16000)
    assert torch.equal(tok.decode(codes, speaker="bob"), tok.decode(codes, speaker=1))
    assert not torch.equal(tok.decode(codes, speaker="ann"), tok.decode(codes, speaker="bob"))
    with pytest.raises(ValueError, match="needs a speaker"):
        tok.decode(codes)
    with pytest.raises(ValueError, match="unknown speaker 'eve'"):
        tok.decode(codes, speaker="eve")
    with pytest.raises(ValueError, match="speaker indices"):
        tok.decode(codes, speaker=5)
    plain = make_tokenizer().eval()
    with pytest.raises(ValueError, match="without speakers"):
        plain.decode(plain.encode(0.1 * torch.randn(4000), 16000), speaker="ann")
    with pytest.raises(ValueError, match=r"50\.0"):
        tok.decode(SpeechCodes(codes.codes, 25.0), speaker=0)


def test_save_and_load_give_identical_codes(make_tokenizer, tmp_path: Path) -> None:
    tok = make_tokenizer(
        speakers=["ann", "bob"],
        frontend=FrontEndConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40),
    )
    tok.set_feature_stats(torch.randn(3, 40, 50) * 2 - 5)
    tok.save_pretrained(tmp_path / "tok")
    meta = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert meta["kind"] == "speech-tokenizer" and meta["config"]["frontend"]["sample_rate"] == 8000
    back = SpeechTokenizer.from_pretrained(tmp_path / "tok")
    assert back.config == tok.config and not back.training
    wave = 0.1 * torch.randn(8000)
    assert torch.equal(back.encode(wave, 8000).codes, tok.eval().encode(wave, 8000).codes)
    assert torch.equal(back.mel_mean, tok.mel_mean)
    with pytest.raises(ValueError, match="image-tokenizer"):
        meta["kind"] = "image-tokenizer"
        (tmp_path / "tok" / "config.json").write_text(json.dumps(meta))
        SpeechTokenizer.from_pretrained(tmp_path / "tok")


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="downsample"):
        SpeechTokenizerConfig(downsample=3)
    with pytest.raises(ValueError, match="num_quantizers"):
        SpeechTokenizerConfig(num_quantizers=2)
    with pytest.raises(ValueError, match="distinct"):
        SpeechTokenizerConfig(speakers=["a", "a"])
    with pytest.raises(ValueError, match="unknown SpeechTokenizerConfig"):
        SpeechTokenizerConfig.from_dict({"codebok_size": 3})
    with pytest.raises(ValueError, match="unknown FrontEndConfig"):
        SpeechTokenizerConfig.from_dict({"frontend": {"hop": 3}})
    with pytest.raises(ValueError, match="win_length"):
        FrontEndConfig(n_fft=256, win_length=400)
    for bad in (-1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="duration_penalty"):
            SpeechTokenizerConfig(duration_penalty=bad)
    cfg = SpeechTokenizerConfig(speakers=["x"], duration_penalty=1.5)
    assert SpeechTokenizerConfig.from_dict(cfg.to_dict()) == cfg


def test_duration_penalty_lengthens_code_runs_at_encode_only(make_tokenizer, tmp_path: Path) -> None:
    tok = make_tokenizer(speakers=["a"]).eval()
    wave = 0.1 * torch.randn(2, 1, 16000)
    changes = lambda c: int((c.codes[:, 1:] != c.codes[:, :-1]).sum())  # noqa: E731
    plain = tok.encode(wave, 16000)
    smooth = tok.encode(wave, 16000, duration_penalty=3.0)
    assert smooth.codes.shape == plain.codes.shape and changes(smooth) < changes(plain)
    assert tok.decode(smooth, speaker="a").shape == tok.decode(plain, speaker="a").shape
    # the config's penalty is the default, kept by save/load; an explicit 0 turns it off
    penalised = make_tokenizer(speakers=["a"], duration_penalty=3.0).eval()
    assert torch.equal(penalised.encode(wave, 16000).codes, smooth.codes)
    assert torch.equal(penalised.encode(wave, 16000, duration_penalty=0).codes, plain.codes)
    penalised.save_pretrained(tmp_path / "tok")
    assert torch.equal(SpeechTokenizer.from_pretrained(tmp_path / "tok").encode(wave, 16000).codes, smooth.codes)
    with pytest.raises(ValueError, match="duration_penalty"):
        tok.encode(wave, 16000, duration_penalty=-1.0)
    rvq = make_tokenizer(quantizer="rvq", num_quantizers=2).eval()
    assert rvq.encode(wave, 16000, duration_penalty=3.0).codes.shape == (2, 51, 2)


def test_conversion_and_reconstruction_figures(make_tokenizer, corpus: Path) -> None:
    tok = make_tokenizer(speakers=["spk0", "spk1"], griffin_lim_iters=4).eval()
    utt = list_utterances(corpus)[0]
    wave, rate = load_audio(utt.path)
    converted = convert_voice(tok, wave, rate, "spk1")
    assert converted.ndim == 1 and abs(converted.shape[0] - wave.shape[0]) <= 160
    with pytest.raises(ValueError, match="one mono utterance"):
        convert_voice(tok, wave[None], rate, "spk1")
    figures = evaluate_reconstruction(tok, [wave], [rate], ["spk0"])
    assert figures.num_utterances == 1 and figures.bitrate == 200.0
    assert 0.0 <= figures.stoi <= 1.0 and figures.stoi_vocoder > 0.8  # Griffin-Lim of the true mel is intelligible
    assert figures.log_mel_distance > figures.log_mel_distance_vocoder  # an untrained model is far off


def test_package_docstring_example_runs() -> None:
    import doctest

    import modalities.speech

    result = doctest.testmod(modalities.speech, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_utterance_normalisation_ignores_per_bin_offsets_and_scales(make_tokenizer) -> None:
    tok = make_tokenizer(encoder_norm="utterance").eval()
    x = torch.randn(2, 80, 40)
    shifted = 3.0 * x + torch.randn(1, 80, 1)  # a per-bin offset (e.g. a channel or a speaker's average spectrum)
    assert torch.equal(tok.encode_features(x).codes, tok.encode_features(shifted).codes)
    plain = make_tokenizer().eval()
    assert not torch.equal(plain.encode_features(x).codes, plain.encode_features(shifted).codes)
    with pytest.raises(ValueError, match="encoder_norm"):
        SpeechTokenizerConfig(encoder_norm="speaker")
    shape = make_tokenizer(encoder_norm="shape")
    seen = shape._encoder_input(x)
    assert torch.allclose(seen.mean(dim=1), torch.zeros(2, 40), atol=1e-5)  # no frame keeps a level of its own


def test_cepstral_target_is_the_standardised_envelope(make_tokenizer) -> None:
    log_mels = torch.randn(3, 80, 50) * 2 - 5
    full = make_tokenizer(target_cepstra=80)  # every cosine kept: the map back is exact
    full.set_feature_stats(log_mels)
    x = (log_mels - full.mel_mean[:, None]) / full.mel_std[:, None]
    y = full.target(x)
    assert y.shape == (3, 80, 50)
    torch.testing.assert_close(y.mean(dim=(0, 2)), torch.zeros(80), atol=1e-4, rtol=0)  # standardised per cepstrum
    torch.testing.assert_close(y.std(dim=(0, 2)), torch.ones(80), atol=1e-3, rtol=0)
    torch.testing.assert_close(full.target_to_features(y), x, atol=1e-4, rtol=1e-4)
    flat = make_tokenizer(target_cepstra=1)  # one cosine: each frame's envelope is flat across bins
    flat.set_feature_stats(log_mels)
    back = flat.target_to_features(flat.target(x)) * flat.mel_std[:, None] + flat.mel_mean[:, None]
    torch.testing.assert_close(back, back.mean(dim=1, keepdim=True).expand_as(back), atol=1e-4, rtol=1e-4)
    smooth = make_tokenizer(target_cepstra=20, speakers=["a"]).train()
    out = smooth(smooth.features(smooth.preprocess(0.1 * torch.randn(2, 1, 4000), 16000)), speaker=0)
    assert out.reconstruction.shape == (2, 20, 26) and out.contrastive_loss.item() == 0.0
    assert smooth.eval().decode(smooth.encode(0.1 * torch.randn(4000), 16000), speaker="a").shape == (1, 4000)
    assert "dct" not in smooth.state_dict() and "cepstrum_std" in smooth.state_dict()  # the DCT comes from the config
    with pytest.raises(ValueError, match="target_cepstra"):
        SpeechTokenizerConfig(target_cepstra=81)


def test_contrastive_loss_trains_the_encoder_and_is_saved(make_tokenizer, tmp_path: Path) -> None:
    tok = make_tokenizer(speakers=["a", "b"], contrastive_weight=0.5, contrastive_steps=3, target_cepstra=12).train()
    x = tok.features(tok.preprocess(0.1 * torch.randn(2, 1, 8000), 16000))
    out = tok(x, speaker=torch.tensor([0, 1]))
    assert out.contrastive_loss > 0
    torch.testing.assert_close(
        out.loss, out.reconstruction_loss + out.quantizer_output.loss + 0.5 * out.contrastive_loss
    )
    out.contrastive_loss.backward()  # the CPC term alone reaches the encoder
    assert tok.encoder.input.weight.grad.abs().sum() > 0 and tok.future.predict.weight.grad.abs().sum() > 0
    tok.save_pretrained(tmp_path / "tok")
    back = SpeechTokenizer.from_pretrained(tmp_path / "tok")
    assert back.config == tok.config and back.config.contrastive_steps == 3 and back.config.target_cepstra == 12
    wave = 0.1 * torch.randn(8000)
    assert torch.equal(back.encode(wave, 16000).codes, tok.eval().encode(wave, 16000).codes)
    torch.testing.assert_close(back.future.predict.weight, tok.future.predict.weight)
    assert make_tokenizer().future is None  # off by default: no context network, older directories still load
    with pytest.raises(ValueError, match="contrastive_weight"):
        SpeechTokenizerConfig(contrastive_weight=-1.0)


def test_decoder_kernel_one_decodes_each_code_on_its_own(make_tokenizer) -> None:
    def codes_seen(tok: SpeechTokenizer) -> list[int]:
        q = torch.zeros(1, 20, 8, requires_grad=True)  # (b, n, d) code vectors
        tok._decode_vectors(q, torch.tensor([0]))[0, :, 20].sum().backward()  # mel frame 20 sits on code 10
        return (q.grad.abs().sum(dim=-1)[0] > 0).nonzero().flatten().tolist()

    assert codes_seen(make_tokenizer(speakers=["a"], decoder_kernel_size=1)) == [9, 10]  # the upsampling's overlap
    assert len(codes_seen(make_tokenizer(speakers=["a"]))) > 4
    with pytest.raises(ValueError, match="decoder_kernel_size"):
        SpeechTokenizerConfig(decoder_kernel_size=2)
