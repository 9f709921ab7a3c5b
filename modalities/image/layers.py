"""Convolutional encoder and decoder blocks of VQ-VAE (van den Oord et al. 2017, section 4.1).

Dimension legend: ``b`` batch, ``c`` channels, ``h``/``w`` height and width; every module here maps
``(b, c_in, h, w)`` to ``(b, c_out, h', w')``.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: ``"relu"`` (the papers'), ``"silu"`` or ``"gelu"``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}; got {name!r}.")
    return ACTIVATIONS[name]()


class ResidualBlock(nn.Module):
    """``x + conv1x1(act(conv3x3(act(x))))``, the paper's residual block (act = ReLU there); keeps the shape."""

    def __init__(self, channels: int, res_channels: int, act: str = "relu") -> None:
        super().__init__()
        self.body = nn.Sequential(
            activation(act),
            nn.Conv2d(channels, res_channels, kernel_size=3, padding=1),
            activation(act),
            nn.Conv2d(res_channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualStack(nn.Sequential):
    """``num_blocks`` residual blocks followed by an activation (the blocks leave their sum unrectified)."""

    def __init__(self, channels: int, res_channels: int, num_blocks: int, act: str = "relu") -> None:
        super().__init__(*(ResidualBlock(channels, res_channels, act) for _ in range(num_blocks)), activation(act))


class Encoder(nn.Module):
    """Strided 4×4 convolutions (stride 2, padding 1), a 3×3 convolution, then residual blocks.

    Halves height and width ``num_downsamples`` times: ``(b, in_channels, h, w)`` →
    ``(b, hidden_channels, h / 2^n, w / 2^n)``, e.g. ``(8, 3, 32, 32)`` → ``(8, 128, 8, 8)`` for n = 2.
    The first strided convolutions are half as wide as the last one, as in the paper's code.
    ``act`` names every activation (:data:`ACTIVATIONS`; the paper's is ReLU).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        res_channels: int,
        num_res_blocks: int,
        num_downsamples: int,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if num_downsamples < 1:
            raise ValueError(f"Encoder needs num_downsamples >= 1; got {num_downsamples}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(num_downsamples):
            out = hidden_channels if i == num_downsamples - 1 else hidden_channels // 2
            layers += [nn.Conv2d(channels, out, kernel_size=4, stride=2, padding=1), activation(act)]
            channels = out
        layers.append(nn.Conv2d(hidden_channels, hidden_channels, kernel_size=3, padding=1))
        layers.append(ResidualStack(hidden_channels, res_channels, num_res_blocks, act))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """The encoder mirrored: a 3×3 convolution, residual blocks, then transposed 4×4 convolutions.

    Doubles height and width ``num_upsamples`` times: ``(b, in_channels, h, w)`` →
    ``(b, out_channels, h * 2^n, w * 2^n)``, e.g. ``(8, 64, 8, 8)`` → ``(8, 3, 32, 32)`` for n = 2.
    The output is linear (no activation): images live in [-1, 1] and the loss is a plain MSE.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        res_channels: int,
        num_res_blocks: int,
        num_upsamples: int,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if num_upsamples < 1:
            raise ValueError(f"Decoder needs num_upsamples >= 1; got {num_upsamples}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1),
            ResidualStack(hidden_channels, res_channels, num_res_blocks, act),
        ]
        channels = hidden_channels
        for i in range(num_upsamples):
            last = i == num_upsamples - 1
            out = out_channels if last else hidden_channels // 2
            layers.append(nn.ConvTranspose2d(channels, out, kernel_size=4, stride=2, padding=1))
            if not last:
                layers.append(activation(act))
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def upsampler(channels: int, num_upsamples: int, act: str = "relu") -> nn.Module:
    """Transposed 4×4 convolutions that bring an upper level's codes to the bottom grid (VQ-VAE-2).

    ``(b, channels, h, w)`` → ``(b, channels, h * 2^n, w * 2^n)``; ``n = 0`` is the identity.
    """
    layers: list[nn.Module] = []
    for i in range(num_upsamples):
        if i:
            layers.append(activation(act))
        layers.append(nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1))
    return nn.Sequential(*layers)
