"""Listening samples: held-out utterances, their vocoder ceiling, their reconstruction from codes, and a conversion.

For each of ``reconstruct.num_utterances`` utterances drawn (seeded) from the split, the output
directory (``out``, default ``<tokenizer dir>/../reconstructions``) gets::

    <id>_original.wav        the input, level-normalised, at the model's rate
    <id>_vocoder.wav         Griffin-Lim of the original log-mel: the best this vocoder can do
    <id>_codes.wav           decoded from the codes in the speaker's own voice
    <id>_as_<speaker>.wav    decoded from the same codes in another training speaker's voice
    figures.json             per-utterance log-mel distance and STOI, and the code bitrate
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from modalities.speech import log_mel_distance, save_audio, stoi_score
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode, setup_runtime
from recipes.speech.common import load_split, open_tokenizer, selection_of
from recipes.speech.config import SpeechRecipeConfig
from tokenizers_vq.io import atomic_write_json


@dataclass
class SpeechReconstructResult:
    """Where the WAV files went and how close each reconstruction is."""

    out_dir: str
    files: list[str]
    bitrate: float
    utterances: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        head = {"out_dir": self.out_dir, "wav_files": len(self.files), "bitrate": self.bitrate}
        return format_figures({**head, "utterances": self.utterances}, title="reconstruct")


def run(cfg: SpeechRecipeConfig) -> SpeechReconstructResult:
    """Write the listening samples described in the module docstring."""
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "reconstruct", cfg.duration_penalty)
    split = load_split(cfg, selection_of(cfg, cfg.reconstruct.split), model.sample_rate)
    known = model.speakers
    candidates = [i for i, u in enumerate(split.utterances) if not known or u.speaker in known]
    if not candidates:
        raise ValueError(
            f"no utterance of split {cfg.reconstruct.split!r} is by a speaker of this tokenizer ({known})."
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    picks = [
        candidates[int(i)] for i in torch.randperm(len(candidates), generator=gen)[: cfg.reconstruct.num_utterances]
    ]
    out_dir = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.parent / "reconstructions"
    fe, sr = model.frontend, model.sample_rate
    files: list[str] = []
    rows: list[dict[str, Any]] = []
    with evaluation_mode(model):
        for i in sorted(picks):
            utt = split.utterances[i]
            speaker = utt.speaker if known else None
            wave = fe.normalize_level(split.waveforms[i][None].to(device))  # (1, t)
            log_mel = fe(wave)
            x = model.features(wave)
            decoded = model.decode_features(model.encode_features(x), speaker)[..., : x.shape[-1]]
            length = wave.shape[-1]
            outputs = {
                "original": wave[0],
                "vocoder": fe.griffin_lim(log_mel, model.config.griffin_lim_iters, length=length)[0],
                "codes": model.features_to_waveform(decoded, length=length)[0],
            }
            others = [s for s in known if s != utt.speaker]
            if cfg.reconstruct.convert and others:
                target = others[(i + cfg.seed) % len(others)]
                converted = model.decode_features(model.encode_features(x), target)[..., : x.shape[-1]]
                outputs[f"as_{target}"] = model.features_to_waveform(converted, length=length)[0]
            for kind, samples in outputs.items():
                files.append(str(save_audio(out_dir / f"{utt.id}_{kind}.wav", samples.cpu(), sr)))
            decoded_log_mel = decoded[0] * model.mel_std[:, None] + model.mel_mean[:, None]
            rows.append(
                {
                    "utterance": utt.id,
                    "speaker": utt.speaker,
                    "seconds": round(length / sr, 3),
                    "log_mel_distance": log_mel_distance(log_mel[0], decoded_log_mel),
                    "stoi": stoi_score(wave[0], outputs["codes"], sr),
                    "stoi_vocoder": stoi_score(wave[0], outputs["vocoder"], sr),
                }
            )
    result = SpeechReconstructResult(str(out_dir), files, model.config.bitrate, rows)
    atomic_write_json(out_dir / "figures.json", result.to_dict())
    return result
