"""The speech verbs on a layout of its own: one flat folder of symbolic links named ``<speaker>_<utt>.wav``, speakers
taken from the prefix, phones from one Kaldi CTM of the corpus that leaves the pauses unlabelled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from modalities.speech import write_synthetic_corpus
from modalities.speech.labels import read_phn


@pytest.fixture(scope="module")
def flat_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``flat/spk0_u001.wav -> store/spk0/u001.wav`` ..., and ``flat/alignments/all.ctm`` without the pauses."""
    base = tmp_path_factory.mktemp("layouts")
    store = write_synthetic_corpus(base / "store", utterances_per_speaker=5)
    flat = base / "flat"
    (flat / "alignments").mkdir(parents=True)
    lines = []
    for audio in sorted(store.glob("*/*.wav")):
        utterance = f"{audio.parent.name}_{audio.stem}"
        os.symlink(audio, flat / f"{utterance}.wav")
        for s in read_phn(audio.with_suffix(".phn"), 16000):
            if s.phone != "pau":  # head and tail left unlabelled
                lines.append(f"{utterance} 1 {s.start:.4f} {s.end - s.start:.4f} {s.phone}")
    (flat / "alignments" / "all.ctm").write_text("\n".join(lines) + "\n")
    return flat


def test_train_tokenize_and_phones_on_a_flat_ctm_corpus(flat_corpus: Path, tmp_path: Path, vqtok) -> None:
    data = ["--config", "speech_tiny", f"data.root={flat_corpus}", "data.speaker_from=prefix",
            "data.ctm=alignments/all.ctm", "data.train.max_index=3", "data.eval.min_index=4", "data.eval.max_index=5"]  # fmt: skip
    assert vqtok("train-tokenizer", *data, "--out", tmp_path / "run").code == 0
    tokenizer = tmp_path / "run" / "tokenizer"
    assert json.loads((tokenizer / "config.json").read_text())["config"]["speakers"] == ["spk0", "spk1"]

    assert vqtok("tokenize", *data, "--tokenizer", tokenizer, "--split", "eval", "--out", tmp_path / "codes").code == 0
    assert np.load(tmp_path / "codes" / "speakers.npy").tolist() == [0, 0, 1, 1]
    frames = np.load(tmp_path / "codes" / "phones.npy")
    assert 0 < (frames == -1).sum() < len(frames) // 2  # the pauses carry no phone

    result = vqtok("phones", *data, "--tokenizer", tokenizer, "--out", tmp_path / "phones", "--json")
    assert result.code == 0, result.err
    figures = result.json()
    assert "pau" not in figures["phones"] and set(figures["phones"]) <= {"aa", "iy", "m", "s", "uw"}
    assert 0 < figures["score_frames"] < len(frames)  # unlabelled frames left out of scoring
    assert (tmp_path / "phones" / "confusion.png").is_file()


def test_an_empty_selection_names_the_setting_and_what_is_there(flat_corpus: Path, tmp_path: Path, vqtok) -> None:
    result = vqtok("train-tokenizer", "--config", "speech_tiny", f"data.root={flat_corpus}", "data.speaker_from=prefix",
                   "data.train.speakers=[spk7]", "--out", tmp_path / "run")  # fmt: skip
    assert result.code == 2
    assert "no speaker spk7" in result.err and "spk0 1..5, spk1 1..5" in result.err
    assert "data.train.speakers" in result.err
