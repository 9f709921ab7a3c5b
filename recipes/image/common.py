"""What the image recipes share: the image plug-in's data loading with a whole config, and evaluating in eval mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modalities.base import load_tokenizer
from modalities.image import ImageArrays, ImageTokenizer
from modalities.image import task as image_task
from recipes.engine.runtime import autocast, evaluation_mode
from recipes.engine.runtime import setup_runtime as setup_runtime


def load_split(cfg: Any, split: str, limit: int | None = None, seed: int | None = None) -> ImageArrays:
    """:func:`modalities.image.task.load_split` of ``cfg.data``."""
    return image_task.load_split(cfg.data, split, limit, seed)


def check_fits(cfg: Any, data: ImageArrays) -> None:
    """:func:`modalities.image.task.check_fits` of ``cfg.model``."""
    image_task.check_fits(cfg.model, data)


def open_tokenizer(path: str | None, device: torch.device, verb: str) -> tuple[Any, Path]:
    """Load the tokenizer directory ``path`` (any modality) in eval mode on ``device``; clear errors when missing."""
    if path is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; train one with `vqtok train-tokenizer`.")
    return load_tokenizer(directory, map_location=device), directory


def evaluate(
    model: ImageTokenizer, data: ImageArrays, batch_size: int, precision: str = "fp32", limit: int | None = None
) -> dict[str, Any]:
    """:func:`modalities.image.task.evaluate_images` in eval mode under ``precision``'s autocast."""
    device = next(model.parameters()).device
    with evaluation_mode(model), autocast(precision, device):
        return image_task.evaluate_images(model, data, batch_size, limit)
