"""Training a units tokenizer in stages, as one run of the generic training loop.

Dimension legend: ``b`` batch (utterances), ``m`` mel bins, ``f`` mel frames, ``n`` unit frames, ``d`` width.

The stages follow each other on one step counter (``train.iteration_steps`` then ``train.decoder_steps``):

1. masked prediction, iteration 1: targets are k-means (``target_clusters[0]``) of each frame's
   standardised MFCC+Δ+ΔΔ (``target_features`` ``mfcc``) and/or log-mel (``logmel``, two mel frames per unit
   frame), each set scored by its own head;
2. masked prediction, iteration ``i`` > 1: targets are k-means of the encoder's layer ``target_layer``,
   fitted at the iteration's first step and kept in the run's ``checkpoint/`` folder, so a resumed
   run trains on the same targets;
3. the codebook: k-means (``codebook_size``) of layer ``code_layer``'s standardised vectors, fitted at the
   decoder stage's first step and kept in the model;
4. the decoder on the frozen codes (encoder and codebook fixed), with its speaker embedding.

Items are whole utterances (padded within a batch). The step counter lives in the model
(``trained_steps``), so the stage is known again after a resume. Nothing here reads a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from modalities.speech.baselines import kmeans_codes, mfcc_frames
from modalities.speech.data import SpeechSplit, encode_waveforms, phone_inventory, phone_segments
from modalities.speech.phones import analyse
from modalities.speech.training import SpeechTrainingData, subset
from modalities.speech.units.config import UnitsSchedule
from modalities.speech.units.encoder import UnitsEncoder
from modalities.speech.units.tokenizer import UnitsTokenizer
from tokenizers_vq.io import atomic_path
from tokenizers_vq.metrics import code_stats
from tokenizers_vq.progress import progress
from tokenizers_vq.search import kmeans, nearest_codes
from tokenizers_vq.training import StepOutput


def pad_batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel ``(m, f_i)`` of a batch → ``(b, m, f)`` with ``f`` the longest, even (last frame repeated), and ``(b,)``
    real frames."""
    f = max(x.shape[-1] for x in features)
    f += f % 2
    x = torch.stack([F.pad(x[None], (0, f - x.shape[-1]), mode="replicate")[0] for x in features])
    return x, torch.tensor([x.shape[-1] for x in features], device=x.device)


def unit_frames(features: torch.Tensor) -> torch.Tensor:
    """Standardised log-mel ``(m, f)`` at the units' rate: ``(n, m)``, unit frame ``i`` the mean of mel frames ``2i``
    and ``2i + 1`` (the last repeated when ``f`` is odd), ``n = ceil(f / 2)``: what the encoder's stride-2 frame sees."""
    x = features.float().cpu()
    if x.shape[-1] % 2:
        x = torch.cat([x, x[:, -1:]], dim=-1)
    return rearrange(x, "m (n two) -> n m two", two=2).mean(-1)


