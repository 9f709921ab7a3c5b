"""Progress in a log: the tokenizer and speech verbs write plain progress lines to a standard error that is not a
terminal (every step here, ``VQTOK_PROGRESS_SECONDS=0``), and never a tqdm bar."""

from __future__ import annotations

from pathlib import Path


def test_image_training_tokenize_and_evaluate(vqtok, progress_labels, tiny_run: Path, tmp_path: Path) -> None:
    r = vqtok("train-tokenizer", "--config", "tiny", "--out", tmp_path / "run", "train.steps=2")
    assert r.code == 0, r.err
    assert "train tiny" in progress_labels(r.err)
    r = vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", tmp_path / "codes")
    assert r.code == 0, r.err
    assert any(label.startswith("tokenize") or "[shard" in label for label in progress_labels(r.err)), r.err
    r = vqtok("evaluate", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "eval.max_images=64")
    assert r.code == 0, r.err
    assert "evaluating" in progress_labels(r.err)


def test_speech_loading_evaluate_and_phones(vqtok, progress_labels, speech_corpora: dict[str, Path],
                                            tmp_path: Path) -> None:  # fmt: skip
    data, tokenizer = speech_corpora["data"], speech_corpora["tokenizer"]
    r = vqtok("evaluate", "--config", "speech_tiny", "--tokenizer", tokenizer, f"data.root={data}")
    assert r.code == 0, r.err
    assert {f"loading {data.name}", "evaluating"} <= progress_labels(r.err)
    r = vqtok("phones", "--config", "speech_tiny", "--tokenizer", tokenizer, f"data.root={data}",
              "--out", tmp_path / "phones")  # fmt: skip
    assert r.code == 0, r.err
    assert {f"loading {data.name}", "encoding", "k-means baselines"} <= progress_labels(r.err)
