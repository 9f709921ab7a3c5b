"""`vqtok tokenize --format hf`: the corpus as a Hugging Face datasets dataset, equal to the .npy corpus and read by priors."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from tokenizers_vq.corpus import open_corpus


def _same_corpus(a: Path, b: Path) -> None:
    left, right = open_corpus(a), open_corpus(b)
    assert len(left) == len(right) and left.layout() == right.layout()
    for x, y in zip(left.levels, right.levels, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    if left.labels is None:
        assert right.labels is None
    else:
        np.testing.assert_array_equal(np.asarray(left.labels), np.asarray(right.labels))
    assert left.meta["tokenizer"]["sha256"] == right.meta["tokenizer"]["sha256"]


def test_an_image_corpus_as_a_dataset(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    npy, hf = tmp_path / "npy", tmp_path / "hf"
    for out, fmt in ((npy, "npy"), (hf, "hf")):
        res = vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", out, "--format", fmt)
        assert res.code == 0, res.err
    dataset = datasets.load_from_disk(str(hf))
    assert dataset.column_names == ["id", "codes_level0", "label"] and len(dataset) == 300
    np.testing.assert_array_equal(np.asarray(dataset.with_format("numpy")["codes_level0"]), np.load(npy / "codes_level0.npy"))
    assert '"sha256"' in dataset.info.description  # the tokenizer's identity travels in the dataset's metadata
    _same_corpus(npy, hf)
    trained = vqtok("train-prior", "--config", "prior_tiny", "--corpus", hf, "--out", tmp_path / "prior", "--json")
    assert trained.code == 0, trained.err


def test_a_speech_corpus_as_a_dataset(vqtok, speech_corpora: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "hf"
    res = vqtok("tokenize", "--config", "speech_tiny", "--tokenizer", speech_corpora["tokenizer"], "--split", "eval",
                "--out", out, "--format", "hf", f"data.root={speech_corpora['data']}", "--json")  # fmt: skip
    assert res.code == 0, res.err
    assert res.json()["num_frames"] == int(np.load(speech_corpora["eval"] / "offsets.npy")[-1])
    dataset = datasets.load_from_disk(str(out))
    assert {"id", "codes_level0", "speaker", "label"} <= set(dataset.column_names)
    _same_corpus(speech_corpora["eval"], out)


def test_a_bad_format_is_refused(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    res = vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "--out", tmp_path / "x", "--format", "parquet")
    assert res.code == 2 and "tokenize.format must be npy or hf" in res.err
