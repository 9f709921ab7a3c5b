"""Train an image tokenizer (VQ-VAE or VQ-VAE-2) with Adam, step by step, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``c`` channels, ``h``/``w`` image size, ``n`` training images.

The loop, the run directory (``out``, default ``runs/<name>``), its ``metrics.jsonl`` and TensorBoard
rows, checkpoints, resuming and many processes are :func:`recipes.engine.trainer.fit`'s; this module
is the image :class:`ImageTask`: a batch of images → the VQ-VAE loss with PSNR and per-level code
usage, perplexity and dead codes (``"train"`` rows), and the held-out PSNR, SSIM and code health
(``"eval"`` rows). A run killed at any moment (even by SIGKILL) resumes with ``resume=True`` from its
last checkpoint and reaches the same weights as one that never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from modalities.image import ImageArrays, ImageTokenizer
from recipes.engine import parallel
from recipes.engine.checkpoint import RunPaths, run_dir
from recipes.engine.results import TrainResult
from recipes.engine.runtime import autocast, seed_everything
from recipes.engine.trainer import StepOutput, adam, fit
from recipes.image.common import check_fits, evaluate, load_split, setup_runtime
from recipes.image.config import ImageRecipeConfig


@dataclass
class ImageTask:
    """Images ``(n, c, h, w)`` uint8 → the tokenizer's loss and figures; evaluation on ``held_out``."""

    cfg: ImageRecipeConfig
    model: ImageTokenizer
    images: torch.Tensor  # (n, c, h, w) uint8, on the training device when that is a GPU
    held_out: ImageArrays
    progress: ClassVar[tuple[str, ...]] = ("loss", "psnr", "usage")

    def __len__(self) -> int:
        return len(self.images)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        x = self.model.preprocess(self.images[indices])  # (b, c, h, w) in [-1, 1]
        with autocast(self.cfg.precision, x.device):
            out = net(x)
        # PSNR on the [0, 1] scale: the model works in [-1, 1], where squared errors are 4× larger.
        mse01 = float((out.reconstruction.detach().float() - x.float()).pow(2).mean()) / 4.0
        figures: dict[str, Any] = {
            "loss": float(out.loss.detach()),
            "reconstruction_loss": float(out.reconstruction_loss.detach()),
            "psnr": 10.0 * math.log10(1.0 / max(mse01, 1e-10)),
        }
        for key in ("usage", "perplexity", "dead_codes"):
            figures[key] = [float(getattr(q, key)) for q in out.quantizer_outputs]
        return StepOutput(out.loss, figures)

    def evaluate(self) -> dict[str, Any]:
        return evaluate(self.model, self.held_out, self.cfg.eval.batch_size, self.cfg.precision)

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        levels = figures.get("levels", [])
        usage = "/".join(f"{lvl['usage']:.2f}" for lvl in levels)
        perplexity = "/".join(f"{lvl['perplexity']:.1f}" for lvl in levels)
        return (
            f"eval @ step {step}: psnr {figures['psnr']:.2f} dB, ssim {figures['ssim']:.3f}, "
            f"usage {usage}, perplexity {perplexity}"
        )


def run(
    cfg: ImageRecipeConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` for ``cfg.train.steps`` steps; see the module docstring.

    Under ``torchrun`` (or inside an initialised process group) every rank trains on its contiguous
    share of each batch of ``train.batch_size`` images with DistributedDataParallel; the quantizers
    keep their codebooks identical across ranks (checked at every checkpoint), and rank 0 alone
    evaluates and writes files (:mod:`recipes.engine.parallel`).

    Args:
        cfg: the resolved config (e.g. ``load_config(ImageRecipeConfig, "tiny")``).
        resume: continue from the run directory's last checkpoint (a fresh start when it has none).
        overwrite: discard an existing run in the directory and start again.
        on_step: called with the step count after every optimizer step (:func:`recipes.engine.trainer.fit`).
    """
    device = setup_runtime(cfg)
    train_data = load_split(cfg, cfg.data.train_split, cfg.data.max_train_images, seed=cfg.seed)
    eval_data = load_split(cfg, cfg.data.eval_split, cfg.train.eval_images)
    check_fits(cfg, train_data)
    paths = RunPaths(run_dir(cfg))
    with parallel.joined(device) as ranks:
        seed_everything(cfg.seed)
        model = ImageTokenizer(cfg.model).to(ranks.device).train()
        model.data_source = asdict(cfg.data)  # saved with the weights: verbs given the tokenizer find its data
        images = train_data.images.to(ranks.device) if ranks.device.type == "cuda" else train_data.images
        outcome = fit(ImageTask(cfg, model, images, eval_data), model, adam(model, cfg.train), cfg.train, paths,
                      ranks, seed=cfg.seed, config=cfg, resume=resume, overwrite=overwrite, desc=f"train {cfg.name}",
                      on_step=on_step)  # fmt: skip
    return TrainResult.from_outcome(outcome, run_dir=str(paths.root), tokenizer_dir=str(paths.weights))
