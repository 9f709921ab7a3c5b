"""``vqtok rd``: rate–distortion of image tokenizers beside PNG, JPEG and WebP on the same held-out images.

Dimension legend: ``n`` held-out images, ``c``/``h``/``w`` image channels and size.

Each tokenizer of ``rd.tokenizers`` gives one point: distortion (PSNR, SSIM of its reconstructions)
and rate in bits per pixel of *real coded bytes*: range-coded with a prior of ``rd.priors`` when one
was trained on this tokenizer's codes (matched by the tokenizer hash its training corpus records;
``rate_model: prior``), else with per-level code frequencies fitted on ``rd.fit_items`` training
images (``rate_model: unigram``). ``uniform_bits_per_pixel`` is the fixed-length rate
(``log2 K`` per code) for reference. Classic codecs run over a sweep of qualities on the same images
(:mod:`recipes.coding.classic`); ``matched`` gives, for each tokenizer, the codecs' PSNR/SSIM at the
same rate, interpolated between the qualities that bracket it (None where a codec cannot go that low).
Writes ``rd.json`` (every figure) and ``rd.png`` into ``--out`` (default ``runs/rd``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from modalities.image import ImageArrays, ImageCodes, ImageTokenizer, reconstruction_metrics, to_uint8
from recipes.coding.classic import at_rate, codec_points
from recipes.coding.common import (
    RateResult,
    encode_levels,
    encode_unigram,
    make_header,
    model_digest,
    prior_tokenizer_hash,
    unigram_tables,
    write_rd,
)
from recipes.coding.compress import encode_images
from recipes.coding.config import ImageCodingConfig
from recipes.coding.plot import rd_plot
from recipes.engine.results import format_table
from recipes.engine.runtime import evaluation_mode
from recipes.image.common import check_fits, load_split, open_tokenizer, setup_runtime
from recipes.priors.common import open_prior
from tokenizers_vq.io import sha256_file
from tokenizers_vq.pretrained import WEIGHTS_NAME

CODECS = ("jpeg", "webp")


class RDResult(RateResult):
    """The rate–distortion table (``points``: tokenizers; ``codecs``: classic codecs; ``matched``) and its files."""

    def format(self) -> str:
        f = self.figures
        lines = [
            f"rd: {f['num_images']} images of {f['dataset']}/{f['split']} ({f['codec_layout']} codecs) → {self.location}"
        ]
        keys = ["name", "rate_model", "bits_per_pixel", "uniform_bits_per_pixel", "psnr", "ssim"]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["points"]])]
        keys = [
            "name",
            "bits_per_pixel",
            "psnr",
            *(f"{c}_psnr" for c in CODECS),
            "ssim",
            *(f"{c}_ssim" for c in CODECS),
        ]
        lines += [
            "",
            "classic codecs at the same rate:",
            format_table(keys, [[m[k] for k in keys] for m in f["matched"]]),
        ]
        keys = ["codec", "quality", "bits_per_pixel", "psnr", "ssim"]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["codecs"]])]
        return "\n".join(lines)


def _label(tokenizer_dir: Path, model: ImageTokenizer, shapes: list[tuple[int, int]]) -> str:
    grids = "+".join(f"{h}x{w}" for h, w in shapes)
    return f"{tokenizer_dir.resolve().parent.name} ({model.config.kind}, K={model.config.codebook_size}, {grids})"


def tokenizer_point(
    cfg: ImageCodingConfig, tokenizer: str, priors: dict[str, Path], data: ImageArrays, device: torch.device
) -> dict[str, Any]:
    """Distortion and real coded rate of one tokenizer on the held-out images of ``data``."""
    model, tokenizer_dir = open_tokenizer(tokenizer, device, "rd")
    cfg = replace(cfg, model=model.config)
    check_fits(cfg, data)
    images, labels = data.images, data.labels
    n, _, h, w = images.shape
    levels = encode_images(model, images, cfg.eval.batch_size)
    with evaluation_mode(model):
        recon = torch.cat([to_uint8(model.decode(ImageCodes([g[s : s + 256].to(device) for g in levels]))).cpu()
                           for s in range(0, n, 256)])  # fmt: skip
    metrics = reconstruction_metrics(images, recon)
    shapes = model.level_shapes(h, w)
    uniform = sum(a * b * math.log2(k) for (a, b), k in zip(shapes, model.codebook_sizes, strict=True))
    point = {"name": _label(tokenizer_dir, model, shapes), "tokenizer": str(tokenizer_dir), "kind": model.config.kind,
             "codebook_size": model.config.codebook_size, "level_shapes": [list(s) for s in shapes]}  # fmt: skip
    prior_dir = priors.get(sha256_file(tokenizer_dir / WEIGHTS_NAME))
    if prior_dir is not None:
        prior, prior_dir = open_prior(replace(cfg, prior=str(prior_dir)), device, "rd")  # type: ignore[arg-type]
        cond = labels.long() if prior.layout.num_classes else None
        coded = encode_levels(prior, levels, cond, cfg.rd.chunk_size)
        header = make_header(tokenizer_dir, model_digest(prior_dir), prior.layout, levels, cond, cfg.rd.chunk_size, {})
        payload_bits = 8 * len(coded.payload)
        point.update(rate_model="prior", prior=str(prior_dir), nll_bits_per_pixel=coded.nll_bits / (n * h * w),
                     label_bits_per_pixel=coded.label_bits / (n * h * w), header_bytes=len(header.pack()))  # fmt: skip
    else:
        fit = load_split(cfg.data, cfg.data.train_split, cfg.rd.fit_items, seed=cfg.seed)
        tables = unigram_tables(encode_images(model, fit.images, cfg.eval.batch_size), model.codebook_sizes)
        payload_bits = 8 * len(encode_unigram(levels, tables))
        point.update(rate_model="unigram", fit_items=len(fit))
    point.update(bits_per_pixel=payload_bits / (n * h * w), bits_per_image=payload_bits / n,
                 uniform_bits_per_pixel=uniform / (h * w), psnr=metrics.psnr, ssim=metrics.ssim)  # fmt: skip
    return point


def match_priors(prior_dirs: list[str], tokenizer_dirs: list[str]) -> dict[str, Path]:
    """Tokenizer weights hash → the prior trained on that tokenizer's codes; each prior must match a tokenizer."""
    wanted = {sha256_file(Path(t).expanduser() / WEIGHTS_NAME): t for t in tokenizer_dirs}
    matched: dict[str, Path] = {}
    for directory in prior_dirs:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"prior directory {directory} does not exist; train one with `vqtok train-prior`.")
        digest = prior_tokenizer_hash(path)
        if digest not in wanted:
            raise ValueError(
                f"the prior {directory} was trained on codes of a tokenizer that is not in rd.tokenizers "
                f"(weights sha256 {digest[:16]}…); add that tokenizer or drop the prior."
            )
        if digest in matched:
            raise ValueError(f"two priors ({matched[digest]}, {directory}) belong to the tokenizer {wanted[digest]}.")
        matched[digest] = path
    return matched