@torch.no_grad()
def layer_vectors(model: UnitsTokenizer, features: list[torch.Tensor], layer: int) -> list[torch.Tensor]:
    """Layer ``layer``'s vectors ``(n_i, d)`` of each utterance's standardised log-mel ``(m, f_i)`` (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        rows = progress(features, desc=f"layer {layer} vectors", unit="utterance")
        return [model.hidden(x[None], layer)[0].float().cpu() for x in rows]
    finally:
        model.train(was_training)


def fit_codebook(model: UnitsTokenizer, features: list[torch.Tensor], seed: int) -> None:
    """The codebook: k-means (``codebook_size``) of layer ``code_layer``'s vectors, standardised per dimension; of
    ``codebook_restarts`` runs (seeds ``seed``, ``seed + 1``, ...), the one with the lowest mean squared distance."""
    vectors = torch.cat(layer_vectors(model, features, model.config.code_layer))  # (N, d)
    mean, std = vectors.mean(0), vectors.std(0).clamp_min(1e-5)
    standard = (vectors - mean) / std
    centroids, best = None, float("inf")
    for run in range(model.config.codebook_restarts):
        candidate, _ = kmeans(standard, model.config.codebook_size, iters=20, seed=seed + run)
        codes = nearest_codes(standard, candidate, (candidate * candidate).sum(1))
        distance = float((standard - candidate[codes]).square().sum(1).mean())
        if distance < best:
            centroids, best = candidate, distance
    assert centroids is not None
    device = model.mel_mean.device
    model.set_codebook(centroids.to(device), mean.to(device), std.to(device))


@dataclass
class UnitsTraining:
    """The staged training of a :class:`UnitsTokenizer` over whole utterances (see the module docstring)."""

    model: UnitsTokenizer
    data: Any  # the recipe's data section (phone map, TextGrid tier)
    schedule: UnitsSchedule
    features: list[torch.Tensor]  # (m, f_i) standardised log-mel of each training utterance, on the device
    speakers: torch.Tensor  # (U,) speaker indices
    targets: dict[int, list[torch.Tensor]]  # iteration (0-based) -> (n_i,) cluster indices of each utterance
    folder: Path  # where later iterations' targets are kept (the run's checkpoint folder)
    seed: int
    eval_train: SpeechSplit
    eval_held: SpeechSplit
    progress: ClassVar[tuple[str, ...]] = ("loss", "stage")

    @classmethod
    def build(cls, model: UnitsTokenizer, cfg: Any, data: SpeechTrainingData) -> UnitsTraining:
        """Standardise the training log-mel (statistics kept in the model) and fit iteration 1's targets (one k-means
        per entry of ``target_features``)."""
        if (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        ):
            # Masked prediction calls the model's own method, past DistributedDataParallel's gradient averaging.
            raise ValueError("a speech units tokenizer trains in one process; run train-tokenizer without torchrun.")
        device = next(model.parameters()).device
        waves = data.train.waveforms
        # The statistics are overwritten by the checkpoint's own on resume.
        model.set_feature_stats([model.frontend(w[None].to(device))[0] for w in waves])
        features = [model.features(w[None].to(device))[0] for w in waves]  # (m, f_i) each
        speakers = torch.tensor([model.speakers.index(u.speaker) for u in data.train.utterances])
        lengths = [UnitsEncoder.num_frames(x.shape[-1]) for x in features]
        rate, first = model.frame_rate, model.config.first_code_time
        sets = []  # per target set, (n_i,) cluster indices of each utterance
        for name in model.config.target_features:
            if name == "logmel":
                frames = [unit_frames(x) for x in features]
            else:  # "mfcc"
                frames = [
                    mfcc_frames(w, model.sample_rate, rate, first, n) for w, n in zip(waves, lengths, strict=True)
                ]
            sets.append(kmeans_codes(frames, frames[:1], model.config.target_clusters[0], seed=cfg.seed)[0])
        codes = [np.stack(per_set, axis=-1) if len(sets) > 1 else per_set[0] for per_set in zip(*sets, strict=True)]
        targets = {0: [torch.from_numpy(c).to(device) for c in codes]}
        folder = (Path(cfg.out).expanduser() if cfg.out else Path("runs") / cfg.name) / "checkpoint"
        schedule = UnitsSchedule(cfg.train.iteration_steps, cfg.train.decoder_steps, cfg.train.warmup)
        limit = cfg.train.eval_utterances
        return cls(model, cfg.data, schedule, features, speakers, targets, folder, cfg.seed,
                   subset(data.train, limit), subset(data.held_out, limit))  # fmt: skip

    def __len__(self) -> int:
        return len(self.features)

    @property
    def stage(self) -> tuple[int, int]:
        """``(stage, step within it)`` of the next step (see :meth:`UnitsSchedule.stage`)."""
        return self.schedule.stage(int(self.model.trained_steps))

    def iteration_targets(self, iteration: int) -> list[torch.Tensor]:
        """Targets of iteration ``iteration`` (0-based): fitted at its first step, read back after a resume."""
        if iteration in self.targets:
            return self.targets[iteration]
        path = self.folder / f"units_targets_{iteration + 1}.pt"
        device = self.features[0].device
        starting = self.stage[1] == 0
        if not starting and path.exists():
            saved = torch.load(path, map_location=device, weights_only=True)
            self.targets[iteration] = list(saved)
            return self.targets[iteration]
        if not starting:
            raise FileNotFoundError(
                f"{path} (the targets of masked-prediction iteration {iteration + 1}) is missing, so this run cannot "
                "go on where it stopped; start it again with --overwrite."
            )
        cfg = self.model.config
        vectors = layer_vectors(self.model, self.features, cfg.target_layer)
        codes, _ = kmeans_codes(vectors, vectors[:1], cfg.target_clusters[iteration], seed=self.seed + iteration)
        self.targets[iteration] = [torch.from_numpy(c).to(device) for c in codes]
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save([t.cpu() for t in self.targets[iteration]], tmp)
        return self.targets[iteration]

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        model = self.model
        stage, _ = self.stage
        x, lengths = pad_batch([self.features[int(i)] for i in indices])  # (b, m, f), (b,)
        if stage < model.config.iterations:
            targets = self.iteration_targets(stage)
            n = UnitsEncoder.num_frames(x.shape[-1])
            shape = (len(indices), n, *targets[0].shape[1:])  # (b, n), or (b, n, s) for several target sets
            y = torch.zeros(shape, dtype=torch.long, device=x.device)  # padding is never masked
            for row, i in enumerate(indices.tolist()):
                y[row, : len(targets[i])] = targets[i]
            loss, accuracy = getattr(net, "module", net).masked_prediction(x, lengths, y, stage)
            figures = {"loss": float(loss.detach()), "masked_accuracy": float(accuracy), "reconstruction_loss": 0.0}
        else:
            if not bool(model.quantizer.initialized):
                fit_codebook(model, self.features, self.seed)
            model.encoder.eval()  # frozen: no dropout, so the decoder learns the codes encode gives
            out = net(x, speaker=self.speakers[indices].to(x.device), lengths=lengths)
            loss = out.loss
            figures = {
                "loss": float(loss.detach()),
                "masked_accuracy": 0.0,
                "reconstruction_loss": float(loss.detach()),
            }
        model.trained_steps += 1
        return StepOutput(loss, {**figures, "stage": float(stage + 1)})

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """The stage; with the codebook fitted, the held-out mel loss and code usage; with phone labels, the
        code→phone mapping (before the codebook: of a k-means of layer ``code_layer`` on the evaluation subset)."""
        model, train, held = self.model, self.eval_train, self.eval_held
        stage, _ = self.schedule.stage(max(0, int(model.trained_steps) - 1))
        figures: dict[str, Any] = {"stage": stage + 1}
        k, device = model.config.codebook_size, model.mel_mean.device
        speakers = model.speakers
        if bool(model.quantizer.initialized):
            losses = []
            for utt, wave in zip(held.utterances, held.waveforms, strict=True):
                if utt.speaker in speakers:
                    losses.append(float(model(model.features(wave[None].to(device)), speaker=utt.speaker).loss))
            figures["reconstruction_loss"] = float(np.mean(losses)) if losses else float("nan")
            fit_codes = encode_waveforms(model, train.waveforms)
            score_codes = encode_waveforms(model, held.waveforms)
        else:
            layer = model.config.code_layer
            fit_vectors = [model.hidden(model.features(w[None].to(device)), layer)[0].cpu() for w in train.waveforms]
            score_vectors = [model.hidden(model.features(w[None].to(device)), layer)[0].cpu() for w in held.waveforms]
            fit_codes, score_codes = kmeans_codes(fit_vectors, score_vectors, k, seed=self.seed)
        stats = code_stats(torch.from_numpy(np.concatenate(score_codes)), k)
        figures.update(usage=stats.usage, perplexity=stats.perplexity)
        if train.has_phones and held.has_phones:
            segments = [phone_segments(self.data, split.utterances) for split in (train, held)]
            first = model.config.first_code_time
            metrics, _ = analyse(
                fit_codes, score_codes, *segments, model.frame_rate, first, k, phone_inventory(*segments)
            )
            figures.update(mapping_accuracy=metrics.mapping_accuracy, pnmi=metrics.pnmi)
        return figures

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        stage = int(figures["stage"])
        name = f"masked prediction {stage}" if stage <= self.model.config.iterations else "decoder"
        line = f"eval @ step {step} ({name}): usage {figures['usage']:.2f}, perplexity {figures['perplexity']:.1f}"
        if "reconstruction_loss" in figures:
            line += f", mel loss {figures['reconstruction_loss']:.4f}"
        if "mapping_accuracy" in figures:
            line += f", phone mapping {figures['mapping_accuracy']:.3f}, pnmi {figures['pnmi']:.3f}"
        return line

    def result_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """The figures ``train-tokenizer`` reports: code rate and bitrate, then the last evaluation."""
        return {"code_rate": self.model.frame_rate, "bitrate": self.model.config.bitrate, **figures}
