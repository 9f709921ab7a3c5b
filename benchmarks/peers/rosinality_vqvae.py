"""The two-level VQ-VAE-2 of rosinality/vq-vae-2-pytorch (file ``vqvae.py``), re-implemented for benchmarks.

Dimension legend: ``b`` batch, ``c`` channels, ``h``/``w`` grid size, ``d`` code dimension, ``K`` codes.

That repository is the most used PyTorch VQ-VAE-2. It is not a package and cannot be installed
here, so this is our own code written from its published description: the same layers in the same
order, the same defaults, the same EMA quantizer and the same training loss (``train_vqvae.py``:
MSE + 0.25 × latent loss), so that parameter count and work per step match. Its distributed
all-reduce is left out (one process). For 3-channel input with the defaults the model has
:data:`PARAMETERS` parameters; a test counts the original's layers independently.

Shapes, for ``(b, 3, 32, 32)`` input: bottom encoder (stride 4) → ``(b, 128, 8, 8)``, top encoder
(stride 2) → ``(b, 128, 4, 4)``, top codes ``(b, 4, 4)``, bottom codes ``(b, 8, 8)``, output
``(b, 3, 32, 32)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PARAMETERS = 1_388_867  # in_channel=3 and the other defaults (parameters only; the codebooks are buffers)
LATENT_LOSS_WEIGHT = 0.25  # train_vqvae.py's weight of the commitment ("latent") loss


class Quantize(nn.Module):
    """Nearest-neighbour VQ with an EMA codebook (sonnet's VectorQuantizerEMA), input channels last ``(..., d)``."""

    def __init__(self, dim: int, n_embed: int, decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, decay, eps
        embed = torch.randn(dim, n_embed)  # (d, K): codes are columns, as in the original
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(n_embed))
        self.register_buffer("embed_avg", embed.clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(..., d)`` → straight-through quantized ``(..., d)``, commitment MSE (scalar), codes ``(...)``."""
        flat = x.reshape(-1, self.dim)  # (n, d)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed + self.embed.pow(2).sum(0, keepdim=True)
        codes = dist.argmin(1)
        onehot = F.one_hot(codes, self.n_embed).to(flat.dtype)  # (n, K)
        codes = codes.view(*x.shape[:-1])
        quantized = F.embedding(codes, self.embed.t())
        if self.training:
            with torch.no_grad():
                self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(flat.t() @ onehot, alpha=1 - self.decay)
                n = self.cluster_size.sum()
                # Laplace smoothing keeps a never-used code from dividing by zero.
                smoothed = (self.cluster_size + self.eps) / (n + self.n_embed * self.eps) * n
                self.embed.copy_(self.embed_avg / smoothed.unsqueeze(0))
        diff = (quantized.detach() - x).pow(2).mean()
        return x + (quantized - x).detach(), diff, codes


class ResBlock(nn.Module):
    """ReLU, 3×3 conv to ``channel``, ReLU, 1×1 conv back, plus the input."""

    def __init__(self, in_channel: int, channel: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channel, channel, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel, in_channel, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def _encoder(in_channel: int, channel: int, n_res_block: int, n_res_channel: int, stride: int) -> nn.Sequential:
    """Stride 4: two 4×4 stride-2 convs then a 3×3; stride 2: one 4×4 stride-2 conv then a 3×3; residual blocks, ReLU."""
    half = channel // 2
    if stride == 4:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channel, half, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, channel, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channel, channel, 3, padding=1),
        ]
    elif stride == 2:
        layers = [nn.Conv2d(in_channel, half, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                  nn.Conv2d(half, channel, 3, padding=1)]  # fmt: skip
    else:
        raise ValueError(f"the encoder's stride must be 2 or 4; got {stride}.")
    layers += [ResBlock(channel, n_res_channel) for _ in range(n_res_block)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


def _decoder(
    in_channel: int, out_channel: int, channel: int, n_res_block: int, n_res_channel: int, stride: int
) -> nn.Sequential:
    """A 3×3 conv, residual blocks, ReLU, then 4×4 stride-2 transposed convs up by ``stride``."""
    layers: list[nn.Module] = [nn.Conv2d(in_channel, channel, 3, padding=1)]
    layers += [ResBlock(channel, n_res_channel) for _ in range(n_res_block)]
    layers.append(nn.ReLU(inplace=True))
    if stride == 4:
        layers += [
            nn.ConvTranspose2d(channel, channel // 2, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channel // 2, out_channel, 4, stride=2, padding=1),
        ]
    elif stride == 2:
        layers.append(nn.ConvTranspose2d(channel, out_channel, 4, stride=2, padding=1))
    else:
        raise ValueError(f"the decoder's stride must be 2 or 4; got {stride}.")
    return nn.Sequential(*layers)


class VQVAE(nn.Module):
    """Top and bottom code grids; the bottom quantizer sees the bottom features and the decoded top codes."""

    def __init__(
        self,
        in_channel: int = 3,
        channel: int = 128,
        n_res_block: int = 2,
        n_res_channel: int = 32,
        embed_dim: int = 64,
        n_embed: int = 512,
        decay: float = 0.99,
    ) -> None:
        super().__init__()
        blocks = (n_res_block, n_res_channel)
        self.enc_b = _encoder(in_channel, channel, *blocks, stride=4)
        self.enc_t = _encoder(channel, channel, *blocks, stride=2)
        self.quantize_conv_t = nn.Conv2d(channel, embed_dim, 1)
        self.quantize_t = Quantize(embed_dim, n_embed, decay)
        self.dec_t = _decoder(embed_dim, embed_dim, channel, *blocks, stride=2)
        self.quantize_conv_b = nn.Conv2d(embed_dim + channel, embed_dim, 1)
        self.quantize_b = Quantize(embed_dim, n_embed, decay)
        self.upsample_t = nn.ConvTranspose2d(embed_dim, embed_dim, 4, stride=2, padding=1)
        self.dec = _decoder(embed_dim + embed_dim, in_channel, channel, *blocks, stride=4)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(b, c, h, w)`` → quantized top ``(b, d, h/8, w/8)``, bottom ``(b, d, h/4, w/4)``, latent loss ``(1,)``, codes."""
        enc_b = self.enc_b(x)
        enc_t = self.enc_t(enc_b)
        quant_t, diff_t, codes_t = self.quantize_t(self.quantize_conv_t(enc_t).permute(0, 2, 3, 1))
        quant_t = quant_t.permute(0, 3, 1, 2)
        enc_b = torch.cat([self.dec_t(quant_t), enc_b], 1)
        quant_b, diff_b, codes_b = self.quantize_b(self.quantize_conv_b(enc_b).permute(0, 2, 3, 1))
        quant_b = quant_b.permute(0, 3, 1, 2)
        return quant_t, quant_b, (diff_t + diff_b).unsqueeze(0), codes_t, codes_b

    def decode(self, quant_t: torch.Tensor, quant_b: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([self.upsample_t(quant_t), quant_b], 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quant_t, quant_b, diff, _, _ = self.encode(x)
        return self.decode(quant_t, quant_b), diff


def training_loss(model: VQVAE, images: torch.Tensor) -> torch.Tensor:
    """The original's training objective on images in [-1, 1]: reconstruction MSE + 0.25 × latent loss."""
    out, latent_loss = model(images)
    return F.mse_loss(out, images) + LATENT_LOSS_WEIGHT * latent_loss.mean()
