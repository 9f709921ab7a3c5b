"""``vqtok bpe``: unit BPE over a speech code corpus and the two priors it compares (tiny preset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recipes.units.bpe import dedup
from tokenizers_vq.corpus import code_sequences, open_corpus
from tokenizers_vq.io import read_jsonl
from tokenizers_vq.text import UnitBPE


def test_dedup_merges_runs_only():
    assert dedup(np.array([5, 5, 5, 2, 2, 5, 7])).tolist() == [5, 2, 5, 7]
    assert dedup(np.array([], dtype=np.int64)).tolist() == []


@pytest.mark.parametrize("dedup_units", [False, True])
def test_bpe_verb_reports_compression_and_bits_per_original_code(vqtok, speech_corpora, tmp_path, dedup_units):
    out = tmp_path / "bpe"
    result = vqtok("bpe", "--config", "bpe_tiny", "--corpus", speech_corpora["train"], "--eval-corpus",
                   speech_corpora["eval"], "--out", out, f"bpe.dedup={str(dedup_units).lower()}", "--json")  # fmt: skip
    assert result.code == 0, result.err
    figures = result.json()
    assert figures["dedup"] is dedup_units
    assert figures["codes_per_token"] >= 1.0
    by = {p["tokens"]: p for p in figures["priors"]}
    assert set(by) == {"codes", "bpe"}
    # Raw codes: one token per code plus <eos>, so bits per code = bits per token * (codes + 1) / codes.
    n = figures["codes_per_sequence"]
    assert by["codes"]["bits_per_code"] == pytest.approx(by["codes"]["bits_per_token"] * (n + 1) / n, rel=1e-6)
    assert by["bpe"]["tokens_per_sequence"] == pytest.approx(n / figures["codes_per_token"], rel=1e-6)
    assert figures["bits_per_code_ratio"] == pytest.approx(by["bpe"]["bits_per_code"] / by["codes"]["bits_per_code"])
    assert json.loads((out / "figures.json").read_text()) == figures
    # The saved unit BPE inverts the held-out sequences exactly.
    bpe = UnitBPE.load(out / "unit_bpe.model", figures["codebook_size"])
    for seq in code_sequences(open_corpus(speech_corpora["eval"])):
        assert bpe.decode(bpe.encode(seq)).tolist() == seq.tolist()
    for name in ("codes", "bpe"):  # each prior's training run, with its transformers directory in prior/
        run = out / f"prior_{name}"
        assert (run / "prior" / "config.json").is_file() and (run / "checkpoint" / "state.pt").is_file()
        assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"] == [2, 4]
    table = vqtok("bpe", "--config", "bpe_tiny", "--corpus", speech_corpora["train"], "--eval-corpus",
                  speech_corpora["eval"], "--out", tmp_path / "again")  # fmt: skip
    assert table.code == 0 and "codes_per_token" in table.out and "bits_per_code" in table.out


def test_bpe_verb_explains_a_missing_corpus(vqtok, tmp_path: Path):
    result = vqtok("bpe", "--config", "bpe_tiny", "--out", tmp_path / "x")
    assert result.code == 2 and "corpus=DIR" in result.err
