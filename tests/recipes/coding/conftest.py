"""Tiny models for the rate verbs: tiny image and speech tokenizers, a second one of each, two tiny priors over their codes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from recipes.cli import main


@pytest.fixture(scope="module")
def vqtok_module():
    """``vqtok ARGS...`` in this process for module-scoped fixtures (capsys is per test)."""

    def call(*args) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return call


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


@pytest.fixture(scope="session")
def speech_coding_models(speech_corpora: dict[str, Path]) -> dict[str, Path]:
    """The synthetic speech corpora's ``tokenizer`` and ``data``, ``other_tokenizer`` (another seed), and two 1-D
    priors over the tokenizer's codes (``prior``, ``other_prior``: seeds 0 and 1)."""
    root = speech_corpora["train"].parent
    other = root / "coding_other_tok"
    assert main(["train-tokenizer", "--config", "speech_tiny", "--out", str(other), f"data.root={speech_corpora['data']}",
                 "seed=1"]) == 0  # fmt: skip
    for name, seed in (("coding_prior", 0), ("coding_other_prior", 1)):
        assert main(["train-prior", "--config", "prior_tiny", "--corpus", str(speech_corpora["train"]),
                     "--out", str(root / name), "model.pixelcnn.kernel_size=2", "train.batch_size=4",
                     f"seed={seed}"]) == 0  # fmt: skip
    return {
        "data": speech_corpora["data"],
        "eval_corpus": speech_corpora["eval"],
        "tokenizer": speech_corpora["tokenizer"],
        "other_tokenizer": other / "tokenizer",
        "prior": root / "coding_prior" / "prior",
        "other_prior": root / "coding_other_prior" / "prior",
    }
