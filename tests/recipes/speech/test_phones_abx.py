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
    assert set(abx) >= {"codes", "continuous", "mfcc", "kmeans_mfcc", "triplets", "items", "within_reason"}
    for name in ("codes", "continuous", "mfcc", "kmeans_mfcc"):
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
    assert "ABX error" in table.out and "continuous" in table.out and "kmeans_mfcc" in table.out


def test_phones_abx_one_speaker_and_off(
    vqtok, speech_corpora: dict[str, Path], abx_corpus: Path, tmp_path: Path
) -> None:
    args = phones_args(abx_corpus, speech_corpora["tokenizer"], tmp_path)
    one = vqtok(*args, "phones.score.speakers=[spk0]", "phones.baselines=false")
    assert one.code == 0, one.err
    figures = one.json()
    assert figures["abx_across"] is None and "2 speakers" in figures["abx"]["across_reason"]
    assert figures["abx_within"] is not None and figures["abx"]["mfcc"]["across"] is None
    assert "kmeans_mfcc" not in figures["abx"]  # no baselines, so no baseline codes to score
    off = vqtok(*args, "phones.abx=false", "phones.baselines=false")
    assert off.code == 0, off.err
    assert off.json()["abx"] is None and off.json()["abx_within"] is None and off.json()["abx_across"] is None
    assert 0.0 <= off.json()["mapping_accuracy"] <= 1.0


def test_kmeans_centroid_vectors_are_the_means_of_each_codes_fitting_frames() -> None:
    """The baseline codes' ABX vectors: each code's mean fitting frame in the standardised space."""
    import numpy as np
    import torch

    from recipes.speech.phones import _centroid_vectors

    fit = [torch.tensor([[0.0, 10.0], [2.0, 10.0]]), torch.tensor([[4.0, 30.0]])]
    vectors = _centroid_vectors(fit, [np.array([0, 0]), np.array([1])], [torch.zeros(3, 2)], [np.array([1, 0, 2])], 3)
    frames = torch.cat(fit)
    standard = (frames - frames.mean(0)) / frames.std(0)
    expected = torch.stack([standard[:2].mean(0), standard[2], torch.zeros(2)])
    assert len(vectors) == 1 and torch.allclose(vectors[0], expected[[1, 0, 2]])
