"""A tiny synthetic speech corpus with phone labels, and the class that ``make_tokenizer`` (tests/modalities/conftest.py)
builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from modalities.speech import SpeechTokenizer, write_synthetic_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``spk0``/``spk1`` folders of four 16 kHz utterances each, with ``.phn`` labels."""
    return write_synthetic_corpus(tmp_path_factory.mktemp("speech") / "corpus")


@pytest.fixture
def tokenizer_class() -> type[SpeechTokenizer]:
    """The tokenizer that ``make_tokenizer`` (tests/modalities/conftest.py) builds tiny."""
    return SpeechTokenizer
