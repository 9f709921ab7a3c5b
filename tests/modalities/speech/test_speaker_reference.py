"""Speech tokenizers that decode any speaker from a reference clip (``speaker_conditioning="reference"``), beside the
table of training speakers they leave unchanged."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from modalities.base import load_tokenizer
from modalities.speech import SpeechTokenizer, SpeechTokenizerConfig, convert_voice
from modalities.speech.layers import SpeakerEncoder
from modalities.speech.references import ReferenceSampler, own_speaker_references
from modalities.speech.task import SpeechModality

SR = 16000
# The config.json fields of a speech tokenizer saved before reference clips (the fields added since, at their
# defaults, are left out): a table tokenizer must keep exactly them.
TABLE_FIELDS = set(asdict(SpeechTokenizerConfig())) - {
    "gradient",
    "fsq_levels",
    "lfq_entropy_weight",
    "speaker_conditioning",
}
TINY = {"hidden_channels": 16, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 8, "speaker_dim": 8,
        "griffin_lim_iters": 4}  # fmt: skip


def tiny(**overrides) -> SpeechTokenizer:
    torch.manual_seed(0)
    return SpeechTokenizer(SpeechTokenizerConfig(**{**TINY, **overrides}))


def voice(f0: float, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """A buzzy vowel-like clip at pitch ``f0`` (t,)."""
    t = torch.arange(int(SR * seconds)) / SR
    g = torch.Generator().manual_seed(seed)
    return sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 6)) * 0.1 + 0.01 * torch.randn(
        len(t), generator=g
    )


def test_the_default_is_the_table_and_stays_out_of_config_json() -> None:
    table = SpeechTokenizerConfig(speakers=["a"]).to_dict()
    assert set(table) == TABLE_FIELDS and "speaker_conditioning" not in table
    reference = SpeechTokenizerConfig(speaker_conditioning="reference").to_dict()
    assert reference["speaker_conditioning"] == "reference"
    assert SpeechTokenizerConfig.from_dict(reference).speaker_reference
    with pytest.raises(ValueError, match="speaker_conditioning must be one of"):
        SpeechTokenizerConfig(speaker_conditioning="clip")


def test_a_table_tokenizer_folder_keeps_its_files_and_identity(tmp_path: Path) -> None:
    tok = tiny(speakers=["ann", "bob"]).eval()
    tok.save_pretrained(tmp_path / "tok")
    saved = json.loads((tmp_path / "tok" / "config.json").read_text())["config"]
    assert set(saved) == TABLE_FIELDS  # what tokenizers saved before reference clips hold
    names = set(load_file(str(tmp_path / "tok" / "model.safetensors")))
    assert not any(n.startswith("speaker_encoder") for n in names) and "speaker_embedding.weight" in names
    loaded = load_tokenizer(tmp_path / "tok")
    assert not loaded.speaker_reference and loaded.content_id() == tok.content_id()
    codes = tok.encode(voice(120), SR)
    assert torch.equal(loaded.decode(codes, speaker="bob"), tok.decode(codes, speaker="bob"))


def test_a_reference_tokenizer_round_trips(tmp_path: Path) -> None:
    tok = tiny(speaker_conditioning="reference", speakers=["ann", "bob"]).eval()
    tok.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.speaker_reference and loaded.speaker_embedding is None
    assert loaded.content_id() == tok.content_id()
    codes, clip = tok.encode(voice(120), SR), (voice(230, seed=1), SR)
    assert torch.equal(loaded.decode(codes, speaker=clip), tok.decode(codes, speaker=clip))


def test_decode_takes_a_clip_a_waveform_or_its_vector() -> None:
    tok = tiny(speaker_conditioning="reference").eval()
    codes, clip = tok.encode(voice(120), SR), voice(230, seed=1)
    vector = tok.embed_speaker(clip, SR)
    assert vector.shape == (1, tok.config.speaker_dim)
    from_clip = tok.decode(codes, speaker=(clip, SR))
    assert torch.allclose(tok.decode(codes, speaker=vector), from_clip)
    assert torch.allclose(tok.decode(codes, speaker=clip), from_clip)  # a bare waveform: at the model's rate
    # at another rate the clip is resampled first
    assert tok.decode(codes, speaker=(clip[::2], SR // 2)).shape == from_clip.shape
    assert not torch.allclose(tok.decode(codes, speaker=(voice(400, seed=2), SR)), from_clip)


def test_each_model_refuses_the_other_kind_of_speaker_in_one_line() -> None:
    table, reference = tiny(speakers=["ann"]).eval(), tiny(speaker_conditioning="reference").eval()
    codes = table.encode(voice(120), SR)
    with pytest.raises(ValueError, match="speaker_conditioning=reference") as err:
        table.decode(codes, speaker=(voice(200), SR))
    assert "\n" not in str(err.value)
    for bad in (None, "ann", 0):
        with pytest.raises(ValueError, match=r"reference clip: pass speaker=\(waveform, sample_rate\)"):
            reference.decode(codes, speaker=bad)


def test_the_speaker_encoder_ignores_padding_and_learns() -> None:
    torch.manual_seed(0)
    enc = SpeakerEncoder(n_mels=8, channels=6, speaker_dim=4, kernel_size=3)
    mel = torch.randn(1, 8, 20)
    padded = torch.cat([mel, torch.zeros(1, 8, 12)], dim=-1)  # (1, 8, 32), 20 frames real
    assert torch.allclose(enc(padded, torch.tensor([20])), enc(mel), atol=1e-5)
    # Trained through the decoder: a reference-clip model's loss reaches the speaker encoder.
    tok = tiny(speaker_conditioning="reference").train()
    x = tok.features(tok.preprocess(voice(120), SR))
    ref = tok.features(tok.preprocess(voice(200, seed=3), SR))
    tok(x, reference=ref, reference_lengths=torch.tensor([ref.shape[-1] - 5])).loss.backward()
    grads = [p.grad for p in tok.speaker_encoder.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_a_few_steps_then_an_unseen_speaker_decodes_in_their_voice() -> None:
    tok = tiny(speaker_conditioning="reference", speakers=["low", "high"])
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    clips = {f0: tok.features(tok.preprocess(voice(f0, seed=i), SR)) for i, f0 in enumerate((110, 115, 260, 270))}
    losses = []
    for _ in range(6):  # each clip's voice heard from the other clip of its speaker
        x = torch.cat([clips[110], clips[260]])
        ref = torch.cat([clips[115], clips[270]])
        loss = tok(x, reference=ref).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    tok.eval()
    unseen = voice(180, seconds=0.3, seed=9)  # neither training voice
    out = tok.reconstruct(unseen, SR)  # its own voice
    assert out.shape == (1, len(unseen)) and torch.isfinite(out).all()
    converted = convert_voice(tok, unseen, SR, (voice(110, seed=0), SR))
    assert converted.shape == (len(unseen),)


@pytest.mark.parametrize("extra", [0, 68, 159, 161])
def test_reconstruct_keeps_the_input_length(extra: int) -> None:
    tok = tiny(speakers=["ann"]).eval()
    wave = voice(150, seconds=0.25)[: 4000 - 160 + extra]
    assert tok.reconstruct(wave, SR, speaker="ann").shape == (1, len(wave))
    assert convert_voice(tok, wave, SR, "ann").shape == (len(wave),)


def test_references_are_another_utterance_of_the_speaker() -> None:
    assert own_speaker_references(["a", "b", "a", "a"]) == [2, 1, 3, 0]
    speakers = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    utterances = torch.tensor([0, 0, 1, 2, 3, 4, 5])  # speaker 2 has one utterance
    sampler = ReferenceSampler(speakers, utterances)
    indices = torch.arange(7).repeat(20)
    picked = sampler.sample(indices, torch.Generator().manual_seed(0))
    assert torch.equal(speakers[picked], speakers[indices])
    several = speakers[indices] != 2
    assert (utterances[picked][several] != utterances[indices][several]).all()
    assert (picked[~several] == 6).all()


def test_decompressed_wavs_and_distortion_of_a_reference_tokenizer(tmp_path: Path) -> None:
    tok = tiny(speaker_conditioning="reference").eval()
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(str(folder / "a.wav"), voice(120).numpy(), SR)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), voice(250, seed=4).numpy(), SR)
    plugin = SpeechModality()
    items = plugin.read_files(tok, str(folder))
    codes = plugin.item_codes(tok, items)
    options = SimpleNamespace(wav=True, speaker=None)
    with pytest.raises(ValueError, match="pass --speaker CLIP"):
        plugin.check_output(tok, options)
    options.speaker = str(clip)
    plugin.check_output(tok, options)
    assert plugin.write_outputs(tok, codes, ["a"], tmp_path, options) == {"wav_files": 1}
    assert sf.info(str(tmp_path / "a.wav")).samplerate == SR
    figures = plugin.distortion(tok, items, codes, None)  # each file heard from itself
    assert 0.0 <= figures["stoi"] <= 1.0
