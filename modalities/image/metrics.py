"""Reconstruction quality (MSE, PSNR, SSIM) and codebook health of an image tokenizer over a data set.

Dimension legend: ``n`` images, ``b`` batch, ``c`` channels, ``h``/``w`` image size, ``h_l``/``w_l`` level grid.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from modalities.image.codes import ImageCodes
from modalities.image.data import ImageArrays
from modalities.image.preprocess import as_image_batch, to_unit
from modalities.image.tokenizer import ImageTokenizer
from tokenizers_vq.metrics import code_stats, label_normalized_mutual_information
from tokenizers_vq.progress import progress

# An exact reconstruction has infinite PSNR; capping it keeps means and JSON finite (MSE 1e-10 ↔ 100 dB).
PSNR_CAP_DB = 100.0


@dataclass
class ReconstructionMetrics:
    """Means over images of per-image MSE, PSNR (dB, peak 1, capped at 100) and SSIM, for ``[0, 1]`` images."""

    mse: float
    psnr: float
    ssim: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _ssim_window(height: int, width: int) -> tuple[int, float]:
    """The standard 11×11 window with σ = 1.5 (Wang et al. 2004), shrunk to fit images smaller than 11."""
    side = min(height, width, 11)
    size = side if side % 2 else side - 1
    return max(size, 1), 1.5 * max(size, 1) / 11


def per_image_metrics(
    originals: torch.Tensor, reconstructions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image MSE, PSNR and SSIM, each ``(b,)``, of float ``[0, 1]`` images ``(b, c, h, w)``."""
    # Imported here: torchmetrics takes seconds to import, which every `import modalities.image` would pay.
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    if originals.shape != reconstructions.shape or originals.ndim != 4:
        raise ValueError(
            "originals and reconstructions must both have shape (b, c, h, w); "
            f"got {tuple(originals.shape)} and {tuple(reconstructions.shape)}."
        )
    target, preds = originals.float(), reconstructions.float().to(originals.device)
    mse = (preds - target).pow(2).flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    kernel, sigma = _ssim_window(*target.shape[-2:])
    ssim = structural_similarity_index_measure(
        preds, target, data_range=1.0, reduction="none", kernel_size=kernel, sigma=sigma
    )
    return mse, psnr.clamp(max=PSNR_CAP_DB), ssim


def reconstruction_metrics(
    originals: torch.Tensor | np.ndarray, reconstructions: torch.Tensor | np.ndarray
) -> ReconstructionMetrics:
    """Mean MSE, PSNR and SSIM of ``reconstructions`` against ``originals``.

    Both are ``(b, c, h, w)``, ``(c, h, w)`` or ``(h, w)``, float in ``[0, 1]`` or uint8; e.g. images
    off by 0.1 everywhere have MSE 0.01 and PSNR 20 dB.
    """
    mse, psnr, ssim = per_image_metrics(to_unit(as_image_batch(originals)), to_unit(as_image_batch(reconstructions)))
    if mse.numel() == 0:
        raise ValueError("reconstruction_metrics needs at least one image.")
    return ReconstructionMetrics(mse=float(mse.mean()), psnr=float(psnr.mean()), ssim=float(ssim.mean()))


@dataclass
class LevelEvaluation:
    """Codebook health of one level over the evaluated images (``level`` 0 is the top)."""

    level: int
    shape: tuple[int, int]  # code grid (h_l, w_l)
    codebook_size: int
    usage: float  # fraction of codes used at least once
    perplexity: float  # exp(entropy) of the code histogram
    dead_codes: int  # codes never used
    label_nmi: float | None  # I(label; code) / H(label), every code carrying its image's label; None without labels


@dataclass
class TokenizerEvaluation:
    """Reconstruction quality and per-level code statistics of a tokenizer on a set of images."""

    num_images: int
    mse: float
    psnr: float
    ssim: float
    images_per_second: float  # encode + decode round trips, metrics excluded
    levels: list[LevelEvaluation]

    def to_dict(self) -> dict:
        """Plain JSON-ready values with snake_case keys; ``levels`` top first."""
        out = asdict(self)
        for level in out["levels"]:
            level["shape"] = list(level["shape"])
        return out


@torch.no_grad()
def evaluate_tokenizer(
    tokenizer: ImageTokenizer,
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None = None,
    batch_size: int = 256,
) -> TokenizerEvaluation:
    """Round-trip ``images`` through ``tokenizer`` in batches and measure quality and code statistics.

    Args:
        tokenizer: the tokenizer to evaluate; it is not changed.
        images: uint8 ``(n, c, h, w)`` (e.g. ``ImageArrays.images``), or float in ``[0, 1]``.
        labels: optional ``(n,)`` integer class labels, for each level's ``label_nmi``.
        batch_size: images per encode/decode call.
    """
    x = as_image_batch(images)
    n = x.shape[0]
    if n == 0:
        raise ValueError("evaluate_tokenizer needs at least one image.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    if labels is not None:
        labels = torch.as_tensor(labels).long().cpu()
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},) to match the images; got {tuple(labels.shape)}.")
        if int(labels.min()) < 0:
            raise ValueError("labels must be class indices >= 0.")
    sums = torch.zeros(3, dtype=torch.float64)  # mse, psnr, ssim
    code_batches: list[ImageCodes] = []
    seconds = 0.0
    bar = progress(total=n, desc="evaluating", unit="image")
    for start in range(0, n, batch_size):
        batch = x[start : start + batch_size]
        began = time.perf_counter()
        codes = tokenizer.encode(batch)
        reconstruction = tokenizer.decode(codes)
        if reconstruction.device.type == "cuda":
            torch.cuda.synchronize(reconstruction.device)
        seconds += time.perf_counter() - began
        metrics = per_image_metrics(to_unit(batch.to(reconstruction.device)), reconstruction)
        sums += torch.stack([m.double().sum().cpu() for m in metrics])
        code_batches.append(codes.cpu())
        bar.update(batch.shape[0])
    bar.close()
    codes = ImageCodes.cat(code_batches)
    levels = []
    for level, (grid, size) in enumerate(zip(codes.levels, tokenizer.codebook_sizes, strict=True)):
        stats = code_stats(grid, size)
        nmi = None
        if labels is not None:
            per_code = labels[:, None, None].expand_as(grid)  # every code carries its image's label
            nmi = label_normalized_mutual_information(grid, per_code, size, int(labels.max()) + 1)
        levels.append(
            LevelEvaluation(
                level=level,
                shape=codes.shapes[level],
                codebook_size=size,
                usage=stats.usage,
                perplexity=stats.perplexity,
                dead_codes=stats.dead_codes,
                label_nmi=nmi,
            )
        )
    mse, psnr, ssim = (float(v) / n for v in sums)
    return TokenizerEvaluation(
        num_images=n, mse=mse, psnr=psnr, ssim=ssim, images_per_second=n / max(seconds, 1e-9), levels=levels
    )


def evaluate_images(model: ImageTokenizer, data: ImageArrays, batch_size: int, limit: int | None = None) -> dict:
    """``evaluate_tokenizer`` on (the first ``limit`` images of) ``data`` → its figures as a dict.

    Runs without gradients and leaves the global RNG as it found it, so evaluating in the middle of
    training does not change what training does next. The caller sets eval mode and autocast.
    """
    images, labels = data.images, data.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return evaluate_tokenizer(model, images, labels, batch_size=batch_size).to_dict()
