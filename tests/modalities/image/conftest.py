"""Small image tokenizers for fast tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from modalities.image import ImageTokenizer, ImageTokenizerConfig

TINY = {"hidden_channels": 16, "res_channels": 8, "num_res_blocks": 1, "codebook_size": 16, "code_dim": 8}

# (kind, num_levels, downsample): one VQ-VAE and VQ-VAE-2 hierarchies of two and three levels.
ARCHITECTURES = [("vqvae", 1, 4), ("vqvae2", 2, 2), ("vqvae2", 3, 2)]


@pytest.fixture
def make_tokenizer() -> Callable[..., ImageTokenizer]:
    """``make_tokenizer(**config_overrides)``: a tiny tokenizer with fixed initial weights."""

    def make(**overrides) -> ImageTokenizer:
        torch.manual_seed(0)
        return ImageTokenizer(ImageTokenizerConfig(**{**TINY, **overrides}))

    return make


@pytest.fixture(params=ARCHITECTURES, ids=[f"{k}-L{n}-d{d}" for k, n, d in ARCHITECTURES])
def architecture(request) -> dict:
    """Config overrides of each architecture under test (the test runs once per architecture)."""
    kind, num_levels, downsample = request.param
    return {"kind": kind, "num_levels": num_levels, "downsample": downsample}
