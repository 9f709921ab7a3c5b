"""Shared fixtures: the ``vqtok`` entry point in-process, and tiny trained tokenizers and their codes per session."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from recipes.cli import main

# Tiny models gain nothing from a second thread, and on a shared machine spare threads only spin.
torch.set_num_threads(1)

SPOKEN_DIGITS = 3  # labelled_speech's "spoken digits": utterance index modulo 3


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def vqtok(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``vqtok ARGS...`` in this process; returns the exit code and what it printed."""

    def call(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return call


# A plain progress line of tokenizers_vq.progress: "train tiny: 2/2 steps (100%), 41.3 steps/s, 00:00 elapsed, done".
_PROGRESS_LINE = re.compile(r"^(?P<desc>[^\r\n]+?): \d+(?:/\d+)? [a-zA-Z]+(?: \(\d+%\))?, [0-9.e+-]+ [a-zA-Z]+/s, ", re.M)


@pytest.fixture
def progress_labels(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], set[str]]:
    """Progress lines at every step (``VQTOK_PROGRESS_SECONDS=0``); returns the reader of the labels of the
    progress lines in a captured standard error, which must hold no bar (no carriage return)."""
    monkeypatch.setenv("VQTOK_PROGRESS_SECONDS", "0")

    def labels(err: str) -> set[str]:
        assert "\r" not in err, "a progress bar was drawn into a log"
        return {m["desc"] for m in _PROGRESS_LINE.finditer(err)}

    return labels


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory trained with the ``tiny`` preset (8 steps on digits), shared by the read-only tests."""
    root = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train-tokenizer", "--config", "tiny", "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="session")
def speech_corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train and eval code corpora (``train``, ``eval``) of a synthetic speech folder (``data``) through the
    ``speech_tiny`` tokenizer (``tokenizer``)."""
    from modalities.speech import write_synthetic_corpus

    root = tmp_path_factory.mktemp("speech_prior")
    data = write_synthetic_corpus(root / "data")
    run = root / "tok"
    assert main(["train-tokenizer", "--config", "speech_tiny", "--out", str(run), f"data.root={data}"]) == 0
    out = {}
    for split in ("train", "eval"):
        out[split] = root / f"codes_{split}"
        assert main(["tokenize", "--config", "speech_tiny", "--tokenizer", str(run / "tokenizer"),
                     "--out", str(out[split]), f"tokenize.split={split}", f"data.root={data}"]) == 0  # fmt: skip
    out.update(data=data, tokenizer=run / "tokenizer")
    return out


@pytest.fixture(scope="session")
def labelled_speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic speech renamed to FSDD's digit_speaker_index layout, through the speech_tiny tokenizer."""
    from modalities.speech import write_synthetic_corpus

    root = tmp_path_factory.mktemp("mixed_speech")
    synthetic = write_synthetic_corpus(root / "synthetic", num_speakers=2, utterances_per_speaker=6)
    data = root / "digits"
    data.mkdir()
    for wav in sorted(synthetic.glob("*/*.wav")):
        index = int(wav.stem[1:]) - 1
        shutil.copy(wav, data / f"{index % SPOKEN_DIGITS}_{wav.parent.name}_{index}.wav")
    run = root / "tok"
    flags = [f"data.root={data}", "data.layout=fsdd"]
    assert main(["train-tokenizer", "--config", "speech_tiny", "--out", str(run), *flags]) == 0
    out = {}
    for split in ("train", "eval"):
        out[split] = root / f"codes_{split}"
        assert main(["tokenize", "--config", "speech_tiny", "--tokenizer", str(run / "tokenizer"),
                     "--out", str(out[split]), f"tokenize.split={split}", *flags]) == 0  # fmt: skip
    return out
