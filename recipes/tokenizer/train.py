"""``vqtok train-tokenizer``: train a tokenizer of any modality with Adam, step by step, resumable at any checkpoint.

The loop, the run directory (``out``, default ``runs/<name>``), its ``metrics.jsonl`` and TensorBoard
rows, checkpoints, resuming and many processes are :func:`recipes.engine.trainer.fit`'s; the modality
plug-in brings the rest (``training_data``, ``training``): images train on batches of whole images
(VQ-VAE loss, PSNR, per-level code usage), speech on log-mel segments of known speakers (mel loss,
code usage, and the code→phone mapping when the data has phone labels). Here the plug-in's step runs
under the config's autocast and its evaluation in eval mode with the global RNG left as it was, so
evaluating never changes what training does next. A run killed at any moment (even by SIGKILL)
resumes with ``resume=True`` from its last checkpoint and reaches the same weights as one that never
stopped. The tokenizer directory records the data section, so later verbs know its data set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from modalities.base import get_modality
from recipes.engine import parallel
from recipes.engine.checkpoint import RunPaths, run_dir
from recipes.engine.results import TrainResult
from recipes.engine.runtime import autocast, evaluation_mode, seed_everything, setup_runtime
from recipes.engine.trainer import StepOutput, adam, fit


@dataclass
class TokenizerTask:
    """A modality's training (its data, step and evaluation) as a :class:`recipes.engine.trainer.Task`."""

    training: Any
    model: nn.Module
    precision: str

    @property
    def progress(self) -> tuple[str, ...]:
        return self.training.progress

    def __len__(self) -> int:
        return len(self.training)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        with autocast(self.precision, next(self.model.parameters()).device):
            return self.training.step(net, indices)

    def evaluate(self) -> dict[str, Any]:
        device = next(self.model.parameters()).device
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), evaluation_mode(self.model), autocast(self.precision, device):
            return self.training.evaluate()

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        return self.training.describe(step, figures)


def run(
    cfg: Any,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` for ``cfg.train.steps`` steps; see the module docstring.

    Under ``torchrun`` (or inside an initialised process group) every rank trains on its contiguous
    share of each batch with DistributedDataParallel; the quantizers keep their codebooks identical
    across ranks (checked at every checkpoint), and rank 0 alone evaluates and writes files
    (:mod:`recipes.engine.parallel`).

    Args:
        cfg: the resolved config (e.g. ``load_config(ImageRecipeConfig, "tiny")``).
        resume: continue from the run directory's last checkpoint (a fresh start when it has none).
        overwrite: discard an existing run in the directory and start again.
        on_step: called with the step count after every optimizer step (:func:`recipes.engine.trainer.fit`).
    """
    device = setup_runtime(cfg)
    modality = get_modality(cfg.modality)
    data = modality.training_data(cfg)
    paths = RunPaths(run_dir(cfg))
    with parallel.joined(device) as ranks:
        seed_everything(cfg.seed)
        model = modality.tokenizer_class(cfg.model).to(ranks.device).train()
        model.data_source = asdict(cfg.data)  # saved with the weights: verbs given the tokenizer find its data
        training = modality.training(model, cfg, data)
        outcome = fit(TokenizerTask(training, model, cfg.precision), model, adam(model, cfg.train), cfg.train, paths,
                      ranks, seed=cfg.seed, config=cfg, resume=resume, overwrite=overwrite, desc=f"train {cfg.name}",
                      on_step=on_step)  # fmt: skip
    return TrainResult.from_outcome(outcome, run_dir=str(paths.root), tokenizer_dir=str(paths.weights),
                                    figures=training.result_figures(outcome.figures))  # fmt: skip
