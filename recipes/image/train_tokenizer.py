"""Train an image tokenizer (VQ-VAE or VQ-VAE-2) with Adam, step by step, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``c`` channels, ``h``/``w`` image size, ``n`` training images.

It writes a run directory (``out``, default ``runs/<name>``; layout in :mod:`recipes.engine.checkpoint`)
with ``metrics.jsonl`` rows of kind ``"train"`` (means over each log interval), ``"eval"``
(figures on the held-out split) and ``"checkpoint"`` (the codebook checksum, equal on every rank),
and the same rows as TensorBoard scalars under ``tensorboard/`` (:mod:`recipes.engine.runlog`). A run killed at any moment (even by SIGKILL) resumes with
``resume=True`` from its last checkpoint, losing at most the steps since. Data order, RNG states
and codebook restarts are all restored, so a resumed run reaches the same weights as one that
never stopped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from modalities.image import ImageArrays, ImageTokenizer, ImageTokenizerOutput
from recipes.engine import parallel
from recipes.engine.checkpoint import (
    BatchOrder,
    RunPaths,
    check_run_dir,
    check_same_run,
    load_checkpoint,
    prepare_run_dir,
    run_dir,
    save_checkpoint,
    start_training,
)
from recipes.engine.parallel import Ranks, codebook_check, raise_if_disagree
from recipes.engine.results import format_figures
from recipes.engine.runlog import RunLog, after_step, due
from recipes.engine.runtime import autocast, optimizer_step, seed_everything
from recipes.image.common import check_fits, evaluate, load_split, setup_runtime
from recipes.image.config import ImageRecipeConfig

__all__ = ["BatchOrder", "Meter", "RunPaths", "TrainResult", "load_checkpoint", "run", "run_dir"]

# Earlier names of the shared run-directory helpers, now public in recipes.engine.checkpoint.
_check_run_dir, _prepare_run_dir, _check_same_run, _save_checkpoint = (
    check_run_dir,
    prepare_run_dir,
    check_same_run,
    save_checkpoint,
)


class Meter:
    """Means of the training figures over one log interval."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.per_level: dict[str, list[float]] = {}
        self.count = 0

    def add(self, out: ImageTokenizerOutput, x: torch.Tensor) -> None:
        # PSNR on the [0, 1] scale: the model works in [-1, 1], where squared errors are 4× larger.
        mse01 = float((out.reconstruction.detach().float() - x.float()).pow(2).mean()) / 4.0
        values = {
            "loss": float(out.loss.detach()),
            "reconstruction_loss": float(out.reconstruction_loss.detach()),
            "psnr": 10.0 * math.log10(1.0 / max(mse01, 1e-10)),
        }
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        for key in ("usage", "perplexity", "dead_codes"):
            level_values = [float(getattr(q, key)) for q in out.quantizer_outputs]
            old = self.per_level.get(key, [0.0] * len(level_values))
            self.per_level[key] = [a + b for a, b in zip(old, level_values, strict=True)]
        self.count += 1

    def row(self, step: int, lr: float, seconds: float) -> dict[str, Any]:
        """The interval's means as a metrics.jsonl row; resets the meter."""
        n = max(self.count, 1)
        row: dict[str, Any] = {"kind": "train", "step": step, "lr": lr, "seconds": round(seconds, 3)}
        row.update({k: v / n for k, v in self.sums.items()})
        row.update({k: [v / n for v in vs] for k, vs in self.per_level.items()})
        self.reset()
        return row


@dataclass
class TrainResult:
    """What a training run did: where it wrote, how far it got, and its last evaluation."""

    run_dir: str
    tokenizer_dir: str
    step: int  # optimizer steps completed
    steps: int  # the configured total
    resumed_from: int | None  # step of the checkpoint this invocation started from
    stopped_by_budget: bool  # train.max_minutes ran out before train.steps
    seconds: float  # wall time of this invocation's training loop
    figures: dict[str, Any] = field(default_factory=dict)  # last evaluation on the held-out split
    world_size: int = 1  # processes that trained (torchrun)
    codebook_checksum: str | None = None  # at the last checkpoint, the same on every rank

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        status = "stopped by train.max_minutes, resume with --resume" if self.stopped_by_budget else "done"
        head = {
            "run_dir": self.run_dir,
            "tokenizer": self.tokenizer_dir,
            "steps": f"{self.step}/{self.steps} ({status})",
            "seconds": self.seconds,
            "world_size": self.world_size,
            "codebook_checksum": self.codebook_checksum,
        }
        return format_figures({**head, **self.figures}, title="train-tokenizer")


