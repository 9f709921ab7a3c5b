"""The audio readers: soundfile first, librosa.load for what libsndfile cannot decode, bytes as well as paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from modalities.speech import AudioError, load_audio


def _stereo_tone(path: Path, rate: int = 8000) -> Path:
    t = np.arange(rate // 2) / rate
    left = (0.5 * np.sin(2 * math.pi * 440.0 * t)).astype(np.float32)
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), rate)
    return path


def test_librosa_reads_what_soundfile_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _stereo_tone(tmp_path / "stereo.wav")
    want, _ = load_audio(path, sample_rate=16000)

    def refuse(*args: object, **kwargs: object) -> None:  # as libsndfile refuses a format it lacks
        raise RuntimeError("Format not recognised.")

    monkeypatch.setattr(sf, "read", refuse)  # librosa opens files with sf.SoundFile, not sf.read
    wave, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000 and wave.shape == (8000,) and wave.dtype == torch.float32  # mono, resampled
    torch.testing.assert_close(wave, want)


def test_bytes_read_like_the_file(tmp_path: Path) -> None:
    path = _stereo_tone(tmp_path / "a.flac")
    want, rate = load_audio(path)
    wave, got_rate = load_audio("row 3 of a dataset.flac", data=path.read_bytes())
    assert got_rate == rate and torch.equal(wave, want)


def test_a_file_neither_reader_decodes_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_bytes(b"not audio at all" * 64)
    with pytest.raises(AudioError, match=rf"cannot read {path} as audio \(soundfile: .*; librosa: .*\)"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"cannot read clip\.ogg as audio"):
        load_audio("clip.ogg", data=b"\x00" * 100)
