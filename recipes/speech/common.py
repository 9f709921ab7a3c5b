"""What several speech recipes share: finding utterances, loading audio, opening a tokenizer, phone analysis.

Dimension legend: ``t`` samples, ``m`` mel bins, ``f`` mel frames, ``n`` code frames, ``K`` codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from modalities.speech import (
    PhoneMetrics,
    PhoneSegment,
    Selection,
    SpeechTokenizer,
    Utterance,
    align,
    find_data_folder,
    list_utterances,
    load_audio,
    phone_metrics,
    select,
)
from recipes.speech.config import SpeechRecipeConfig


@dataclass
class SpeechSplit:
    """Utterances of one split with their waveforms ``(t,)`` at the model's rate."""

    utterances: list[Utterance]
    waveforms: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def has_phones(self) -> bool:
        return bool(self.utterances) and all(u.phones_path is not None for u in self.utterances)


def selection_of(cfg: SpeechRecipeConfig, split: str) -> Selection:
    """``data.train`` or ``data.eval``."""
    return cfg.data.train if split == "train" else cfg.data.eval


def find_utterances(cfg: SpeechRecipeConfig, selection: Selection, limit: int | None = None) -> list[Utterance]:
    """The utterances of ``cfg.data`` that ``selection`` keeps (the first ``limit`` of them when given)."""
    root = find_data_folder(cfg.data.name, cfg.data.root)
    utterances = select(list_utterances(root, cfg.data.layout), selection)
    if not utterances:
        raise ValueError(
            f"no utterance in {root} fits the selection {selection}; check data.train / data.eval "
            "(speakers, min_index, max_index)."
        )
    return utterances[:limit] if limit is not None else utterances


def load_split(
    cfg: SpeechRecipeConfig, selection: Selection, sample_rate: int, limit: int | None = None
) -> SpeechSplit:
    """Audio of the selected utterances, mono and resampled to ``sample_rate``."""
    utterances = find_utterances(cfg, selection, limit)
    return SpeechSplit(utterances, [load_audio(u.path, sample_rate)[0] for u in utterances])


def open_tokenizer(
    path: str | None, device: torch.device, verb: str, duration_penalty: float | None = None
) -> tuple[SpeechTokenizer, Path]:
    """Load the speech tokenizer directory ``path`` in eval mode on ``device``; clear errors when it is missing.

    ``duration_penalty``: encode with it instead of the tokenizer's own (None: keep the tokenizer's).
    """
    if path is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} does not exist; train one with `vqtok train-tokenizer`.")
    model = SpeechTokenizer.from_pretrained(directory, map_location=device)
    if duration_penalty is not None:
        model.config = replace(model.config, duration_penalty=duration_penalty)  # checked by the config
    return model, directory


@torch.no_grad()
def encode_waveforms(tokenizer: SpeechTokenizer, waveforms: list[torch.Tensor]) -> list[np.ndarray]:
    """Codes of each waveform ``(t,)`` at the model's rate: ``(n,)`` arrays, or ``(n, l)`` for residual codes."""
    return [tokenizer.encode(w, tokenizer.sample_rate).codes[0].cpu().numpy() for w in waveforms]


def phone_segments(cfg: SpeechRecipeConfig, utterances: list[Utterance]) -> list[list[PhoneSegment]]:
    """Phone labels of each utterance, folded by ``data.phone_map``."""
    return [u.phones(cfg.data.phone_map, cfg.data.textgrid_tier) for u in utterances]


def phone_inventory(*segment_sets: list[list[PhoneSegment]]) -> list[str]:
    """The sorted phones that occur in any of the segment sets."""
    return sorted({s.phone for segments in segment_sets for utt in segments for s in utt})


def analyse(
    fit_codes: list[np.ndarray],
    score_codes: list[np.ndarray],
    fit_segments: list[list[PhoneSegment]],
    score_segments: list[list[PhoneSegment]],
    frame_rate: float,
    first_frame_time: float,
    codebook_size: int,
    phones: list[str],
) -> tuple[PhoneMetrics, np.ndarray]:
    """Align both sets of 1-D codes to their phones and compute :func:`~modalities.speech.phone_metrics`."""
    fit = align(fit_codes, fit_segments, frame_rate, first_frame_time, phones)
    score = align(score_codes, score_segments, frame_rate, first_frame_time, phones)
    return phone_metrics(fit, score, codebook_size, len(phones))
