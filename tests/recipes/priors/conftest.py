"""Code corpora for the prior recipes: digits through the tiny image tokenizer, synthetic speech through the tiny speech one."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.cli import main


@pytest.fixture(scope="session")
def image_corpora(tiny_run: Path) -> dict[str, Path]:
    """Train and test code corpora of the bundled digits (4×4 codes, K=16, 10 classes)."""
    out = {}
    for split in ("train", "test"):
        out[split] = tiny_run.parent / f"codes_{split}"
        assert main(["tokenize", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--split", split,
                     "--out", str(out[split])]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="session")
def speech_corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train and eval code corpora of a synthetic speech folder through the ``speech_tiny`` tokenizer."""
    from modalities.speech import write_synthetic_corpus

    root = tmp_path_factory.mktemp("speech_prior")
    data = write_synthetic_corpus(root / "data")
    run = root / "tok"
    assert main(["train-tokenizer", "--config", "speech_tiny", "--out", str(run), f"data.root={data}"]) == 0
    out = {}
    for split in ("train", "eval"):
        out[split] = root / f"codes_{split}"
        assert main(["tokenize", "--config", "speech_tiny", "--tokenizer", str(run / "tokenizer"),
                     "--out", str(out[split]), f"tokenize.split={split}", f"data.root={data}"]) == 0  # fmt: skip
    return out
