"""Smoke tests of the prior verbs through ``vqtok`` (in-process), each with --json figures."""

from __future__ import annotations


def test_prior_verbs_end_to_end(vqtok, image_corpora, tmp_path):
    run = tmp_path / "run"
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", image_corpora["train"],
              "--eval-corpus", image_corpora["test"], "--out", run, "--kind", "transformer", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["kind"] == "transformer" and r.json()["step"] == 6

    r = vqtok("sample", "--config", "prior_tiny", "--prior", run / "prior", "--num-samples", "1", "--top-k", "4",
              "--out", tmp_path / "samples", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["num_samples"] == 10 and (tmp_path / "samples" / "samples.png").is_file()

    r = vqtok("evaluate", "--config", "prior_tiny", f"prior={run / 'prior'}", "--json")
    assert r.code == 0, r.err
    assert {"bits_per_code", "bits_per_dim", "elbo_bits_per_dim"} <= set(r.json())

    r = vqtok("cas", "--config", "prior_tiny", "--prior", run / "prior", "--json")
    assert r.code == 0, r.err
    assert {"cas", "real_accuracy", "cas_ratio", "acceptance_rate"} <= set(r.json())

    r = vqtok("train-prior", "--steps", "8", "--out", run, "--resume", "--json")  # the run's own config.yaml
    assert r.code == 0, r.err
    assert r.json()["resumed_from"] == 6 and r.json()["step"] == 8


def test_prior_verbs_report_bad_input_in_one_line(vqtok, tmp_path):
    r = vqtok("train-prior", "--config", "prior_tiny", "--out", tmp_path)
    assert r.code == 2 and "corpus=DIR" in r.err
    r = vqtok("sample", "--config", "prior_tiny", "--prior", tmp_path / "missing")
    assert r.code == 2 and "train-prior" in r.err
    r = vqtok("train-prior", "--config", "prior_tiny", "model.kind=rnn")
    assert r.code == 2 and "model.kind" in r.err
