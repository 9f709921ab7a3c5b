"""Audio input paths: reading, mono mixing, resampling, and the errors for unusable audio."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from modalities.speech import (
    AudioError,
    FrontEnd,
    FrontEndConfig,
    check_waveform,
    load_audio,
    resample,
    save_audio,
    to_mono,
)


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_stereo_8k_file_becomes_mono_16k(tmp_path: Path) -> None:
    left, right = _tone(0.5, 8000), np.zeros(4000, np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 8000)
    wave, rate = load_audio(tmp_path / "stereo.wav", sample_rate=16000)
    assert rate == 16000 and wave.shape == (8000,) and wave.dtype == torch.float32
    # mono is the channel mean: half the left channel's level
    assert abs(float(wave.abs().max()) - 0.25) < 0.02


def test_native_rate_is_kept_without_sample_rate(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", _tone(0.25, 8000), 8000)
    wave, rate = load_audio(tmp_path / "a.flac")
    assert rate == 8000 and wave.shape == (2000,)


def test_resample_keeps_the_tone() -> None:
    wave = torch.from_numpy(_tone(1.0, 8000, freq=500.0))
    up = resample(wave, 8000, 16000)
    assert up.shape == (16000,)
    spectrum = torch.fft.rfft(up).abs()
    assert int(spectrum.argmax()) == 500  # 1 s at 16 kHz: bin k is k Hz
    assert resample(wave, 8000, 8000) is wave
    with pytest.raises(ValueError, match="orig_rate"):
        resample(wave, 0, 8000)


def test_to_mono_shapes() -> None:
    assert to_mono(torch.ones(10)).shape == (10,)
    assert to_mono(torch.ones(2, 10)).shape == (10,)
    assert to_mono(torch.ones(3, 2, 10)).shape == (3, 10)
    with pytest.raises(ValueError, match="waveform must be"):
        to_mono(torch.ones(1, 1, 1, 10))


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(800, np.float32), "silent"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, samples: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 8000)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert "bad.wav" in str(err.value)


def test_non_finite_samples_raise() -> None:
    wave = torch.ones(100)
    wave[3] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        check_waveform(wave)
    with pytest.raises(TypeError, match="float samples"):
        check_waveform(torch.ones(100, dtype=torch.int16))


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match=r"junk\.wav"):
        load_audio(junk)
    with pytest.raises(FileNotFoundError, match=r"nothing\.wav"):
        load_audio(tmp_path / "nothing.wav")


def test_save_audio_round_trip(tmp_path: Path) -> None:
    wave = torch.from_numpy(_tone(0.1, 16000))
    path = save_audio(tmp_path / "out.wav", wave, 16000)
    back, rate = load_audio(path)
    assert rate == 16000 and torch.allclose(back, wave, atol=1e-4)
    with pytest.raises(ValueError, match=r"\.wav or \.flac"):
        save_audio(tmp_path / "out.mp4", wave, 16000)


def test_front_end_frames_level_and_griffin_lim() -> None:
    fe = FrontEnd(FrontEndConfig())
    wave = torch.from_numpy(_tone(1.0, 16000))[None]
    log_mel = fe(wave)
    assert log_mel.shape == (1, 80, 101) and fe.num_frames(16000) == 101
    # level normalisation: a quieter copy gives the same features
    assert torch.allclose(fe(0.1 * wave), log_mel, atol=1e-2)
    back = fe.griffin_lim(log_mel, n_iter=8, length=16000)
    assert back.shape == (1, 16000) and torch.isfinite(back).all()
    # the vocoder keeps the tone's frequency, to within a mel band (about 60 Hz wide there)
    assert abs(int(torch.fft.rfft(back[0]).abs().argmax()) - 440) <= 60
