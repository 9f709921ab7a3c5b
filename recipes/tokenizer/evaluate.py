"""``vqtok evaluate``: a tokenizer's reconstruction quality and codebook health on a split.

Images: ``mse``, ``psnr``, ``ssim`` and per level ``usage``, ``perplexity``, ``dead_codes``, ``label_nmi``
(:func:`modalities.image.evaluate_tokenizer`). Speech: ``log_mel_distance``, ``stoi``, their vocoder
ceilings, ``bitrate``, ``usage``, ``perplexity`` (:func:`modalities.speech.evaluate_reconstruction`),
each utterance decoded in its own speaker's voice. With ``out`` set the figures are also written
there as one JSON object.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from recipes.engine.artifacts import open_tokenizer
from recipes.engine.results import Figures
from recipes.engine.runtime import autocast, evaluation_mode, setup_runtime
from tokenizers_vq.io import atomic_write_json


def run(cfg: Any) -> Figures:
    """Evaluate the tokenizer at ``cfg.tokenizer`` on ``cfg.eval``'s split of ``cfg.data``."""
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "evaluate")
    cfg = replace(cfg, model=model.config)
    if cfg.out and Path(cfg.out).expanduser().is_dir():
        raise ValueError(f"evaluate writes one JSON file; out={cfg.out} is a directory. Pass a file path.")
    with evaluation_mode(model), autocast(cfg.precision, device):
        what, figures = modality.evaluate(model, cfg)
    result = Figures("evaluate", {"tokenizer": str(tokenizer_dir), **what}, figures)
    if cfg.out:
        atomic_write_json(Path(cfg.out).expanduser(), result.to_dict())
    return result
