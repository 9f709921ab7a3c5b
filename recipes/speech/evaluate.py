"""Evaluate a speech tokenizer on a split: log-mel distance, STOI, the Griffin-Lim ceiling, bitrate, code health.

The figures (snake_case: ``log_mel_distance``, ``log_mel_distance_vocoder``, ``stoi``,
``stoi_vocoder``, ``bitrate``, ``code_rate``, ``usage``, ``perplexity``) come from
:func:`modalities.speech.evaluate_reconstruction`; each utterance is decoded in its own speaker's
voice. With ``out`` set they are also written there as one JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modalities.speech import evaluate_reconstruction
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode, setup_runtime
from recipes.speech.common import load_split, open_tokenizer, selection_of
from recipes.speech.config import SpeechRecipeConfig
from tokenizers_vq.io import atomic_write_json


@dataclass
class SpeechEvaluateResult:
    """What was evaluated and its figures."""

    tokenizer: str
    data: str
    split: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "data": self.data, "split": self.split, **self.figures}

    def format(self) -> str:
        return format_figures(self.to_dict(), title="evaluate")


def run(cfg: SpeechRecipeConfig) -> SpeechEvaluateResult:
    """Evaluate the tokenizer at ``cfg.tokenizer`` on the first ``eval.max_utterances`` of ``eval.split``."""
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "evaluate", cfg.duration_penalty)
    split = load_split(cfg, selection_of(cfg, cfg.eval.split), model.sample_rate, cfg.eval.max_utterances)
    known = set(model.speakers)
    keep = [i for i, u in enumerate(split.utterances) if not known or u.speaker in known]
    if not keep:
        raise ValueError(
            f"none of the {len(split)} utterances is by a speaker this tokenizer knows ({model.speakers}); "
            "evaluate decodes each utterance in its own speaker's voice."
        )
    with evaluation_mode(model):
        result = evaluate_reconstruction(
            model,
            [split.waveforms[i] for i in keep],
            [model.sample_rate] * len(keep),
            [split.utterances[i].speaker if known else None for i in keep],
        )
    figures = {**result.to_dict(), "skipped_unknown_speakers": len(split) - len(keep)}
    out = SpeechEvaluateResult(str(tokenizer_dir), cfg.data.root or cfg.data.name, cfg.eval.split, figures)
    if cfg.out:
        path = Path(cfg.out).expanduser()
        if path.is_dir():
            raise ValueError(f"evaluate writes one JSON file; out={cfg.out} is a directory. Pass a file path.")
        atomic_write_json(path, out.to_dict())
    return out
