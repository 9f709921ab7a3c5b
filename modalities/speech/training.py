"""Training a speech tokenizer: log-mel segments of known speakers, one step's loss and figures, evaluation.

Dimension legend: ``b`` batch, ``m`` mel bins, ``s`` frames per training segment, ``N`` segments.

Training data are the training utterances' standardised log-mel cut into segments of
``train.segment_frames`` frames with 50% overlap (shorter utterances padded by repeating their last
frame). Evaluations report the held-out mel loss and code health, and with phone labels the
code→phone mapping. The generic training recipe runs these under its autocast, evaluation mode and
RNG guards; nothing here chooses a device or a precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities.speech.data import (
    SpeechSplit,
    encode_waveforms,
    load_split,
    phone_inventory,
    phone_segments,
    speakers_of,
)
from modalities.speech.phones import analyse
from modalities.speech.tokenizer import SpeechTokenizer
from tokenizers_vq.metrics import code_stats
from tokenizers_vq.training import StepOutput


def segments(features: list[torch.Tensor], speaker_ids: list[int], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each ``(m, f)`` into ``(m, frames)`` windows every ``frames // 2`` → ``(N, m, frames)`` and speakers ``(N,)``."""
    hop = max(1, frames // 2)
    pieces, owners = [], []
    for x, speaker in zip(features, speaker_ids, strict=True):
        f = x.shape[-1]
        if f < frames:
            x = F.pad(x[None], (0, frames - f), mode="replicate")[0]
            f = frames
        starts = list(range(0, f - frames + 1, hop))
        if starts[-1] != f - frames:
            starts.append(f - frames)  # keep the utterance's end too
        pieces += [x[:, s : s + frames] for s in starts]
        owners += [speaker] * len(starts)
    return torch.stack(pieces), torch.tensor(owners, dtype=torch.long)


@dataclass
class SpeechTrainingData:
    """The training utterances and the held-out ones, as waveforms at the model's rate."""

    train: SpeechSplit
    held_out: SpeechSplit


def training_data(cfg: Any) -> SpeechTrainingData:
    """``data.train`` and ``data.eval`` at the model's rate; fills ``cfg.model.speakers`` (empty: one embedding per
    training speaker) and refuses training speakers it does not name."""
    rate = cfg.model.frontend.sample_rate
    train = load_split(cfg.data, cfg.data.train, rate, min_seconds=cfg.model.min_seconds)
    held_out = load_split(cfg.data, cfg.data.eval, rate, min_seconds=cfg.model.min_seconds)
    if not cfg.model.speakers:
        cfg.model.speakers = speakers_of(train.utterances)
    unknown = sorted(set(speakers_of(train.utterances)) - set(cfg.model.speakers))
    if unknown:
        raise ValueError(f"training speakers {unknown} are not in model.speakers={cfg.model.speakers}; add them.")
    return SpeechTrainingData(train, held_out)


def _subset(split: SpeechSplit, limit: int | None) -> SpeechSplit:
    if limit is None or limit >= len(split):
        return split
    # An even spread over the split (utterances are sorted by speaker), so every speaker is represented.
    keep = np.linspace(0, len(split) - 1, limit).round().astype(int)
    return SpeechSplit([split.utterances[i] for i in keep], [split.waveforms[i] for i in keep])


@dataclass
class SpeechTraining:
    """Log-mel segments ``(N, m, s)`` of known speakers ``(N,)`` → the tokenizer's loss and figures; evaluation on
    ``eval_train`` (to fit the code→phone mapping) and ``eval_held``."""

    model: SpeechTokenizer
    data: Any  # the recipe's data section (phone map, TextGrid tier)
    segments: torch.Tensor  # (N, m, s) standardised log-mel, on the training device
    speakers: torch.Tensor  # (N,) indices into the model's speakers
    eval_train: SpeechSplit
    eval_held: SpeechSplit
    progress: ClassVar[tuple[str, ...]] = ("loss", "usage")

    @classmethod
    def build(cls, model: SpeechTokenizer, cfg: Any, data: SpeechTrainingData) -> SpeechTraining:
        """Standardise the training log-mel with their own statistics (kept in the model) and cut them into segments."""
        device = next(model.parameters()).device
        log_mels = [model.frontend(w[None].to(device))[0] for w in data.train.waveforms]
        model.set_feature_stats(log_mels)  # overwritten by the checkpoint's own statistics on resume
        features = [(x - model.mel_mean[:, None]) / model.mel_std[:, None] for x in log_mels]
        speaker_ids = [model.speakers.index(u.speaker) for u in data.train.utterances]
        pieces, owners = segments(features, speaker_ids, cfg.train.segment_frames)  # (N, m, s), (N,)
        limit = cfg.train.eval_utterances
        return cls(model, cfg.data, pieces, owners, _subset(data.train, limit), _subset(data.held_out, limit))

    def __len__(self) -> int:
        return len(self.segments)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        device = self.segments.device
        x, speakers = self.segments[indices], self.speakers[indices].to(device)  # (b, m, s), (b,)
        out = net(x, speaker=speakers)
        q = out.quantizer_output
        figures = {
            "loss": float(out.loss.detach()),
            "reconstruction_loss": float(out.reconstruction_loss.detach()),
            "contrastive_loss": float(out.contrastive_loss.detach()),
            "usage": float(q.usage.float().mean()),
            "perplexity": float(q.perplexity.float().mean()),
            "dead_codes": float(q.dead_codes),
        }
        return StepOutput(out.loss, figures)

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Held-out mel loss and code health; with phone labels also the code→phone mapping (fit on train, score held out)."""
        model, train, held_out = self.model, self.eval_train, self.eval_held
        device = next(model.parameters()).device
        losses, codes = [], []
        speakers = model.speakers
        for utt, wave in zip(held_out.utterances, held_out.waveforms, strict=True):
            x = model.features(wave[None].to(device))
            spk = utt.speaker if utt.speaker in speakers else None
            if spk is None and speakers:
                continue  # a held-out speaker has no embedding to decode with
            out = model(x, speaker=spk)
            losses.append(float(out.reconstruction_loss))
            codes.append(out.codes[0].cpu().numpy())
        figures: dict[str, Any] = {"reconstruction_loss": float(np.mean(losses)) if losses else float("nan")}
        flat = np.concatenate([c.reshape(len(c), -1)[:, 0] for c in codes]) if codes else np.zeros(0, np.int64)
        k = model.config.num_codes
        stats = code_stats(torch.from_numpy(flat), k)
        figures.update(usage=stats.usage, perplexity=stats.perplexity)
        if train.has_phones and held_out.has_phones:
            fit_segments = phone_segments(self.data, train.utterances)
            score_segments = phone_segments(self.data, held_out.utterances)
            first_level = [c.reshape(len(c), -1)[:, 0] for c in encode_waveforms(model, train.waveforms)]
            held_codes = [c.reshape(len(c), -1)[:, 0] for c in encode_waveforms(model, held_out.waveforms)]
            phones = phone_inventory(fit_segments, score_segments)
            metrics, _ = analyse(first_level, held_codes, fit_segments, score_segments, model.frame_rate,
                                 model.config.first_code_time, k, phones)  # fmt: skip
            figures.update(mapping_accuracy=metrics.mapping_accuracy, pnmi=metrics.pnmi)
        return figures

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        line = (
            f"eval @ step {step}: mel loss {figures['reconstruction_loss']:.4f}, usage {figures['usage']:.2f}, "
            f"perplexity {figures['perplexity']:.1f}"
        )
        if "mapping_accuracy" in figures:
            line += f", phone mapping {figures['mapping_accuracy']:.3f}, pnmi {figures['pnmi']:.3f}"
        return line

    def result_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """The figures ``train-tokenizer`` reports: code rate and bitrate, then the last evaluation."""
        return {"code_rate": self.model.frame_rate, "bitrate": self.model.config.bitrate, **figures}
