"""Train a speech tokenizer (VQ-VAE on log-mel, speaker-conditioned decoder) with Adam, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``m`` mel bins, ``s`` frames per training segment, ``N`` segments.

The loop, the run directory and resuming are :func:`recipes.engine.trainer.fit`'s (the same as every
training recipe's); this module is the speech :class:`SpeechTask`. Training data are the training
utterances' standardised log-mel cut into segments of ``train.segment_frames`` frames with 50% overlap
(shorter utterances padded by repeating their last frame); segments are drawn in a seeded order that
the checkpoint records. Evaluations report the held-out mel loss and code health, and with phone
labels the code→phone mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modalities.speech import SpeechTokenizer, speakers_of
from modalities.speech.task import SpeechSplit, encode_waveforms, load_split, phone_inventory, phone_segments
from recipes.engine import parallel
from recipes.engine.checkpoint import RunPaths, run_dir
from recipes.engine.results import TrainResult
from recipes.engine.runtime import autocast, evaluation_mode, seed_everything, setup_runtime
from recipes.engine.trainer import StepOutput, adam, fit
from recipes.speech.common import analyse
from recipes.speech.config import SpeechRecipeConfig
from tokenizers_vq.metrics import code_stats


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
class SpeechTask:
    """Log-mel segments ``(N, m, s)`` of known speakers ``(N,)`` → the tokenizer's loss and figures; evaluation on
    ``eval_train`` (to fit the code→phone mapping) and ``eval_held``."""

    cfg: SpeechRecipeConfig
    model: SpeechTokenizer
    segments: torch.Tensor  # (N, m, s) standardised log-mel, on the training device
    speakers: torch.Tensor  # (N,) indices into cfg.model.speakers
    eval_train: SpeechSplit
    eval_held: SpeechSplit
    progress: ClassVar[tuple[str, ...]] = ("loss", "usage")

    def __len__(self) -> int:
        return len(self.segments)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        device = self.segments.device
        x, speakers = self.segments[indices], self.speakers[indices].to(device)  # (b, m, s), (b,)
        with autocast(self.cfg.precision, device):
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

    def evaluate(self) -> dict[str, Any]:
        return evaluate_during_training(self.cfg, self.model, self.eval_train, self.eval_held)

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        line = (
            f"eval @ step {step}: mel loss {figures['reconstruction_loss']:.4f}, usage {figures['usage']:.2f}, "
            f"perplexity {figures['perplexity']:.1f}"
        )
        if "mapping_accuracy" in figures:
            line += f", phone mapping {figures['mapping_accuracy']:.3f}, pnmi {figures['pnmi']:.3f}"
        return line


@torch.no_grad()
def evaluate_during_training(
    cfg: SpeechRecipeConfig, model: SpeechTokenizer, train: SpeechSplit, held_out: SpeechSplit
) -> dict[str, Any]:
    """Held-out mel loss and code health; with phone labels also the code→phone mapping (fit on train, score held out).

    Leaves the global RNG and the model's training flag as they were.
    """
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), evaluation_mode(model), autocast(cfg.precision, device):
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
        k = model.config.codebook_size
        stats = code_stats(torch.from_numpy(flat), k)
        figures.update(usage=stats.usage, perplexity=stats.perplexity)
        if train.has_phones and held_out.has_phones:
            fit_segments = phone_segments(cfg.data, train.utterances)
            score_segments = phone_segments(cfg.data, held_out.utterances)
            first_level = [c.reshape(len(c), -1)[:, 0] for c in encode_waveforms(model, train.waveforms)]
            held_codes = [c.reshape(len(c), -1)[:, 0] for c in encode_waveforms(model, held_out.waveforms)]
            metrics, _ = analyse(
                first_level,
                held_codes,
                fit_segments,
                score_segments,
                model.frame_rate,
                model.config.first_code_time,
                k,
                phone_inventory(fit_segments, score_segments),
            )
            figures.update(mapping_accuracy=metrics.mapping_accuracy, pnmi=metrics.pnmi)
    return figures


def _subset(split: SpeechSplit, limit: int | None) -> SpeechSplit:
    if limit is None or limit >= len(split):
        return split
    # An even spread over the split (utterances are sorted by speaker), so every speaker is represented.
    keep = np.linspace(0, len(split) - 1, limit).round().astype(int)
    return SpeechSplit([split.utterances[i] for i in keep], [split.waveforms[i] for i in keep])


def run(
    cfg: SpeechRecipeConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data.train`` for ``cfg.train.steps`` steps; see the module docstring.

    ``cfg.model.speakers`` empty (the default) means: one embedding per training speaker. Under
    ``torchrun`` every rank takes its contiguous share of each batch of segments with
    DistributedDataParallel, codebooks stay identical across ranks (checked at every checkpoint) and
    rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    device = setup_runtime(cfg)
    rate, tc = cfg.model.frontend.sample_rate, cfg.train
    train = load_split(cfg.data, cfg.data.train, rate)
    held_out = load_split(cfg.data, cfg.data.eval, rate)
    if not cfg.model.speakers:
        cfg.model.speakers = speakers_of(train.utterances)
    unknown = sorted(set(speakers_of(train.utterances)) - set(cfg.model.speakers))
    if unknown:
        raise ValueError(f"training speakers {unknown} are not in model.speakers={cfg.model.speakers}; add them.")
    paths = RunPaths(run_dir(cfg))
    with parallel.joined(device) as ranks:
        seed_everything(cfg.seed)
        model = SpeechTokenizer(cfg.model).to(ranks.device).train()
        model.data_source = asdict(cfg.data)  # saved with the weights: verbs given the tokenizer find its data
        log_mels = [model.frontend(w[None].to(ranks.device))[0] for w in train.waveforms]
        model.set_feature_stats(log_mels)  # overwritten by the checkpoint's own statistics on resume
        features = [(x - model.mel_mean[:, None]) / model.mel_std[:, None] for x in log_mels]
        speaker_ids = [cfg.model.speakers.index(u.speaker) for u in train.utterances]
        data, owners = segments(features, speaker_ids, tc.segment_frames)  # (N, m, s), (N,)
        del log_mels, features
        task = SpeechTask(cfg, model, data, owners, _subset(train, tc.eval_utterances),
                          _subset(held_out, tc.eval_utterances))  # fmt: skip
        outcome = fit(task, model, adam(model, tc), tc, paths, ranks, seed=cfg.seed, config=cfg, resume=resume,
                      overwrite=overwrite, desc=f"train {cfg.name}", on_step=on_step)  # fmt: skip
    figures = {"code_rate": model.frame_rate, "bitrate": cfg.model.bitrate, **outcome.figures}
    return TrainResult.from_outcome(outcome, run_dir=str(paths.root), tokenizer_dir=str(paths.weights), figures=figures)
