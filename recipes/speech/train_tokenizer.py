"""Train a speech tokenizer (VQ-VAE on log-mel, speaker-conditioned decoder) with Adam, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``m`` mel bins, ``s`` frames per training segment, ``N`` segments.

The run directory is every training recipe's (:mod:`recipes.engine.checkpoint`):
``config.yaml``, ``metrics.jsonl`` (with TensorBoard's copy in ``tensorboard/``), ``tokenizer/`` and
``checkpoint/state.pt``, written in the same order and resumed the same way. Training data are the training utterances' standardised log-mel
cut into segments of ``train.segment_frames`` frames with 50% overlap (shorter utterances padded
by repeating their last frame); segments are drawn in a seeded order that the checkpoint records.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from modalities.speech import SpeechTokenizer, SpeechTokenizerOutput, speakers_of
from recipes.engine import parallel
from recipes.engine.checkpoint import RunPaths, run_dir, start_training
from recipes.engine.parallel import Ranks, codebook_check, raise_if_disagree
from recipes.engine.runlog import RunLog, after_step, due
from recipes.engine.runtime import (
    autocast,
    evaluation_mode,
    optimizer_step,
    seed_everything,
    setup_runtime,
)
from recipes.image.train_tokenizer import TrainResult
from recipes.speech.common import SpeechSplit, analyse, encode_waveforms, load_split, phone_inventory, phone_segments
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


class Meter:
    """Means of the training figures over one log interval."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, out: SpeechTokenizerOutput) -> None:
        q = out.quantizer_output
        values = {
            "loss": float(out.loss.detach()),
            "reconstruction_loss": float(out.reconstruction_loss.detach()),
            "contrastive_loss": float(out.contrastive_loss.detach()),
            "usage": float(q.usage.float().mean()),
            "perplexity": float(q.perplexity.float().mean()),
            "dead_codes": float(q.dead_codes),
        }
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def row(self, step: int, lr: float, seconds: float) -> dict[str, Any]:
        n = max(self.count, 1)
        row = {"kind": "train", "step": step, "lr": lr, "seconds": round(seconds, 3)}
        row.update({k: v / n for k, v in self.sums.items()})
        self.sums, self.count = {}, 0
        return row


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
            fit_segments = phone_segments(cfg, train.utterances)
            score_segments = phone_segments(cfg, held_out.utterances)
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


