"""Training an image tokenizer: its data (uint8 images), one step's loss and figures, evaluation on held-out images.

Dimension legend: ``b`` batch, ``c`` channels, ``h``/``w`` image size, ``n`` training images.

The generic training recipe runs these under its autocast, evaluation mode and RNG guards; nothing
here chooses a device or a precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from modalities.image.data import ImageArrays, check_fits, load_split
from modalities.image.metrics import evaluate_images
from modalities.image.tokenizer import ImageTokenizer
from tokenizers_vq.training import StepOutput


@dataclass
class ImageTrainingData:
    """The training images and the held-out ones evaluated during training."""

    train: ImageArrays
    held_out: ImageArrays


def training_data(cfg: Any) -> ImageTrainingData:
    """``data.train_split`` (a seeded subset of ``data.max_train_images``) and the first ``train.eval_images`` of
    ``data.eval_split``; ``ValueError`` when ``cfg.model`` cannot take the images."""
    train = load_split(cfg.data, cfg.data.train_split, cfg.data.max_train_images, seed=cfg.seed)
    held_out = load_split(cfg.data, cfg.data.eval_split, cfg.train.eval_images)
    check_fits(cfg.model, train)
    return ImageTrainingData(train, held_out)


@dataclass
class ImageTraining:
    """Images ``(n, c, h, w)`` uint8 → the tokenizer's loss and figures; evaluation on ``held_out``."""

    model: ImageTokenizer
    images: torch.Tensor  # (n, c, h, w) uint8, on the training device when that is a GPU
    held_out: ImageArrays
    eval_batch_size: int
    progress: ClassVar[tuple[str, ...]] = ("loss", "psnr", "usage")

    @classmethod
    def build(cls, model: ImageTokenizer, cfg: Any, data: ImageTrainingData) -> ImageTraining:
        device = next(model.parameters()).device
        images = data.train.images.to(device) if device.type == "cuda" else data.train.images
        return cls(model, images, data.held_out, cfg.eval.batch_size)

    def __len__(self) -> int:
        return len(self.images)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        x = self.model.preprocess(self.images[indices])  # (b, c, h, w) in [-1, 1]
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
        return evaluate_images(self.model, self.held_out, self.eval_batch_size)

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        levels = figures.get("levels", [])
        usage = "/".join(f"{lvl['usage']:.2f}" for lvl in levels)
        perplexity = "/".join(f"{lvl['perplexity']:.1f}" for lvl in levels)
        return (
            f"eval @ step {step}: psnr {figures['psnr']:.2f} dB, ssim {figures['ssim']:.3f}, "
            f"usage {usage}, perplexity {perplexity}"
        )

    def result_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """The figures ``train-tokenizer`` reports: the last evaluation."""
        return figures
