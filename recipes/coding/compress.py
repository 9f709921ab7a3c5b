"""``vqtok compress``: images → codes → one entropy-coded file, its rate beside the prior's NLL of the same codes.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size.

The images are a data set split (``compress.split``, first ``compress.max_items``) or image files
(``compress.input``: a file or a folder). The tokenizer encodes them; the prior's sequential pass
gives each position's probabilities, which drive the range coder (:mod:`priors.coding`). The file
(``--out``, default ``<tokenizer>/../<data>_<split>.vqc``) is a small header plus the payload.

Figures: ``file_bytes``, ``header_bytes``, ``payload_bytes``, ``payload_bits``; ``nll_bits`` (the prior's
negative log-likelihood of the codes, teacher-forced, as ``evaluate`` computes it) plus ``label_bits``
(class labels, uniform) is what an ideal coder would spend; ``overhead_percent`` is how far the
payload lies above that; ``bits_per_item`` (whole file per image), ``bits_per_pixel`` (whole file over every pixel) and
``payload_bits_per_code``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modalities.image import ImageArrays
from recipes.coding.common import CodedChunks, RateResult, check_layout, encode_levels, make_header, model_digest
from recipes.coding.config import FILE_SUFFIX, ImageCodingConfig
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode
from recipes.image.common import check_fits, load_split, open_tokenizer, setup_runtime
from recipes.priors.common import open_prior
from tokenizers_vq.entropy import write_code_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class CompressResult(RateResult):
    """Where the file went and its size accounting."""

    where = "file"

    def format(self) -> str:
        return format_figures(self.to_dict(), title="compress")


def input_files(path: str, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """``compress.input``: the file ``path``, or every file of the folder ``path`` with one of ``suffixes`` (sorted)."""
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in suffixes)
    elif source.is_file():
        files = [source]
    else:
        raise FileNotFoundError(f"compress.input {path} does not exist; pass an {kind} file or a folder of them.")
    if not files:
        raise ValueError(f"{path} holds no {kind} files ({', '.join(suffixes)}).")
    return files


def read_image_files(path: str, channels: int) -> tuple[torch.Tensor, list[str]]:
    """An image file, or every image file of a folder (sorted), as uint8 ``(n, c, h, w)``, and their names."""
    files = input_files(path, IMAGE_SUFFIXES, "image")
    arrays = []
    for file in files:
        with Image.open(file) as image:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"all images of one file must have the same size; {path} has sizes {sorted(sizes)}.")
    return torch.from_numpy(np.stack(arrays)), [f.name for f in files]


def input_images(cfg: ImageCodingConfig, num_classes: int) -> tuple[ImageArrays, str]:
    """The images to compress and a name for them (``<data>_<split>`` or the input's stem)."""
    if cfg.compress.input is None:
        split = cfg.compress.split or cfg.data.eval_split
        data = load_split(cfg, split, cfg.compress.max_items)
        return data, f"{data.name}_{data.split}"
    images, _ = read_image_files(cfg.compress.input, cfg.model.in_channels)
    if num_classes and cfg.compress.label is None:
        raise ValueError(
            f"the prior is class-conditional ({num_classes} classes); pass compress.label=N for the input images."
        )
    if cfg.compress.label is not None and not 0 <= cfg.compress.label < max(num_classes, 1):
        raise ValueError(f"compress.label must lie in [0, {num_classes - 1}]; got {cfg.compress.label}.")
    labels = torch.full((images.shape[0],), cfg.compress.label or 0, dtype=torch.long)
    data = ImageArrays(images=images, labels=labels, class_names=[], name="files", split="input")
    return data, Path(cfg.compress.input).expanduser().stem


def encode_images(model, images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Codes of uint8 images ``(n, c, h, w)``, one ``(n, *grid_l)`` int64 CPU tensor per level."""
    parts = []
    with evaluation_mode(model):
        for start in range(0, images.shape[0], batch_size):
            parts.append([g.cpu() for g in model.encode(images[start : start + batch_size]).levels])
    return [torch.cat(level) for level in zip(*parts, strict=True)]


def run(cfg: ImageCodingConfig) -> CompressResult:
    """Compress the configured images with the tokenizer at ``cfg.tokenizer`` and the prior at ``cfg.prior``."""
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "compress")
    cfg = replace(cfg, model=model.config)
    prior, prior_dir = open_prior(cfg, device, "compress")
    data, stem = input_images(cfg, prior.layout.num_classes)
    check_fits(cfg, data)
    c, h, w = data.image_shape
    check_layout(prior, model.level_shapes(h, w), model.codebook_sizes, f"the tokenizer on {h}×{w} images")
    levels = encode_images(model, data.images, cfg.eval.batch_size)
    labels = data.labels.long() if prior.layout.num_classes else None
    coded = encode_levels(prior, levels, labels, cfg.compress.chunk_size)
    extra = {"modality": "image", "image_shape": [c, h, w]}
    header = make_header(
        tokenizer_dir, model_digest(prior_dir), prior.layout, levels, labels, cfg.compress.chunk_size, extra
    )
    out = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.resolve().parent / f"{stem}{FILE_SUFFIX}"
    file_bytes = write_code_file(out, header, coded.payload)
    figures = rate_figures(coded, file_bytes, len(data), len(data) * prior.layout.codes_per_item)
    figures["bits_per_pixel"] = 8 * file_bytes / (len(data) * h * w)
    return CompressResult(str(out), figures)


def rate_figures(coded: CodedChunks, file_bytes: int, items: int, codes: int) -> dict[str, Any]:
    """The size accounting of a code file of ``items`` items and ``codes`` coded codes (see the module docstring)."""
    payload_bits = 8 * len(coded.payload)
    ideal = coded.nll_bits + coded.label_bits
    return {
        "items": items,
        "file_bytes": file_bytes,
        "header_bytes": file_bytes - len(coded.payload),
        "payload_bytes": len(coded.payload),
        "payload_bits": payload_bits,
        "nll_bits": coded.nll_bits,
        "label_bits": coded.label_bits,
        "coded_information_bits": coded.coded_bits,
        "overhead_percent": 100.0 * (payload_bits - ideal) / ideal if ideal > 0 else 0.0,
        "bits_per_item": 8 * file_bytes / items,
        "payload_bits_per_code": payload_bits / codes,
        "nll_bits_per_code": coded.nll_bits / codes,
        "seconds": coded.seconds,
    }
