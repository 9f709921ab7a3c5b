"""1-D convolutional encoder and decoder of the speech tokenizer.

Dimension legend: ``b`` batch, ``m`` mel bins, ``f`` mel frames, ``n`` code frames (``f / downsample``),
``k`` hidden channels, ``d`` code dimension, ``s`` speaker-embedding dimension, ``r`` reference-clip frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResBlock1d(nn.Module):
    """``x + W₂ σ(W₁ σ(x + c))`` with a dilated centred convolution ``W₁`` and a 1×1 ``W₂``.

    ``c`` is an optional conditioning vector ``(b, k)`` (the speaker), added at every frame.
    Shapes: ``(b, k, f)`` → ``(b, k, f)``.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2))
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = x if cond is None else x + cond[:, :, None]
        return x + self.out(F.gelu(self.conv(F.gelu(h))))


def _res_stack(channels: int, kernel_size: int, num_blocks: int) -> nn.ModuleList:
    # Dilations 1, 2, 4, ... widen the receptive field to about ±(2^num_blocks) frames per stack.
    return nn.ModuleList(ResBlock1d(channels, kernel_size, 2**i) for i in range(num_blocks))


def _stride_2_convs(conv: type[nn.Conv1d | nn.ConvTranspose1d], channels: int, downsample: int) -> nn.ModuleList:
    # One stride-2 convolution (or transposed one, to upsample) per factor 2 of the power of two ``downsample``.
    return nn.ModuleList(conv(channels, channels, 4, stride=2, padding=1) for _ in range(downsample.bit_length() - 1))


def frame_mask(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``(b, 1, r)``: 1 for each row's first ``lengths[i]`` frames of ``x`` ``(b, c, r)``, 0 after (None: all 1)."""
    if lengths is None:
        return x.new_ones(x.shape[0], 1, x.shape[-1])
    return (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None].to(x.device))[:, None].to(x.dtype)


def masked_mean_std(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over time of ``(b, c, r)`` where ``mask`` ``(b, 1, r)`` is 1 → ``(b, 2c)``."""
    count = mask.sum(-1).clamp_min(1.0)  # (b, 1)
    mean = (h * mask).sum(-1) / count  # (b, c)
    var = (((h - mean[:, :, None]) * mask) ** 2).sum(-1) / count
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=-1)


class SpeakerEncoder(nn.Module):
    """Reference log-mel ``(b, m, r)`` → speaker vector ``(b, s)``: a d-vector (Variani et al. 2014) learned with
    the decoder.

    A convolution and dilated residual blocks over the clip, then each channel's mean and deviation over
    the clip's frames (``lengths``: frames of each row that are real; None: all), beside the same statistics
    of the log-mel itself (its average spectrum and spread, the voice's envelope that an utterance-normalised
    encoder takes out of the codes), projected to ``s``. Pooling over time makes the vector independent of
    what was said and of the clip's length: ``(2, 64, 37)`` → ``(2, 64)`` for 64 bins and ``s = 64``.
    """

    def __init__(self, n_mels: int, channels: int, speaker_dim: int, kernel_size: int, num_blocks: int = 2) -> None:
        super().__init__()
        self.input = nn.Conv1d(n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = _res_stack(channels, kernel_size, num_blocks)
        self.output = nn.Linear(2 * (channels + n_mels), speaker_dim)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = frame_mask(mel, lengths)  # (b, 1, r)
        # Padding is zeroed after every layer, so a row's vector is the same however much padding follows it.
        h = self.input(mel * mask) * mask
        for block in self.blocks:
            h = block(h) * mask
        pooled = torch.cat([masked_mean_std(F.gelu(h), mask), masked_mean_std(mel, mask)], dim=-1)
        return self.output(pooled)


class Encoder1d(nn.Module):
    """Log-mel ``(b, m, f)`` → pre-quantization vectors ``(b, d, f / downsample)``.

    A stack of dilated residual blocks at the mel rate, one stride-2 convolution per factor 2 of
    ``downsample``, a second stack at the code rate, and a 1×1 projection to the code dimension.
    """

    def __init__(self, n_mels: int, channels: int, code_dim: int, kernel_size: int, num_blocks: int, downsample: int):
        super().__init__()
        self.input = nn.Conv1d(n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.before = _res_stack(channels, kernel_size, num_blocks)
        self.down = _stride_2_convs(nn.Conv1d, channels, downsample)
        self.after = _res_stack(channels, kernel_size, num_blocks)
        self.output = nn.Conv1d(channels, code_dim, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.input(mel)
        for block in self.before:
            h = block(h)
        for down in self.down:
            h = down(F.gelu(h))
        for block in self.after:
            h = block(h)
        return self.output(F.gelu(h))


class Decoder1d(nn.Module):
    """Quantized vectors ``(b, d, n)`` and an optional speaker vector ``(b, s)`` → log-mel ``(b, m, n * downsample)``.

    The speaker enters every residual block as a per-channel bias, so the codes need not carry it.
    """

    def __init__(
        self,
        code_dim: int,
        n_mels: int,
        channels: int,
        kernel_size: int,
        num_blocks: int,
        downsample: int,
        speaker_dim: int | None,
    ):
        super().__init__()
        self.input = nn.Conv1d(code_dim, channels, kernel_size, padding=kernel_size // 2)
        self.before = _res_stack(channels, kernel_size, num_blocks)
        self.up = _stride_2_convs(nn.ConvTranspose1d, channels, downsample)
        self.after = _res_stack(channels, kernel_size, num_blocks)
        self.output = nn.Conv1d(channels, n_mels, kernel_size, padding=kernel_size // 2)
        self.speaker = nn.Linear(speaker_dim, channels) if speaker_dim else None

    def forward(self, q: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        if (speaker is None) != (self.speaker is None):
            raise ValueError("this decoder was built " + ("with" if self.speaker else "without") + " speakers.")
        cond = self.speaker(speaker) if self.speaker is not None else None  # (b, k)
        h = self.input(q)
        for block in self.before:
            h = block(h, cond)
        for up in self.up:
            h = up(F.gelu(h))
        for block in self.after:
            h = block(h, cond)
        return self.output(F.gelu(h))
