"""``vqtok evaluate``: a tokenizer's reconstruction quality and codebook health on a split.

Images: ``mse``, ``psnr``, ``ssim`` and per level ``usage``, ``perplexity``, ``dead_codes``, ``label_nmi``
(:func:`modalities.image.evaluate_tokenizer`). Speech: ``log_mel_distance``, ``stoi``, their vocoder
ceilings, ``bitrate``, ``usage``, ``perplexity`` (:func:`modalities.speech.evaluate_reconstruction`),
each utterance decoded in its own speaker's voice. With ``out`` set the figures are also written
there as one JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipes.engine.artifacts import open_tokenizer
from recipes.engine.results import format_figures
from recipes.engine.runtime import autocast, evaluation_mode, setup_runtime
from tokenizers_vq.io import atomic_write_json


@dataclass
class EvaluateResult:
    """What was evaluated (tokenizer, data set, split) and its figures, as one flat JSON object."""

    tokenizer: str
    what: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, **self.what, **self.figures}

    def format(self) -> str:
        return format_figures(self.to_dict(), title="evaluate")


def run(cfg: Any) -> EvaluateResult:
    """Evaluate the tokenizer at ``cfg.tokenizer`` on ``cfg.eval``'s split of ``cfg.data``."""
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "evaluate")
    cfg = replace(cfg, model=model.config)
    if cfg.out and Path(cfg.out).expanduser().is_dir():
        raise ValueError(f"evaluate writes one JSON file; out={cfg.out} is a directory. Pass a file path.")
    with evaluation_mode(model), autocast(cfg.precision, device):
        what, figures = modality.evaluate(model, cfg)
    result = EvaluateResult(str(tokenizer_dir), what, figures)
    if cfg.out:
        atomic_write_json(Path(cfg.out).expanduser(), result.to_dict())
    return result
