"""A tiny synthetic speech corpus with phone labels, and tiny speech tokenizers, for fast tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modalities.speech import SpeechTokenizer, SpeechTokenizerConfig, write_synthetic_corpus

TINY = {
    "hidden_channels": 16,
    "num_res_blocks": 1,
    "codebook_size": 16,
    "code_dim": 8,
    "speaker_dim": 8,
    "griffin_lim_iters": 4,
}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``spk0``/``spk1`` folders of four 16 kHz utterances each, with ``.phn`` labels."""
    return write_synthetic_corpus(tmp_path_factory.mktemp("speech") / "corpus")


@pytest.fixture
def make_tokenizer() -> Callable[..., SpeechTokenizer]:
    """``make_tokenizer(**config_overrides)``: a tiny tokenizer with fixed initial weights."""

    def make(**overrides) -> SpeechTokenizer:
        torch.manual_seed(0)
        return SpeechTokenizer(SpeechTokenizerConfig(**{**TINY, **overrides}))

    return make
