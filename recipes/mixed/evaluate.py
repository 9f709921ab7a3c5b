"""Held-out NLL of a mixed prior per modality (``vqtok evaluate`` with a ``mixed`` config, and during train-mixed).

Every prediction is normalised over the ids the grammar allows there (what the sampler draws from),
and its bits go to what it predicts:

- ``text_bits_per_token``: the prompt's pieces and ``</text>`` (the label is in the first pieces);
- ``image_bits_per_code``: each image code (comparable with ``vqtok evaluate`` of a prior over the same codes);
- ``audio_bits_per_code``: each audio code; ``audio_bits_per_frame``: the codes and ``</aud>`` over the
  frames plus one (the end), like the 1-D speech prior's bits per coded frame;
- ``bits_per_token``: every id after ``<bos>``, the segment markers included.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from priors.mixed import MixedPrior
from recipes.engine.outputs import figures_file, write_figures_file
from recipes.engine.results import Figures
from recipes.engine.runtime import resolve_device, set_threads
from recipes.mixed.config import MixedRecipeConfig
from recipes.mixed.data import AUDIO, IMAGE, MixedData, ModalityData, open_prior
from tokenizers_vq.text import SPECIAL_TOKENS

LN2 = math.log(2.0)


def _score(prior: MixedPrior, data: MixedData, part: ModalityData, batch_size: int, limit: int | None):
    """Summed nats of (text, codes, end marker, everything) and their counts over the first ``limit`` items."""
    space = prior.space
    stream = space.streams[part.stream]
    lo, hi = space.level_range(part.stream, 0)[0], space.level_range(part.stream, stream.num_levels - 1)[1]
    n = len(part) if limit is None else min(limit, len(part))
    sequences = [data.sequence(part, i) for i in range(n)]
    sums = np.zeros(4)
    counts = np.zeros(4)
    for seq, nll in zip(sequences, prior.score(sequences, batch_size), strict=True):
        target = np.asarray(seq[1:])  # (n - 1,): what each NLL entry predicted
        text = ((target >= len(SPECIAL_TOKENS)) & (target < space.text_size)) | (target == space.text_begin + 1)
        for k, mask in enumerate((text, (target >= lo) & (target < hi), target == stream.end, np.ones_like(text))):
            sums[k] += nll[mask].sum()
            counts[k] += mask.sum()
    return sums / LN2, counts, n


def held_out_figures(prior: MixedPrior, data: MixedData, batch_size: int, limit: int | None) -> dict[str, Any]:
    """Bits per text token, per image code, per audio code and frame on the held-out corpora (see the module docstring)."""
    figures: dict[str, Any] = {}
    text_bits = text_count = all_bits = all_count = 0.0
    for part, name in ((data.image_eval, IMAGE), (data.audio_eval, AUDIO)):
        if part is None:
            continue
        bits, counts, n = _score(prior, data, part, batch_size, limit)
        text_bits, text_count = text_bits + bits[0], text_count + counts[0]
        all_bits, all_count = all_bits + bits[3], all_count + counts[3]
        if name == IMAGE:
            figures.update(image_items=n, image_bits_per_code=bits[1] / counts[1])
        else:
            figures.update(audio_items=n, audio_bits_per_code=bits[1] / counts[1],
                           audio_bits_per_frame=(bits[1] + bits[2]) / (counts[1] + counts[2]))  # fmt: skip
    if not all_count:
        raise ValueError("no held-out corpus to score: set data.image_eval_corpus and/or data.audio_eval_corpus.")
    figures.update(text_bits_per_token=text_bits / text_count, bits_per_token=all_bits / all_count)
    return figures


def write_figures(cfg: MixedRecipeConfig, verb: str, figures: dict[str, Any], overwrite: bool = False) -> None:
    """``out``, when set, gets the figures as one JSON file (:func:`recipes.engine.outputs.write_figures_file`)."""
    write_figures_file(figures_file(cfg.out, verb, overwrite), verb, figures, overwrite)


def run(cfg: MixedRecipeConfig, *, overwrite: bool = False) -> Figures:
    """Score the held-out corpora (``data.*_eval_corpus``, else the prior's training run's) under ``cfg.prior``."""
    figures_file(cfg.out, "evaluate", overwrite)  # refused before any work
    set_threads(cfg.threads)
    prior, prior_dir, data = open_prior(cfg, resolve_device(cfg.device), "evaluate")
    figures = {"parameters": sum(p.numel() for p in prior.parameters())}
    figures.update(held_out_figures(prior, data, cfg.eval.batch_size, cfg.eval.max_items))
    result = Figures("evaluate (mixed prior)", {"prior": str(prior_dir)}, figures)
    write_figures(cfg, "evaluate", result.to_dict(), overwrite)
    return result
