"""Evaluate a prior on held-out codes: bits per code, bits per item, bits/dim and, for images, an NLL bound.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size, ``D = c·h·w``.

Figures (snake_case): ``bits_per_code``, ``level_bits_per_code``, ``bits_per_item``, ``bits_per_dim``
(the codes' rate per image dimension; for speech ``bits_per_frame``, the bits of an utterance over its frames
plus its end code) and ``uniform_bits_per_dim`` (the same for a uniform prior,
``n_codes · log2 K / D``: what the prior saves). For image corpora with ``eval.distortion`` also
``distortion_bits_per_dim`` (``-log2 p(x | codes)`` under a discretised Gaussian around the
decoder's output, its sigma fitted on training images) and ``elbo_bits_per_dim`` (rate plus
distortion: an upper bound on the image's negative log-likelihood, the VQ-VAE paper's kind of figure).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from modalities.image.data import corpus_images
from modalities.image.grid import decode_images
from priors import discretized_gaussian_bits, evaluate_likelihood
from recipes.engine.artifacts import corpus_tokenizer
from recipes.engine.outputs import figures_file, write_figures_file
from recipes.engine.results import Figures
from recipes.priors.common import find_corpus, open_prior, setup
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import CodeCorpus


def distortion_bits(
    cfg: PriorRecipeConfig, train: CodeCorpus, held_out: CodeCorpus, limit: int | None, device: torch.device
) -> dict[str, float]:
    """The decoder's share of an image NLL bound: sigma fitted on training images, bits/dim on held-out ones."""
    tokenizer = corpus_tokenizer(held_out, device)
    fit_images, _ = corpus_images(train, cfg.data_root, cfg.eval.distortion_fit_items)
    fit_codes, _ = train.batch(range(fit_images.shape[0]), conditional=False)
    fit_recon = decode_images(tokenizer, fit_codes).float()
    # Maximum-likelihood sigma of a Gaussian around the reconstructions, in pixel levels.
    sigma = max(float((fit_recon - fit_images.float()).pow(2).mean().sqrt()), 0.5)
    images, _ = corpus_images(held_out, cfg.data_root, limit if limit is not None else len(held_out))
    codes, _ = held_out.batch(range(images.shape[0]), conditional=False)
    means = decode_images(tokenizer, codes).float() / 255.0
    bits = discretized_gaussian_bits(images, means, sigma)
    return {"distortion_sigma": sigma, "distortion_bits_per_dim": float(bits.mean()) / images[0].numel()}


def run(cfg: PriorRecipeConfig, *, overwrite: bool = False) -> Figures:
    """Score the held-out corpus (``eval_corpus``, else the prior's run's) under the prior at ``cfg.prior``."""
    target = figures_file(cfg.out, "evaluate", overwrite)
    device = setup(cfg)
    prior, prior_dir = open_prior(cfg, device, "evaluate")
    held_out = find_corpus(cfg, prior_dir, "eval_corpus", prior.layout)
    conditional = prior.layout.num_classes > 0
    result = evaluate_likelihood(
        prior, held_out.batches(cfg.eval.batch_size, cfg.eval.max_items, conditional), held_out.dims_per_item
    )
    figures: dict[str, Any] = {"kind": type(prior).__name__, "parameters": sum(p.numel() for p in prior.parameters())}
    figures.update(result.to_dict())
    frames = held_out.coded_frames(cfg.eval.max_items)
    if frames:  # speech: padding after the end code is nearly free, so also give bits per coded frame
        figures["bits_per_frame"] = result.bits_per_item / frames
    if held_out.dims_per_item:
        uniform = sum(
            m * math.log2(k) for m, k in zip(prior.layout.level_lengths, prior.layout.codebook_sizes, strict=True)
        )
        figures["uniform_bits_per_dim"] = uniform / held_out.dims_per_item
        if cfg.eval.distortion:
            train = find_corpus(cfg, prior_dir, "corpus", prior.layout)
            figures.update(distortion_bits(cfg, train, held_out, cfg.eval.max_items, device))
            figures["elbo_bits_per_dim"] = figures["bits_per_dim"] + figures["distortion_bits_per_dim"]
    out = Figures("evaluate (prior)", {"prior": str(prior_dir), "corpus": str(held_out.directory)}, figures)
    write_figures_file(target, "evaluate", out.to_dict(), overwrite)
    return out
