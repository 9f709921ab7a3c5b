"""``vqtok report`` of a prior run: bits-per-code curves, its corpora's code histograms, its samples."""

from __future__ import annotations

import html
import re
from pathlib import Path


def test_report_of_a_prior_run_with_samples(vqtok, image_corpora, tmp_path: Path) -> None:
    run = tmp_path / "prior_run"
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", image_corpora["train"],
              "--eval-corpus", image_corpora["test"], "--out", run)  # fmt: skip
    assert r.code == 0, r.err
    assert vqtok("sample", "--config", "prior_tiny", "--prior", run / "prior", "--num-samples", "1").code == 0

    r = vqtok("report", run, "--json")
    assert r.code == 0, r.err
    result = r.json()
    page = run / "report" / "index.html"
    text = page.read_text(encoding="utf-8")
    sources = [html.unescape(s) for s in re.findall(r'<img src="([^"]+)"', text)]
    assert sources and all((page.parent / s).is_file() for s in sources)
    assert sources == result["images"]
    assert result["sections"]["samples"] and result["sections"]["training_curves"]
    assert not result["sections"]["reconstructions"]
    # The corpora the prior was fitted to (named in its config) and their tokenizer are found and counted.
    assert "codes_train" in text and "codes_test" in text and "usage buffers" in text
    words = re.sub(r"<[^>]+>", "", text)  # column names may wrap at their underscores (<wbr>)
    assert "bits_per_code" in words and "samples.json" in words
