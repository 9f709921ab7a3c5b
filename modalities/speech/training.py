"""Training a speech tokenizer: log-mel segments of known speakers, one step's loss and figures, evaluation.

Dimension legend: ``b`` batch, ``m`` mel bins, ``s`` frames per training segment, ``N`` segments.

Training data are the training utterances' standardised log-mel cut into segments of
``train.segment_frames`` frames with 50% overlap (shorter utterances padded by repeating their last
frame). A reference-clip tokenizer hears each segment's voice from a segment of another utterance
by the same speaker, drawn anew at every step. Evaluations report the held-out mel loss (a table of
speakers skips, and says so, utterances of speakers it has no embedding for; a reference-clip model
decodes them from another of their utterances) and code health, and with phone labels the
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
from modalities.speech.references import ReferenceSampler, own_speaker_references
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


def subset(split: SpeechSplit, limit: int | None) -> SpeechSplit:
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
    # A reference-clip model's reference segments: (N,) frames of each segment that are its utterance's own
    # (the rest repeats the last frame), and the draw of another utterance's segment by the same speaker.
    lengths: torch.Tensor | None = None
    references: ReferenceSampler | None = None
    progress: ClassVar[tuple[str, ...]] = ("loss", "usage")

    @classmethod
    def build(cls, model: SpeechTokenizer, cfg: Any, data: SpeechTrainingData) -> SpeechTraining:
        """Standardise the training log-mel with their own statistics (kept in the model) and cut them into segments."""
        device = next(model.parameters()).device
        log_mels = [model.frontend(w[None].to(device))[0] for w in data.train.waveforms]
        model.set_feature_stats(log_mels)  # overwritten by the checkpoint's own statistics on resume
        features = [(x - model.mel_mean[:, None]) / model.mel_std[:, None] for x in log_mels]
        speaker_ids = [model.speakers.index(u.speaker) for u in data.train.utterances]
        frames = cfg.train.segment_frames
        pieces, utterance = segments(features, list(range(len(features))), frames)  # (N, m, s), (N,) utterances
        owners = torch.tensor(speaker_ids, dtype=torch.long)[utterance]  # (N,) speakers
        limit = cfg.train.eval_utterances
        training = cls(model, cfg.data, pieces, owners, subset(data.train, limit), subset(data.held_out, limit))
        if model.speaker_reference:
            sizes = torch.tensor([min(x.shape[-1], frames) for x in features])
            training.lengths = sizes[utterance].to(device)
            training.references = ReferenceSampler(owners, utterance)
        return training

    def __len__(self) -> int:
        return len(self.segments)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        device = self.segments.device
        x, speakers = self.segments[indices], self.speakers[indices].to(device)  # (b, m, s), (b,)
        if self.references is not None:
            refs = self.references.sample(indices).to(device)  # (b,) segments of other utterances, same speakers
            out = net(x, reference=self.segments[refs], reference_lengths=self.lengths[refs])
        else:
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
        """Held-out mel loss and code health; with phone labels also the code→phone mapping (fit on train, score held out).

        Every held-out utterance counts in the code health. The mel loss decodes each in its own voice: from
        another of its speaker's held-out utterances with a reference-clip model (``reconstruction_loss_unseen``:
        the speakers it was not trained on), or by its table embedding, skipping (and counting in
        ``skipped_utterances``) speakers without one; no utterance left: no mel loss.
        """
        model, train, held_out = self.model, self.eval_train, self.eval_held
        device = next(model.parameters()).device
        losses, unseen_losses, codes, skipped = [], [], [], []
        speakers, reference = model.speakers, model.speaker_reference
        xs = [model.features(wave[None].to(device)) for wave in held_out.waveforms]
        partners = own_speaker_references([u.speaker for u in held_out.utterances])
        for i, (utt, x) in enumerate(zip(held_out.utterances, xs, strict=True)):
            if reference:
                out = model(x, reference=xs[partners[i]])
                (losses if utt.speaker in speakers else unseen_losses).append(float(out.reconstruction_loss))
            elif speakers and utt.speaker not in speakers:  # no embedding to decode this speaker with
                skipped.append(utt.speaker)
                out = None
            else:
                out = model(x, speaker=utt.speaker if speakers else None)
                losses.append(float(out.reconstruction_loss))
            codes.append((out.codes if out is not None else model.encode_features(x).codes)[0].cpu().numpy())
        figures: dict[str, Any] = {}
        if losses or unseen_losses:
            figures["reconstruction_loss"] = float(np.mean(losses + unseen_losses))
        if unseen_losses:
            figures["reconstruction_loss_unseen"] = float(np.mean(unseen_losses))
        if skipped:
            figures.update(skipped_utterances=len(skipped), skipped_speakers=sorted(set(skipped)))
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
        parts = []
        if "reconstruction_loss" in figures:
            parts.append(f"mel loss {figures['reconstruction_loss']:.4f}")
        if "reconstruction_loss_unseen" in figures:
            parts[-1] += f" (unseen speakers {figures['reconstruction_loss_unseen']:.4f})"
        parts.append(f"usage {figures['usage']:.2f}, perplexity {figures['perplexity']:.1f}")
        if "mapping_accuracy" in figures:
            parts.append(f"phone mapping {figures['mapping_accuracy']:.3f}, pnmi {figures['pnmi']:.3f}")
        if "skipped_utterances" in figures:
            parts.append(
                f"no mel loss for {figures['skipped_utterances']} held-out utterances of "
                f"{', '.join(figures['skipped_speakers'])} (no speaker embedding; train with "
                "model.speaker_conditioning=reference to decode any speaker)"
            )
        return f"eval @ step {step}: " + ", ".join(parts)

    def result_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """The figures ``train-tokenizer`` reports: code rate and bitrate, then the last evaluation."""
        return {"code_rate": self.model.frame_rate, "bitrate": self.model.config.bitrate, **figures}
