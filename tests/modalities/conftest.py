"""Tiny tokenizers for fast tests: ``make_tokenizer`` builds one of the class that each modality's conftest names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from modalities.image import ImageTokenizer
from modalities.speech import SpeechTokenizer
from tokenizers_vq.tokenizer import Tokenizer

# Config fields of a tokenizer small enough for a fast test, per class (the rest keep their defaults).
TINY: dict[type[Tokenizer], dict[str, Any]] = {
    ImageTokenizer: {"hidden_channels": 16, "res_channels": 8, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 8},
    SpeechTokenizer: {
        "hidden_channels": 16,
        "num_res_blocks": 1,
        "codebook_size": 16,
        "code_dim": 8,
        "speaker_dim": 8,
        "griffin_lim_iters": 4,
    },
}


@pytest.fixture
def make_tokenizer(tokenizer_class: type[Tokenizer]) -> Callable[..., Tokenizer]:
    """``make_tokenizer(**config_overrides)``: a tiny tokenizer of the modality's ``tokenizer_class``, with fixed
    initial weights."""

    def make(**overrides: Any) -> Tokenizer:
        torch.manual_seed(0)
        return tokenizer_class(tokenizer_class.config_class(**{**TINY[tokenizer_class], **overrides}))

    return make
