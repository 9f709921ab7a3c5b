"""The image architectures under test, and the class that ``make_tokenizer`` (tests/modalities/conftest.py) builds."""

from __future__ import annotations

import pytest

from modalities.image import ImageTokenizer

# (kind, num_levels, downsample): one VQ-VAE and VQ-VAE-2 hierarchies of two and three levels.
ARCHITECTURES = [("vqvae", 1, 4), ("vqvae2", 2, 2), ("vqvae2", 3, 2)]


@pytest.fixture
def tokenizer_class() -> type[ImageTokenizer]:
    """The tokenizer that ``make_tokenizer`` (tests/modalities/conftest.py) builds tiny."""
    return ImageTokenizer


@pytest.fixture(params=ARCHITECTURES, ids=[f"{k}-L{n}-d{d}" for k, n, d in ARCHITECTURES])
def architecture(request) -> dict:
    """Config overrides of each architecture under test (the test runs once per architecture)."""
    kind, num_levels, downsample = request.param
    return {"kind": kind, "num_levels": num_levels, "downsample": downsample}