def plot(figures: dict[str, Any]) -> bytes:
    """PSNR and SSIM against bits per pixel: tokenizers as points, JPEG and WebP as curves, PNG as a line."""
    codecs = figures["codecs"]
    curves = {c.upper(): [p for p in codecs if p["codec"] == c] for c in CODECS}
    lines = [(p["bits_per_pixel"], "PNG (lossless)") for p in codecs if p["codec"] == "png"]
    title = f"{figures['dataset']}/{figures['split']}, {figures['num_images']} images"
    panels = [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]
    return rd_plot(figures["points"], curves, "bits_per_pixel", "bits per pixel", panels, title, lines)


def run(cfg: ImageCodingConfig) -> RDResult:
    """Rate–distortion points of ``rd.tokenizers`` and the classic codecs on ``rd.split``; writes rd.json and rd.png."""
    if not cfg.rd.tokenizers:
        raise ValueError("rd needs tokenizers: pass rd.tokenizers=[DIR,DIR,...] (tokenizer folders of training runs).")
    device = setup_runtime(cfg)
    priors = match_priors(cfg.rd.priors, cfg.rd.tokenizers)
    split = cfg.rd.split or cfg.data.eval_split
    data = load_split(cfg.data, split, cfg.rd.max_items)
    points = [tokenizer_point(cfg, t, priors, data, device) for t in cfg.rd.tokenizers]
    codecs = codec_points(data.images, cfg.rd.jpeg_qualities, cfg.rd.webp_qualities, cfg.rd.codec_layout)
    matched = []
    for p in points:
        row = {"name": p["name"], "bits_per_pixel": p["bits_per_pixel"], "psnr": p["psnr"], "ssim": p["ssim"]}
        for codec in CODECS:
            row.update(at_rate(codecs, codec, p["bits_per_pixel"]))
        matched.append(row)
    figures = {"dataset": data.name, "split": data.split, "num_images": len(data), "image_shape": list(data.image_shape),
               "codec_layout": cfg.rd.codec_layout, "points": points, "codecs": codecs, "matched": matched}  # fmt: skip
    out = Path(cfg.out).expanduser() if cfg.out else Path("runs") / "rd"
    write_rd(out, figures, plot if cfg.rd.plot else None)
    return RDResult(str(out), figures)
