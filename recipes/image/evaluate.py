"""Evaluate a tokenizer on a split: reconstruction quality and, per level, codebook health and label NMI.

The figures (snake_case: ``mse``, ``psnr``, ``ssim``, and per level ``usage``, ``perplexity``,
``dead_codes``, ``label_nmi``, ``shape``, ``codebook_size``) come from
:func:`modalities.image.metrics.evaluate_tokenizer`; this recipe adds what was evaluated. With
``out`` set they are also written there as one JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recipes.engine.results import format_figures
from recipes.image.common import check_fits, evaluate, load_split, open_tokenizer, setup_runtime
from recipes.image.config import ImageRecipeConfig
from tokenizers_vq.io import atomic_write_json


@dataclass
class EvaluateResult:
    """What was evaluated and its figures (the dict ``evaluate_tokenizer(...).to_dict()`` returns)."""

    tokenizer: str
    dataset: str
    split: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON object: the figures at the top level, beside ``tokenizer``, ``dataset``, ``split``."""
        return {"tokenizer": self.tokenizer, "dataset": self.dataset, "split": self.split, **self.figures}

    def format(self) -> str:
        return format_figures(self.to_dict(), title="evaluate")


def run(cfg: ImageRecipeConfig) -> EvaluateResult:
    """Evaluate the tokenizer at ``cfg.tokenizer`` on ``cfg.eval.split`` (default ``cfg.data.eval_split``)."""
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "evaluate")
    cfg = replace(cfg, model=model.config)
    split = cfg.eval.split or cfg.data.eval_split
    data = load_split(cfg, split, cfg.eval.max_images)
    check_fits(cfg, data)
    figures = evaluate(model, data, cfg.eval.batch_size, cfg.precision)
    result = EvaluateResult(tokenizer=str(tokenizer_dir), dataset=data.name, split=data.split, figures=figures)
    if cfg.out:
        path = Path(cfg.out).expanduser()
        if path.is_dir():
            raise ValueError(f"evaluate writes one JSON file; out={cfg.out} is a directory. Pass a file path.")
        atomic_write_json(path, result.to_dict())
    return result
