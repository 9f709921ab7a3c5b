"""The one training loop: every training recipe is a :class:`Task` handed to :func:`fit`.

Dimension legend: ``b`` the global batch, ``b / world`` one rank's share of it.

A recipe builds its model and optimizer and wraps what is its own (the training data, the forward
step and the held-out evaluation) in a task; :func:`fit` does the rest the same way for all:

- the run directory (:mod:`recipes.engine.checkpoint`): refused unless resumed or overwritten,
  ``config.yaml``, checkpoints that survive SIGKILL and resume to bit-identical weights (data order,
  optimizer and RNG states restored);
- the steps: a seeded data order, each rank's contiguous share of every batch
  (:mod:`recipes.engine.parallel`), the learning-rate schedule and gradient clipping;
- the log (:mod:`recipes.engine.runlog`): rows of kind ``"train"`` (the means of the task's figures
  over each log interval), ``"eval"`` and ``"checkpoint"`` (the codebook checksum, equal on every rank),
  in ``metrics.jsonl`` and TensorBoard;
- ``train.max_minutes``: stop early with a checkpoint, which ``resume`` continues;
- a progress bar on a terminal, a progress line every ~10 s in a log (:mod:`tokenizers_vq.progress`), and one
  line per evaluation (``task.describe``), on standard error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
from torch import nn

from recipes.engine.checkpoint import RESUME_FIXED, RunPaths, prepare_run_dir, start_training
from recipes.engine.parallel import Ranks, codebook_check, raise_if_disagree
from recipes.engine.runlog import RunLog, due
from tokenizers_vq.progress import progress
from tokenizers_vq.training import Figure, StepOutput

__all__ = ["Figure", "FitOutcome", "Meter", "StepOutput", "Task", "TrainSchedule", "adam", "fit"]


class Task(Protocol):
    """What a training recipe brings to :func:`fit`: its data, its step and its evaluation."""

    progress: tuple[str, ...]  # keys of the training rows shown on the progress bar, e.g. ("loss", "psnr")

    def __len__(self) -> int:
        """Training items: the batches are drawn from ``range(len(task))``."""
        ...

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        """The forward pass of ``net`` (the model; DDP with several ranks) on the items ``indices`` ``(b / world,)``."""
        ...

    def evaluate(self) -> dict[str, Any] | None:
        """Held-out figures (rank 0, global RNG and training mode left as found); None when there is no held-out set."""
        ...

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        """The line printed after an evaluation, e.g. ``eval @ step 500: psnr 24.10 dB, ...``."""
        ...


class TrainSchedule(Protocol):
    """The fields of a recipe's ``train`` section that :func:`fit` reads (``TrainConfig``, ``SpeechTrainConfig``)."""

    steps: int
    batch_size: int
    lr: float
    grad_clip: float | None
    max_minutes: float | None
    log_every: int
    eval_every: int
    checkpoint_every: int


