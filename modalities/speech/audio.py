"""Reading and checking audio: files to mono float waveforms at a chosen rate, with clear errors.

Dimension legend: ``t`` samples, ``c`` channels, ``b`` batch.

The reader is soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF and more); a file it cannot decode
goes to ``librosa.load`` (audioread, with whatever decoder the machine has, e.g. ffmpeg). ``torchaudio.load``
is not used: it needs TorchCodec, which this environment does not install.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from tokenizers_vq.io import atomic_path

# A waveform whose peak is below this (about -100 dBFS) holds no usable signal.
SILENCE_PEAK = 1e-5


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent only, or not finite; the message names the source."""


def check_waveform(waveform: torch.Tensor, source: str = "waveform") -> None:
    """Raise :class:`AudioError` for an empty, non-finite or silent-only float waveform (any shape, time last)."""
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"{source} must be a torch.Tensor of samples; got {type(waveform).__name__}.")
    if not waveform.is_floating_point():
        raise TypeError(
            f"{source} must hold float samples in [-1, 1]; got {waveform.dtype}. "
            "Convert integer PCM with waveform.float() / 32768 (16-bit) first."
        )
    if waveform.ndim == 0 or waveform.shape[-1] == 0 or waveform.numel() == 0:
        raise AudioError(f"{source} is empty (shape {tuple(waveform.shape)}); it holds no samples.")
    if not bool(torch.isfinite(waveform).all()):
        bad = int((~torch.isfinite(waveform)).sum())
        raise AudioError(f"{source} contains {bad} NaN or infinite samples; the file or the producer is broken.")
    if float(waveform.abs().max()) < SILENCE_PEAK:
        raise AudioError(
            f"{source} is silent (peak below {SILENCE_PEAK:g}, about -100 dBFS); there is no speech to tokenize."
        )


def to_mono(waveform: torch.Tensor) -> torch.Tensor:
    """Average the channels: ``(t,)`` stays, ``(c, t)`` → ``(t,)``, ``(b, c, t)`` → ``(b, t)``."""
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim == 2:
        return waveform.mean(dim=0)
    if waveform.ndim == 3:
        return waveform.mean(dim=1)
    raise ValueError(f"a waveform must be (t,), (c, t) or (b, c, t); got shape {tuple(waveform.shape)}.")


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample along the last axis with torchaudio's band-limited sinc interpolation (no-op when equal)."""
    for name, rate in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
            raise ValueError(f"{name} must be a positive whole number of samples per second; got {rate!r}.")
    if int(orig_rate) == int(new_rate):
        return waveform
    return AF.resample(waveform, int(orig_rate), int(new_rate))


def _unreadable(path: Path, err: Exception, fallback: Exception | None = None) -> AudioError:
    why = f"{err}" if fallback is None else f"soundfile: {err}; librosa: {fallback or type(fallback).__name__}"
    return AudioError(
        f"cannot read {path} as audio ({why}); use WAV, FLAC or another format libsndfile decodes"
        + ("" if fallback is None else ", or install ffmpeg for librosa to decode it")
        + "."
    )


# What soundfile raises for a file it cannot decode (LibsndfileError is a RuntimeError), or for a header
# whose fields it cannot take.
_DECODE_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError, EOFError)


def audio_sample_rate(path: str | os.PathLike[str]) -> int:
    """The sample rate of a sound file from its header; :class:`AudioError` naming the file when it is not audio."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist.")
    try:
        return int(sf.info(str(path)).samplerate)
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from err


def check_duration(waveform: torch.Tensor, sample_rate: int, min_seconds: float, source: str = "waveform") -> None:
    """Raise :class:`AudioError` when ``waveform`` (time last) lasts less than ``min_seconds`` at ``sample_rate``."""
    samples = waveform.shape[-1]
    if samples < min_seconds * sample_rate - 1e-6:
        count = f"{samples} sample{'' if samples == 1 else 's'} at {sample_rate} Hz"
        raise AudioError(
            f"{source} is too short: {count} ({1000 * samples / sample_rate:.1f} ms); the tokenizer needs at least "
            f"{1000 * min_seconds:.1f} ms of audio (one code's worth)."
        )


def _decode(path: Path, data: bytes | None) -> tuple[np.ndarray, int]:
    """Samples ``(c, t)`` float32 and the rate: soundfile first, ``librosa.load`` for what libsndfile cannot read."""
    try:
        samples, rate = sf.read(io.BytesIO(data) if data is not None else str(path), dtype="float32", always_2d=True)
        return samples.T, int(rate)  # (t, c) -> (c, t)
    except _DECODE_ERRORS as err:
        first = err
    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
            # librosa tries soundfile again, warns, then goes to audioread (deprecated there, still its only path
            # to ffmpeg and the platform's decoders; it imports modules Python 3.13 drops): expected, not shown.
            for category in (UserWarning, FutureWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            import librosa  # only for the formats libsndfile lacks: importing it takes a second

            source = path
            if data is not None:  # audioread opens paths only
                source = Path(tmp) / f"audio{path.suffix}"
                source.write_bytes(data)
            samples, rate = librosa.load(str(source), sr=None, mono=False, dtype=np.float32)  # (t,) or (c, t)
    except Exception as err:  # audioread's NoBackendError, a decoder's errors: all mean "cannot read this"
        raise _unreadable(path, first, err) from err
    return np.atleast_2d(samples), int(rate)


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None, min_seconds: float = 0.0, *, data: bytes | None = None
) -> tuple[torch.Tensor, int]:
    """Read a sound file as a mono float32 waveform ``(t,)`` in [-1, 1]; resampled when ``sample_rate`` is given.

    E.g. an 8 kHz stereo FLAC of 1 s with ``sample_rate=16000`` → ``(16000,)`` and ``16000``.
    soundfile reads it; a format libsndfile cannot decode goes to ``librosa.load`` (see the module docstring).
    ``data``: the file's bytes, read instead of ``path``, which then only names the audio (e.g. a row of a
    ``datasets`` Audio column read with ``decode=False``).
    Raises ``FileNotFoundError`` for a missing file and :class:`AudioError` (naming the file) for one
    that cannot be decoded, is empty, silent only, holds NaN/inf samples, or lasts less than
    ``min_seconds`` (a tokenizer's ``config.min_seconds``).
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist.")
    samples, rate = _decode(path, data)  # (c, t)
    waveform = to_mono(torch.from_numpy(np.ascontiguousarray(samples)))  # (c, t) -> (t,)
    check_waveform(waveform, source=str(path))
    check_duration(waveform, rate, min_seconds, source=str(path))
    if sample_rate is not None:
        waveform, rate = resample(waveform, rate, sample_rate), sample_rate
    return waveform, int(rate)


def save_audio(path: str | os.PathLike[str], waveform: torch.Tensor, sample_rate: int) -> Path:
    """Write a mono waveform ``(t,)`` as 16-bit PCM (WAV or FLAC by the file's suffix), atomically."""
    path = Path(path)
    samples = waveform.detach().float().cpu().reshape(-1).clamp(-1.0, 1.0).numpy()
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {path}: the suffix must be .wav or .flac.")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, int(sample_rate), subtype="PCM_16", format=fmt)
    return path
