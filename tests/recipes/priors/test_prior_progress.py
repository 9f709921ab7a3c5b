"""Progress in a log for the prior verbs: training, sampling, CAS and the two priors inside bpe write plain
progress lines (every step here) and no tqdm bar."""

from __future__ import annotations

from pathlib import Path


def test_train_prior_sample_and_cas(vqtok, progress_labels, image_corpora, tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", image_corpora["train"], "--out", run,
              "train.steps=2")  # fmt: skip
    assert r.code == 0, r.err
    assert any(label.startswith("train-prior") for label in progress_labels(r.err)), r.err
    r = vqtok("cas", "--config", "prior_tiny", "--prior", run / "prior", "cas.samples_per_class=1",
              "cas.real_train_items=32", "cas.test_items=16", "cas.classifier.steps=2")  # fmt: skip
    assert r.code == 0, r.err
    assert {"sampling", "training the CAS classifier"} <= progress_labels(r.err)


def test_bpe_trains_its_two_priors_with_progress(vqtok, progress_labels, speech_corpora, tmp_path: Path) -> None:
    r = vqtok("bpe", "--config", "bpe_tiny", "--corpus", speech_corpora["train"], "--eval-corpus",
              speech_corpora["eval"], "--out", tmp_path / "bpe", "train.steps=2")  # fmt: skip
    assert r.code == 0, r.err
    assert sum(label.startswith("bpe ") for label in progress_labels(r.err)) == 2, r.err