def run(cfg: SpeechRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data.train`` for ``cfg.train.steps`` steps; see the module docstring.

    ``cfg.model.speakers`` empty (the default) means: one embedding per training speaker. Under
    ``torchrun`` every rank takes its contiguous share of each batch of segments with
    DistributedDataParallel, codebooks stay identical across ranks (checked at every checkpoint) and
    rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    device = setup_runtime(cfg)
    rate = cfg.model.frontend.sample_rate
    train = load_split(cfg, cfg.data.train, rate)
    held_out = load_split(cfg, cfg.data.eval, rate)
    if not cfg.model.speakers:
        cfg.model.speakers = speakers_of(train.utterances)
    unknown = sorted(set(speakers_of(train.utterances)) - set(cfg.model.speakers))
    if unknown:
        raise ValueError(f"training speakers {unknown} are not in model.speakers={cfg.model.speakers}; add them.")
    with parallel.joined(device) as ranks:
        return _train(cfg, ranks, train, held_out, resume, overwrite)


def _train(
    cfg: SpeechRecipeConfig, ranks: Ranks, train: SpeechSplit, held_out: SpeechSplit, resume: bool, overwrite: bool
) -> TrainResult:
    paths = RunPaths(run_dir(cfg))
    tc, device = cfg.train, ranks.device
    has_state = ranks.open_run(paths, cfg, tc.batch_size, resume, overwrite)

    seed_everything(cfg.seed)
    model = SpeechTokenizer(cfg.model).to(device).train()
    log_mels = [model.frontend(w[None].to(device))[0] for w in train.waveforms]
    model.set_feature_stats(log_mels)  # overwritten by the checkpoint's own statistics on resume
    features = [(x - model.mel_mean[:, None]) / model.mel_std[:, None] for x in log_mels]
    speaker_ids = [cfg.model.speakers.index(u.speaker) for u in train.utterances]
    data, owners = segments(features, speaker_ids, tc.segment_frames)  # (N, m, s), (N,)
    del log_mels, features

    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    start = start_training(paths, model, optimizer, len(data), tc.batch_size, cfg.seed, has_state)
    order, step, resumed_from = start.order, start.step, start.resumed_from
    log = RunLog(paths, start.rows, resumed_from, enabled=ranks.is_main)
    net = ranks.wrap(model)
    eval_train, eval_held = _subset(train, tc.eval_utterances), _subset(held_out, tc.eval_utterances)

    figures: dict[str, Any] = {}
    codebooks: dict[str, Any] | None = None
    meter = Meter()
    began = time.monotonic()
    stopped_by_budget = False
    bar = tqdm(total=tc.steps, initial=step, desc=f"train {cfg.name}", unit="step", dynamic_ncols=True,
               file=sys.stderr, disable=None if ranks.is_main else True)  # fmt: skip

    def train_row() -> dict[str, Any]:
        row = meter.row(step, tc.lr, start.seconds_before + elapsed)
        bar.set_postfix(loss=f"{row['loss']:.4f}", usage=f"{row['usage']:.2f}", refresh=False)
        return row

    def evaluation() -> dict[str, Any]:
        result = evaluate_during_training(cfg, model, eval_train, eval_held)
        bar.write(_eval_line(step, result), file=sys.stderr)
        return result

    try:
        while step < tc.steps:
            batch = ranks.share(order.next())  # this rank's contiguous share of the global batch
            x, speakers = data[batch].to(device), owners[batch].to(device)  # (b, m, s), (b,)
            with autocast(cfg.precision, device):
                out = net(x, speaker=speakers)
            optimizer_step(out.loss, optimizer, model, tc.grad_clip, step, "lower train.lr or set train.grad_clip")
            step += 1
            meter.add(out)
            bar.update(1)

            elapsed = time.monotonic() - began
            stopped_by_budget = ranks.out_of_time(elapsed, tc.max_minutes, step, tc.steps)
            last = step == tc.steps or stopped_by_budget
            checked = codebook_check(model, ranks, step) if due(step, tc.checkpoint_every, last) else None
            codebooks = checked or codebooks
            figures = after_step(log, tc, step, last, train_row=train_row, evaluate=evaluation, codebooks=checked,
                                 model=model, optimizer=optimizer, order=order,
                                 seconds=start.seconds_before + elapsed) or figures  # fmt: skip
            raise_if_disagree(checked)
            if stopped_by_budget:
                break
    finally:
        bar.close()
        log.close()

    if ranks.is_main and not figures:  # nothing left to train (a resumed run that was already complete)
        figures = evaluate_during_training(cfg, model, eval_train, eval_held)
        if not paths.tokenizer.exists():
            model.save_pretrained(paths.tokenizer)
    figures = {"code_rate": model.frame_rate, "bitrate": cfg.model.bitrate, **figures}
    return TrainResult(
        run_dir=str(paths.root),
        tokenizer_dir=str(paths.tokenizer),
        step=step,
        steps=tc.steps,
        resumed_from=resumed_from,
        stopped_by_budget=stopped_by_budget,
        seconds=round(time.monotonic() - began, 3),
        figures=figures,
        world_size=ranks.world,
        codebook_checksum=None if codebooks is None else codebooks["codebook_checksum"],
    )


def _eval_line(step: int, figures: dict[str, Any]) -> str:
    line = (
        f"eval @ step {step}: mel loss {figures['reconstruction_loss']:.4f}, usage {figures['usage']:.2f}, "
        f"perplexity {figures['perplexity']:.1f}"
    )
    if "mapping_accuracy" in figures:
        line += f", phone mapping {figures['mapping_accuracy']:.3f}, pnmi {figures['pnmi']:.3f}"
    return line
