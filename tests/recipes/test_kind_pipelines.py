"""Every quantizer kind trains an image and a speech tokenizer through ``vqtok`` and tokenizes; an FSQ tokenizer's codes
go through a prior and compress → decompress exactly: the token space and entropy coding take any kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modalities.image import ImageTokenizer, load_image_dataset

# (overrides, codes per level) for the tiny presets (codebook_size 16, code_dim 8)
IMAGE_KINDS = {
    "fsq": (["model.quantizer=fsq", "model.fsq_levels=[5,4,3]"], 60),
    "lfq": (["model.quantizer=lfq"], 16),
    "bsq": (["model.quantizer=bsq", "model.codebook_size=32"], 32),
    "simvq": (["model.quantizer=simvq", "model.gradient=rotation"], 16),
    "vq-rotation": (["model.gradient=rotation"], 16),
}
SPEECH_KINDS = {
    "fsq": (["model.quantizer=fsq", "model.fsq_levels=[4,4]"], 16),
    "residual-fsq": (["model.quantizer=fsq", "model.num_quantizers=2", "model.quantizer_dropout=0.5"], 1000),
    "lfq": (["model.quantizer=lfq", "model.lfq_entropy_weight=0.05"], 16),
    "bsq": (["model.quantizer=bsq"], 16),
    "simvq": (["model.quantizer=simvq", "model.gradient=rotation"], 16),
}


def _levels(corpus: Path) -> list[dict]:
    return json.loads((corpus / "meta.json").read_text())["levels"]


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_image_tokenizer_of_every_kind_trains_and_tokenizes(vqtok: Callable, tmp_path: Path, kind: str) -> None:
    overrides, k = IMAGE_KINDS[kind]
    run = tmp_path / "run"
    r = vqtok("train-tokenizer", "--config", "tiny", "--out", run, "train.steps=4", "train.eval_every=4", *overrides)
    assert r.code == 0, r.err
    r = vqtok("tokenize", "--tokenizer", run / "tokenizer", "--split", "test", "--out", tmp_path / "codes",
              "tokenize.batch_size=100")  # fmt: skip
    assert r.code == 0, r.err
    assert [level["codebook_size"] for level in _levels(tmp_path / "codes")] == [k]


@pytest.mark.parametrize("kind", list(SPEECH_KINDS))
def test_speech_tokenizer_of_every_kind_trains_and_tokenizes(
    vqtok: Callable, speech_corpora: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    overrides, k = SPEECH_KINDS[kind]
    run, data = tmp_path / "run", f"data.root={speech_corpora['data']}"
    r = vqtok("train-tokenizer", "--config", "speech_tiny", "--out", run, "train.steps=2", data, *overrides)
    assert r.code == 0, r.err
    r = vqtok("tokenize", "--config", "speech_tiny", "--tokenizer", run / "tokenizer", "--out", tmp_path / "codes",
              "tokenize.split=eval", data)  # fmt: skip
    assert r.code == 0, r.err
    levels = _levels(tmp_path / "codes")
    assert {level["codebook_size"] for level in levels} == {k}
    assert len(levels) == (2 if "residual" in kind else 1)


def test_fsq_codes_through_a_prior_and_exact_compression(vqtok: Callable, tmp_path: Path) -> None:
    run, corpus = tmp_path / "run", tmp_path / "codes"
    overrides = ["model.quantizer=fsq", "model.fsq_levels=[4,3,3]"]  # 36 codes
    assert vqtok("train-tokenizer", "--config", "tiny", "--out", run, "train.steps=4", *overrides).code == 0
    assert vqtok("tokenize", "--tokenizer", run / "tokenizer", "--split", "train", "--out", corpus).code == 0
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", corpus, "--out", tmp_path / "prior", "train.steps=2")
    assert r.code == 0, r.err
    models = ["--config", "tiny", "--tokenizer", run / "tokenizer", "--prior", tmp_path / "prior" / "prior"]
    packed = tmp_path / "digits.vqc"
    r = vqtok("compress", *models, "--out", packed, "--max-items", "20", "--json")
    assert r.code == 0, r.err
    r = vqtok("decompress", *models, "--input", packed, "--out", tmp_path / "back", "--json")
    assert r.code == 0, r.err
    assert r.json()["items"] == 20
    tokenizer = ImageTokenizer.from_pretrained(run / "tokenizer")
    codes = tokenizer.encode(load_image_dataset("digits", "test").images[:20])
    np.testing.assert_array_equal(np.load(tmp_path / "back" / "codes_level0.npy"), codes.levels[0].numpy())
