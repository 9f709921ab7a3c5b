"""``vqtok evaluate``: a tokenizer's reconstruction quality and codebook health on a split.

Images: ``mse``, ``psnr``, ``ssim`` and per level ``usage``, ``perplexity``, ``dead_codes``, ``label_nmi``
(:func:`modalities.image.evaluate_tokenizer`). Speech: ``log_mel_distance``, ``stoi``, their vocoder
ceilings, ``bitrate``, ``usage``, ``perplexity`` (:func:`modalities.speech.evaluate_reconstruction`),
each utterance decoded in its own speaker's voice. With ``out`` set the figures are also written
there as one JSON object.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from recipes.engine.artifacts import open_tokenizer
from recipes.engine.outputs import figures_file, write_figures_file
from recipes.engine.results import Figures
from recipes.engine.runtime import autocast, evaluation_mode, setup_runtime


def run(cfg: Any, *, overwrite: bool = False) -> Figures:
    """Evaluate the tokenizer at ``cfg.tokenizer`` on ``cfg.eval``'s split of ``cfg.data``; ``out``: also a JSON file
    (an existing one replaced only with ``overwrite``, and only a JSON file of figures)."""
    target = figures_file(cfg.out, "evaluate", overwrite)
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "evaluate")
    cfg = replace(cfg, model=model.config)
    with evaluation_mode(model), autocast(cfg.precision, device):
        what, figures = modality.evaluate(model, cfg)
    result = Figures("evaluate", {"tokenizer": str(tokenizer_dir), **what}, figures)
    write_figures_file(target, "evaluate", result.to_dict(), overwrite)
    return result
