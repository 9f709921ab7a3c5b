"""1-D convolutional encoder and decoder of the speech tokenizer.

Dimension legend: ``b`` batch, ``m`` mel bins, ``f`` mel frames, ``n`` code frames (``f / downsample``),
``k`` hidden channels, ``d`` code dimension, ``s`` speaker-embedding dimension.
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