class Meter:
    """Means of the training figures over one log interval."""

    def __init__(self) -> None:
        self.sums: dict[str, Figure] = {}
        self.count = 0

    def add(self, figures: dict[str, Figure]) -> None:
        for key, value in figures.items():
            if isinstance(value, list):
                old = self.sums.get(key, [0.0] * len(value))
                self.sums[key] = [a + b for a, b in zip(old, value, strict=True)]  # type: ignore[arg-type]
            else:
                self.sums[key] = self.sums.get(key, 0.0) + value  # type: ignore[operator]
        self.count += 1

    def means(self) -> dict[str, Figure]:
        """The interval's means; resets the meter."""
        n = max(self.count, 1)
        means = {k: [x / n for x in v] if isinstance(v, list) else v / n for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


@dataclass
class FitOutcome:
    """What :func:`fit` did; every training verb reports its fields under these names."""

    step: int  # optimizer steps completed
    steps: int  # the configured total
    resumed_from: int | None  # step of the checkpoint this invocation started from
    stopped_by_budget: bool  # train.max_minutes ran out before train.steps
    seconds: float  # wall time of this invocation's training loop
    figures: dict[str, Any] = field(default_factory=dict)  # the last evaluation (empty without a held-out set)
    run_seconds: float = 0.0  # training time of the whole run: earlier invocations (from the checkpoint) and this one
    world_size: int = 1  # processes that trained (torchrun)
    codebook_checksum: str | None = None  # at the last checkpoint, the same on every rank (None without quantizers)
    train_row: dict[str, Any] | None = None  # the last training row of this invocation (None when it trained nothing)


def adam(model: nn.Module, train: Any) -> torch.optim.Adam:
    """Adam over ``model``'s parameters at ``train.lr`` with ``train.weight_decay`` and β₂ = ``train.adam_beta2``.

    A config without ``adam_beta2`` (``SpeechTrainConfig``) gets Adam's default 0.999.
    """
    betas = (0.9, getattr(train, "adam_beta2", 0.999))
    return torch.optim.Adam(model.parameters(), lr=train.lr, betas=betas, weight_decay=train.weight_decay)


def fit(
    task: Task,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TrainSchedule,
    paths: RunPaths,
    ranks: Ranks,
    *,
    seed: int,
    config: Any,
    resume: bool = False,
    overwrite: bool = False,
    fixed: tuple[str, ...] = RESUME_FIXED,
    desc: str = "train",
    net: nn.Module | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FitOutcome:
    """Train ``model`` on ``task`` for ``train.steps`` optimizer steps in the run directory ``paths``.

    Under ``torchrun`` every rank calls it alike: each takes its share of every batch, DDP averages the
    gradients, rank 0 alone evaluates and writes, and the codebooks are checked to agree at every
    checkpoint.

    Args:
        task: the data, the step and the evaluation.
        model: what is trained, checkpointed and published to ``paths.weights`` (``save_pretrained``).
        optimizer: over ``model``'s parameters (:func:`adam`).
        train: steps, batch size, learning rate (``lr_at(step)`` when the config has a schedule), clipping,
            budget and the log, evaluation and checkpoint periods.
        paths: the run directory.
        ranks: this process's place in the run (:func:`recipes.engine.parallel.joined`).
        seed: the seed of the data order.
        config: the recipe's config, saved as ``config.yaml``; a resumed run must agree with the saved
            one on the keys that start with one of ``fixed``.
        resume: continue from the run directory's last checkpoint (a fresh start when it has none).
        overwrite: discard an existing run in the directory and start again.
        desc: the progress bar's label.
        net: the module ``task.step`` runs, when it is part of ``model`` (default ``model`` itself).
        on_step: called with the step count after every optimizer step (tests inject faults here).
    """
    has_state, folder = ranks.open_run(paths, config, train.batch_size, resume, overwrite, fixed)
    with folder:  # rank 0 holds the run folder's lock until fit ends, however it ends
        start = start_training(paths, model, optimizer, len(task), train.batch_size, seed, has_state)
        order, step = start.order, start.step
        # Nothing is written before the first row; then the folder is made ready (old run removed, config saved).
        prepare = partial(prepare_run_dir, folder, paths, config, overwrite)
        log = RunLog(paths, start.rows, start.resumed_from, enabled=ranks.is_main, prepare=prepare)
        net = ranks.wrap(model if net is None else net)
        # SpeechTrainConfig has no schedule: a constant learning rate.
        lr_at: Callable[[int], float] = getattr(train, "lr_at", lambda _: train.lr)

        meter = Meter()
        figures: dict[str, Any] = {}
        codebooks: dict[str, Any] | None = None
        train_row: dict[str, Any] | None = None
        stopped_by_budget = False
        began = time.monotonic()
        elapsed = 0.0  # this invocation's time in the loop (none for a finished run given again)
        # A bar on a terminal, a line every ~10 s in a log; rank 0 only.
        bar = progress(total=train.steps, initial=step, desc=desc, unit="step", enabled=ranks.is_main)
        try:
            while step < train.steps:
                out = task.step(net, ranks.share(order.next()))  # this rank's contiguous share of the global batch
                if not ranks.all_finite(out.loss):  # checked on every rank, so that all of them stop here
                    loss = float(out.loss.detach())
                    raise FloatingPointError(
                        f"the training loss is not finite at step {step + 1} ({loss} on rank {ranks.rank}); lower "
                        "train.lr, or set train.grad_clip."
                    )
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                if train.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
                optimizer.step()
                step += 1
                meter.add(out.figures)
                bar.update(1)
                if on_step is not None:
                    on_step(step)

                elapsed = time.monotonic() - began
                stopped_by_budget = ranks.out_of_time(elapsed, train.max_minutes, step, train.steps)
                last = step == train.steps or stopped_by_budget
                checkpoint = due(step, train.checkpoint_every, last)
                checked = codebook_check(model, ranks, step) if checkpoint else None  # every rank, at the same step
                codebooks = checked or codebooks
                if ranks.is_main:  # the log, the evaluation and the checkpoint are rank 0's
                    logged = due(step, train.log_every, last)
                    if logged:
                        seconds = round(start.seconds_before + elapsed, 3)
                        train_row = {"kind": "train", "step": step, "lr": lr_at(step - 1), "seconds": seconds,
                                     **meter.means()}  # fmt: skip
                        log.add(train_row)
                        bar.set_postfix({k: _short(train_row[k]) for k in task.progress})
                    if due(step, train.eval_every, last) and (result := task.evaluate()) is not None:
                        figures = result
                        log.add({"kind": "eval", "step": step, **figures})
                        bar.write(task.describe(step, figures))
                    if checked is not None:
                        log.add(checked)
                    # Codebooks that disagree are logged, never checkpointed.
                    if checkpoint and (checked is None or checked["ranks_agree"]):
                        log.checkpoint(model, optimizer, step, order, start.seconds_before + elapsed)
                    elif logged or checked is not None:
                        log.write()
                raise_if_disagree(checked)
                if stopped_by_budget:
                    break
        finally:
            bar.close(stopped=step < train.steps)  # an interruption, an error or the time budget: "stopped"
            log.close()

        if ranks.is_main and not paths.weights.exists():  # a resumed run that had nothing left to train
            log.ready()
            model.save_pretrained(paths.weights)
        if ranks.is_main and not figures:
            figures = task.evaluate() or {}
        return FitOutcome(
            step=step,
            steps=train.steps,
            resumed_from=start.resumed_from,
            stopped_by_budget=stopped_by_budget,
            seconds=round(time.monotonic() - began, 3),
            figures=figures,
            run_seconds=round(start.seconds_before + elapsed, 3),
            world_size=ranks.world,
            codebook_checksum=None if codebooks is None else codebooks["codebook_checksum"],
            train_row=train_row,
        )


def _short(value: Any) -> str:
    """A figure for the progress bar: ``0.0123``, ``21.43``, or per level ``0.94/0.81``."""
    if isinstance(value, list):
        return "/".join(_short(v) for v in value)
    return f"{value:.4g}"
