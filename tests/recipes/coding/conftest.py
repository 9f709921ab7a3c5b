"""Tiny models for the rate verbs: the session's tiny tokenizer, a second one, and two tiny priors over its codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.cli import main


@pytest.fixture(scope="session")
def coding_models(tiny_run: Path) -> dict[str, Path]:
    """``tokenizer``, ``other_tokenizer`` (other weights, same layout), ``prior`` and ``other_prior`` (another seed)."""
    root = tiny_run.parent
    corpus = root / "coding_codes_train"
    assert main(["tokenize", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--split", "train",
                 "--out", str(corpus)]) == 0  # fmt: skip
    other = root / "coding_other_run"
    assert main(["train-tokenizer", "--config", "tiny", "--out", str(other), "train.steps=4"]) == 0
    for name, seed in (("coding_prior", 0), ("coding_other_prior", 1)):
        assert main(["train-prior", "--config", "prior_tiny", "--corpus", str(corpus), "--out", str(root / name),
                     f"seed={seed}"]) == 0  # fmt: skip
    return {
        "tokenizer": tiny_run / "tokenizer",
        "other_tokenizer": other / "tokenizer",
        "prior": root / "coding_prior" / "prior",
        "other_prior": root / "coding_other_prior" / "prior",
    }
