"""What several image recipes share: loading data and tokenizers from a config, and evaluating.

Dimension legend: ``n`` images, ``c`` channels, ``h``/``w`` image size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modalities.image import ImageArrays, ImageTokenizer, evaluate_tokenizer, load_image_dataset
from recipes.engine.runtime import autocast, check_precision, evaluation_mode, resolve_device, set_threads
from recipes.image.config import ImageRecipeConfig


def setup_runtime(cfg: ImageRecipeConfig) -> torch.device:
    """Apply ``cfg``'s run-time choices (threads, precision check) and return its device."""
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    set_threads(cfg.threads)
    return device


def load_split(cfg: ImageRecipeConfig, split: str, limit: int | None = None, seed: int | None = None) -> ImageArrays:
    """Split ``split`` of ``cfg.data``; with ``limit``, the first ``limit`` images, or a random subset when ``seed``.

    The subset is drawn with its own generator, so it does not disturb the global RNG.
    """
    data = load_image_dataset(cfg.data.name, split, root=cfg.data.root, download=cfg.data.download)
    if len(data) == 0:
        raise ValueError(f"data set {cfg.data.name!r} split {split!r} holds no images.")
    if limit is None or limit >= len(data):
        return data
    if seed is None:
        keep = torch.arange(limit)
    else:
        keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return ImageArrays(
        images=data.images[keep].contiguous(),
        labels=data.labels[keep].contiguous(),
        class_names=data.class_names,
        name=data.name,
        split=data.split,
    )


def check_fits(cfg: ImageRecipeConfig, data: ImageArrays) -> None:
    """Raise ``ValueError`` unless ``cfg.model`` can take the images of ``data``, saying which key to change."""
    c, h, w = data.image_shape
    if c != cfg.model.in_channels:
        raise ValueError(
            f"data set {data.name!r} has {c}-channel images but model.in_channels={cfg.model.in_channels}; "
            f"pass model.in_channels={c}."
        )
    f = cfg.model.total_downsample
    if h % f or w % f:
        raise ValueError(
            f"data set {data.name!r} has {h}×{w} images, which the model's total downsampling {f} "
            f"(model.downsample={cfg.model.downsample}, model.num_levels={cfg.model.num_levels}) does not divide; "
            "choose a smaller model.downsample."
        )


def open_tokenizer(path: str | None, device: torch.device, verb: str) -> tuple[ImageTokenizer, Path]:
    """Load the tokenizer directory ``path`` in eval mode on ``device``; clear errors when it is missing."""
    if path is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; train one with `vqtok train-tokenizer`.")
    return ImageTokenizer.from_pretrained(directory, map_location=device), directory


def evaluate(
    model: ImageTokenizer, data: ImageArrays, batch_size: int, precision: str = "fp32", limit: int | None = None
) -> dict[str, Any]:
    """``evaluate_tokenizer`` on (the first ``limit`` images of) ``data`` → its figures as a dict.

    Runs in eval mode without gradients and leaves the global RNG as it found it, so evaluating in
    the middle of training does not change what training does next.
    """
    images, labels = data.images, data.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), evaluation_mode(model), autocast(precision, device):
        result = evaluate_tokenizer(model, images, labels, batch_size=batch_size)
    return result.to_dict()
