"""The speech front end: level normalisation, log-mel analysis, Griffin-Lim inversion, and MFCCs.

Dimension legend: ``b`` batch, ``t`` samples, ``m`` mel bins, ``f`` STFT frames (one per
``hop_length`` samples, frame ``j`` centred on sample ``j * hop_length``), ``s`` STFT bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import nn

# log(mel) floor: -11.5 nats, about -100 dB below full scale, far under any speech level.
LOG_FLOOR = 1e-5


@dataclass
class FrontEndConfig:
    """Analysis of a waveform into log-mel frames (magnitude mel spectrogram, natural log).

    The defaults (16 kHz, 25 ms windows every 10 ms, 80 bands) give 100 frames per second; an 8 kHz
    model (FSDD) would use ``sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=64``.
    """

    sample_rate: int = 16000  # every input is resampled to this rate first
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz: 100 frames per second
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None  # null: sample_rate / 2
    peak_level: float | None = 0.9  # scale every utterance to this peak (level normalisation); null: leave as is

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FrontEndConfig.{name} must be a positive integer; got {value!r}.")
        if self.win_length > self.n_fft:
            raise ValueError(f"FrontEndConfig.win_length ({self.win_length}) must be <= n_fft ({self.n_fft}).")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise ValueError(
                f"FrontEndConfig needs 0 <= f_min < f_max <= sample_rate/2 = {nyquist}; got f_min={self.f_min}, "
                f"f_max={self.f_max}."
            )
        if self.peak_level is not None and not 0 < self.peak_level <= 1:
            raise ValueError(f"FrontEndConfig.peak_level must be in (0, 1] or null; got {self.peak_level}.")

    @property
    def frame_rate(self) -> float:
        """STFT frames per second."""
        return self.sample_rate / self.hop_length


class FrontEnd(nn.Module):
    """Waveforms ``(b, t)`` at ``config.sample_rate`` → log-mel ``(b, m, f)`` with ``f = t // hop + 1``, and back.

    E.g. one second at 16 kHz, ``(1, 16000)`` → ``(1, 80, 101)``. Holds no trainable weights, only the
    mel filter bank and window as buffers (so it follows the tokenizer's ``.to(device)``).
    """

    def __init__(self, config: FrontEndConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.mel = T.MelSpectrogram(
            sample_rate=c.sample_rate,
            n_fft=c.n_fft,
            win_length=c.win_length,
            hop_length=c.hop_length,
            f_min=c.f_min,
            f_max=c.f_max,
            n_mels=c.n_mels,
            power=1.0,  # magnitudes: Griffin-Lim inverts them more cleanly than powers
            norm="slaney",
            mel_scale="slaney",
        )

    def normalize_level(self, waveform: torch.Tensor) -> torch.Tensor:
        """Scale each row of ``(b, t)`` to ``peak_level`` (unchanged when ``peak_level`` is null)."""
        if self.config.peak_level is None:
            return waveform
        peak = waveform.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
        return waveform * (self.config.peak_level / peak)

    def num_frames(self, num_samples: int) -> int:
        """STFT frames of a waveform of ``num_samples`` (centred frames, reflect padding)."""
        return num_samples // self.config.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(b, m, f)`` of level-normalised ``waveform`` ``(b, t)``; computed in float32."""
        x = self.normalize_level(waveform.float())
        if x.shape[-1] <= self.config.n_fft // 2:
            # reflect padding needs more samples than half a window; zeros are as good for so short an input
            x = nn.functional.pad(x, (0, self.config.n_fft // 2 + 1 - x.shape[-1]))
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.log(self.mel(x).clamp_min(LOG_FLOOR))

    def griffin_lim(self, log_mel: torch.Tensor, n_iter: int = 32, length: int | None = None) -> torch.Tensor:
        """Waveform ``(b, t)`` from log-mel ``(b, m, f)``: least-squares inverse mel scale, then Griffin-Lim.

        The always-available vocoder: phase is re-estimated, so even an exact mel gives an
        imperfect waveform (evaluate against this "vocoder ceiling"). Seeded phase start
        (``rand_init=False``), so the output is deterministic.
        """
        c = self.config
        n_stft = c.n_fft // 2 + 1
        natural = (log_mel.shape[-1] - 1) * c.hop_length  # the length of a waveform of f frames
        needed = c.n_fft // 2 // c.hop_length + 2  # frames whose waveform outlasts half a window
        if natural <= c.n_fft // 2:
            # Griffin-Lim re-analyses its waveform with reflect padding, which needs more than half a
            # window of samples: decode a few codes with silent frames after them, then cut those off.
            silence = torch.full_like(log_mel[..., :1], math.log(LOG_FLOOR))
            padded = torch.cat([log_mel, silence.expand(*log_mel.shape[:-1], needed - log_mel.shape[-1])], dim=-1)
            return self.griffin_lim(padded, n_iter)[..., : natural if length is None else length]
        magnitude_mel = log_mel.float().exp()
        fbank = self.mel.mel_scale.fb.to(magnitude_mel.device)  # (s, m)
        # The minimum-norm least-squares inverse (pseudo-inverse, any device), clamped to magnitudes >= 0;
        # non-negative least squares would fit a little better at many times the cost.
        spec = (torch.linalg.pinv(fbank.T) @ magnitude_mel).clamp_min(0.0)  # (s, m) @ (b, m, f) -> (b, s, f)
        assert spec.shape[-2] == n_stft, "inverse mel scale must give one row per STFT bin"
        window = torch.hann_window(c.win_length, device=spec.device)
        return AF.griffinlim(
            spec,
            window=window,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            power=1.0,
            n_iter=n_iter,
            momentum=0.99,
            length=length,
            rand_init=False,
        )


def mfcc_features(
    waveform: torch.Tensor, sample_rate: int, hop_length: int, win_length: int | None = None, n_mfcc: int = 13
) -> torch.Tensor:
    """MFCCs with deltas and delta-deltas, ``(b, 3 * n_mfcc, f)``: 39 dimensions for the usual 13.

    ``hop_length`` sets the frame rate (e.g. 320 samples at 16 kHz for 50 frames per second, to
    match a 50 Hz tokenizer); the window defaults to 25 ms. Frames are centred like the log-mel front end.
    """
    win_length = win_length or round(0.025 * sample_rate)
    n_fft = 1 << (max(win_length, hop_length) - 1).bit_length()
    transform = T.MFCC(
        sample_rate=sample_rate,
        n_mfcc=n_mfcc,
        log_mels=True,
        melkwargs={"n_fft": n_fft, "win_length": win_length, "hop_length": hop_length, "n_mels": 40},
    ).to(waveform.device)
    if waveform.shape[-1] <= n_fft // 2:  # reflect padding needs more than half a window, as in FrontEnd.forward
        waveform = nn.functional.pad(waveform, (0, n_fft // 2 + 1 - waveform.shape[-1]))
    mfcc = transform(waveform.float())  # (b, n_mfcc, f)
    delta = AF.compute_deltas(mfcc)
    return torch.cat([mfcc, delta, AF.compute_deltas(delta)], dim=-2)