def run(cfg: ImageRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` for ``cfg.train.steps`` steps; see the module docstring.

    Under ``torchrun`` (or inside an initialised process group) every rank trains on its contiguous
    share of each batch of ``train.batch_size`` images with DistributedDataParallel; the quantizers
    keep their codebooks identical across ranks (checked at every checkpoint), and rank 0 alone
    evaluates and writes files (:mod:`recipes.engine.parallel`).

    Args:
        cfg: the resolved config (e.g. ``load_config(ImageRecipeConfig, "tiny")``).
        resume: continue from the run directory's last checkpoint (a fresh start when it has none).
        overwrite: discard an existing run in the directory and start again.
    """
    device = setup_runtime(cfg)
    train_data = load_split(cfg, cfg.data.train_split, cfg.data.max_train_images, seed=cfg.seed)
    eval_data = load_split(cfg, cfg.data.eval_split, cfg.train.eval_images)
    check_fits(cfg, train_data)
    with parallel.joined(device) as ranks:
        return _train(cfg, ranks, train_data, eval_data, resume, overwrite)


def _train(
    cfg: ImageRecipeConfig, ranks: Ranks, train_data: ImageArrays, eval_data: ImageArrays, resume: bool, overwrite: bool
) -> TrainResult:
    paths = RunPaths(run_dir(cfg))
    tc, device = cfg.train, ranks.device
    has_state = ranks.open_run(paths, cfg, tc.batch_size, resume, overwrite)

    seed_everything(cfg.seed)
    model = ImageTokenizer(cfg.model).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(0.9, tc.adam_beta2), weight_decay=tc.weight_decay)
    start = start_training(paths, model, optimizer, len(train_data), tc.batch_size, cfg.seed, has_state)
    order, step, resumed_from = start.order, start.step, start.resumed_from
    log = RunLog(paths, start.rows, resumed_from, enabled=ranks.is_main)
    net = ranks.wrap(model)
    images = train_data.images.to(device) if device.type == "cuda" else train_data.images

    figures: dict[str, Any] = {}
    codebooks: dict[str, Any] | None = None
    meter = Meter()
    began = time.monotonic()
    stopped_by_budget = False
    bar = tqdm(total=tc.steps, initial=step, desc=f"train {cfg.name}", unit="step", dynamic_ncols=True,
               file=sys.stderr, disable=None if ranks.is_main else True)  # fmt: skip

    def train_row() -> dict[str, Any]:
        row = meter.row(step, tc.lr_at(step - 1), start.seconds_before + elapsed)
        usage = "/".join(f"{u:.2f}" for u in row["usage"])
        bar.set_postfix(loss=f"{row['loss']:.4f}", psnr=f"{row['psnr']:.2f}", usage=usage, refresh=False)
        return row

    def evaluation() -> dict[str, Any]:
        result = evaluate(model, eval_data, cfg.eval.batch_size, cfg.precision)
        bar.write(_eval_line(step, result), file=sys.stderr)
        return result

    try:
        while step < tc.steps:
            batch = ranks.share(order.next())  # this rank's contiguous share of the global batch
            x = model.preprocess(images[batch])  # (b, c, h, w) in [-1, 1]
            with autocast(cfg.precision, device):
                out = net(x)
            for group in optimizer.param_groups:
                group["lr"] = tc.lr_at(step)
            optimizer_step(out.loss, optimizer, model, tc.grad_clip, step, "lower train.lr or set train.grad_clip")
            step += 1
            meter.add(out, x)
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
        figures = evaluate(model, eval_data, cfg.eval.batch_size, cfg.precision)
        if not paths.tokenizer.exists():
            model.save_pretrained(paths.tokenizer)
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
    levels = figures.get("levels", [])
    usage = "/".join(f"{lvl['usage']:.2f}" for lvl in levels)
    perplexity = "/".join(f"{lvl['perplexity']:.1f}" for lvl in levels)
    return (
        f"eval @ step {step}: psnr {figures['psnr']:.2f} dB, ssim {figures['ssim']:.3f}, "
        f"usage {usage}, perplexity {perplexity}"
    )
