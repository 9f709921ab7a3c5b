"""``vqtok phones`` reports ABX error of the codes, the encoder's vectors and MFCC (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modalities.speech import write_synthetic_corpus


@pytest.fixture(scope="module")
def abx_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve synthetic utterances per speaker: enough phones in shared contexts for ABX cells."""
    return write_synthetic_corpus(tmp_path_factory.mktemp("abx") / "corpus", utterances_per_speaker=12)


def phones_args(corpus: Path, tokenizer: Path, out: Path) -> list:
    return ["phones", "--config", "speech_tiny", "--tokenizer", tokenizer, f"data.root={corpus}", "--out", out,
            "phones.score.min_index=1", "phones.score.max_index=12", "phones.plot=false", "--json"]  # fmt: skip


def test_phones_reports_abx(vqtok, speech_corpora: dict[str, Path], abx_corpus: Path, tmp_path: Path) -> None:
    result = vqtok(*phones_args(abx_corpus, speech_corpora["tokenizer"], tmp_path / "a"))
    assert result.code == 0, result.err
    figures = result.json()
    abx = figures["abx"]
    assert set(abx) >= {"codes", "continuous", "mfcc", "triplets", "items", "within_reason", "across_reason"}
    for name in ("codes", "continuous", "mfcc"):
        for mode in ("within", "across"):
            assert 0.0 <= abx[name][mode] <= 1.0, (name, mode)
    assert figures["abx_within"] == abx["codes"]["within"] and figures["abx_across"] == abx["codes"]["across"]
    assert abx["triplets"] == abx["triplets_within"] + abx["triplets_across"] > 0 and abx["speakers"] == 2
    assert "abx_within" not in figures["baselines"]["kmeans_mfcc"]  # MFCC's ABX is under abx.mfcc
    again = vqtok(*phones_args(abx_corpus, speech_corpora["tokenizer"], tmp_path / "b"))
    assert {k: v for k, v in again.json()["abx"].items() if k != "seconds"} == {
        k: v for k, v in abx.items() if k != "seconds"
    }  # the same triplets, drawn with the same seed

    table = vqtok(*phones_args(abx_corpus, speech_corpora["tokenizer"], tmp_path / "c")[:-1])
    assert "ABX error" in table.out and "continuous" in table.out


def test_phones_abx_one_speaker_and_off(
    vqtok, speech_corpora: dict[str, Path], abx_corpus: Path, tmp_path: Path
) -> None:
    args = phones_args(abx_corpus, speech_corpora["tokenizer"], tmp_path)
    one = vqtok(*args, "phones.score.speakers=[spk0]", "phones.baselines=false")
    assert one.code == 0, one.err
    figures = one.json()
    assert figures["abx_across"] is None and "2 speakers" in figures["abx"]["across_reason"]
    assert figures["abx_within"] is not None and figures["abx"]["mfcc"]["across"] is None
    off = vqtok(*args, "phones.abx=false", "phones.baselines=false")
    assert off.code == 0, off.err
    assert off.json()["abx"] is None and off.json()["abx_within"] is None and off.json()["abx_across"] is None
    assert 0.0 <= off.json()["mapping_accuracy"] <= 1.0
