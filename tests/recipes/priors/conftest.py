"""Code corpora for the prior recipes: digits through the tiny image tokenizer (speech corpora: tests/recipes/conftest.py)."""

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
