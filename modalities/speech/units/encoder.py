"""The units encoder: a small HuBERT-style Transformer over log-mel, trained by masked prediction of cluster targets.

HuBERT (Hsu et al. 2021): frames of the input are masked in spans, a Transformer sees the rest, and
a cross-entropy on the masked frames teaches it to predict each frame's cluster (k-means on MFCC
first, then on its own middle layer). No labels anywhere: the targets come from clustering.

Dimension legend: ``b`` batch, ``m`` mel bins, ``f`` mel frames, ``n`` unit frames (``ceil(f / 2)``),
``d`` model width, ``c`` target clusters, ``l`` Transformer layers.

::

    log-mel (b, m, f) ─per-utterance mean/variance─▶ ─conv, stride 2─▶ (b, n, d) ─mask spans─▶
      ─conv position─▶ Transformer (l layers) ─▶ hidden states (l + 1) × (b, n, d) ─head─▶ logits (b, n, c)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


def utterance_norm(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Each utterance's log-mel ``(b, m, f)`` with its own per-bin mean and deviation removed (CMVN).

    ``lengths`` ``(b,)``: the real frames of each row of a padded batch (statistics over those only);
    None: every frame counts. Takes much of the speaker and the channel out of what the encoder sees.
    """
    if lengths is None:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True, unbiased=False)
    else:
        real = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None]).to(x.dtype)[:, None]  # (b, 1, f)
        count = real.sum(-1, keepdim=True).clamp_min(1)
        mean = (x * real).sum(-1, keepdim=True) / count
        std = (((x - mean) * real).square().sum(-1, keepdim=True) / count).sqrt()
    return (x - mean) / std.clamp_min(0.1)  # 0.1: a near-constant bin stays small instead of blowing up


def span_mask(
    lengths: torch.Tensor, num_frames: int, prob: float, span: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """HuBERT/wav2vec 2.0 span masking: ``(b, n)`` bool, True where a frame is masked.

    Each real frame starts a masked span of ``span`` frames with probability ``prob`` (spans may
    overlap and are cut at the utterance's end), and every utterance gets at least one span, so each
    contributes to the loss. E.g. ``prob=0.08, span=10`` masks about 55% of the frames.
    ``lengths`` ``(b,)``: real frames per row; padding is never masked.
    """
    b = lengths.shape[0]
    real = torch.arange(num_frames)[None] < lengths.cpu()[:, None]  # (b, n)
    starts = (torch.rand(b, num_frames, generator=generator) < prob) & real
    first = (torch.rand(b, generator=generator) * (lengths.cpu() - span + 1).clamp_min(1)).long()  # (b,)
    starts[torch.arange(b), first] = True
    # A frame is masked when a span started within the last `span` frames: a running window over the starts.
    window = F.conv1d(starts.float()[:, None], torch.ones(1, 1, span), padding=span - 1)[:, 0, :num_frames]
    return (window > 0) & real


@dataclass
class UnitsEncoderOutput:
    """What :meth:`UnitsEncoder.forward` returns.

    - ``hidden``: the input projection's vectors then each Transformer layer's, ``l + 1`` tensors ``(b, n, d)``.
    - ``logits``: ``(b, n, c)`` scores of the target clusters from the last layer (None without a head).
    """

    hidden: list[torch.Tensor]
    logits: torch.Tensor | None


class UnitsEncoder(nn.Module):
    """Log-mel ``(b, m, f)`` → hidden states ``(b, n, d)`` at half the mel rate, and target-cluster logits.

    Shape contract: 80 mel bins, 101 frames (1 s at 100 frames/s) → ``n = 51`` vectors per layer
    (frame ``i`` centred on mel frames ``2i`` and ``2i + 1``), ``hidden`` 5 tensors ``(1, 51, 256)``
    for 4 layers of width 256, ``logits`` ``(1, 51, c)``.

    Args:
        n_mels: mel bins of the input.
        dim: Transformer width ``d``.
        num_layers: Transformer layers ``l``.
        num_heads: attention heads.
        num_targets: clusters the head scores (``c``); 0: no head.
        dropout: dropout inside the Transformer.
    """

    def __init__(
        self, n_mels: int, dim: int, num_layers: int, num_heads: int, num_targets: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        # Two convolutions: one at the mel rate, one of stride 2 (kernel 4: mel frames 2i-1 .. 2i+2).
        self.subsample = nn.Sequential(
            nn.Conv1d(n_mels, dim, 3, padding=1), nn.GELU(), nn.Conv1d(dim, dim, 4, stride=2, padding=1), nn.GELU()
        )
        self.input_norm = nn.LayerNorm(dim)
        self.mask_embedding = nn.Parameter(torch.randn(dim) * 0.1)  # what a masked frame looks like (learned)
        # Relative position by a wide grouped convolution, as wav2vec 2.0 and HuBERT do (no length limit).
        self.position = nn.Conv1d(dim, dim, 31, padding=15, groups=16)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, num_heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(num_layers)
        )  # fmt: skip
        self.final_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_targets) if num_targets else None

    @staticmethod
    def num_frames(mel_frames: int | torch.Tensor) -> int | torch.Tensor:
        """Unit frames of ``mel_frames`` mel frames (a count, or a tensor of counts): ``ceil(f / 2)``."""
        return (mel_frames + 1) // 2

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        num_layers: int | None = None,
    ) -> UnitsEncoderOutput:
        """Hidden states of utterance-normalised log-mel ``x`` ``(b, m, f)``.

        ``lengths`` ``(b,)``: real unit frames per row (None: all); padded frames are ignored by
        attention. ``mask`` ``(b, n)`` bool: frames replaced by the mask embedding (training).
        ``num_layers``: stop after that many layers (no logits then), to read a middle layer cheaply.
        """
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1), mode="replicate")  # an even frame count: n = ceil(f / 2)
        h = self.input_norm(rearrange(self.subsample(x), "b d n -> b n d"))
        if mask is not None:
            h = torch.where(mask[..., None], self.mask_embedding.to(h.dtype), h)
        h = h + F.gelu(rearrange(self.position(rearrange(h, "b n d -> b d n")), "b d n -> b n d"))
        pad = None
        if lengths is not None:
            pad = torch.arange(h.shape[1], device=h.device)[None] >= lengths.to(h.device)[:, None]  # (b, n)
        hidden = [h]
        stop = len(self.layers) if num_layers is None else num_layers
        for layer in self.layers[:stop]:
            h = layer(h, src_key_padding_mask=pad)
            hidden.append(h)
        if stop < len(self.layers) or self.head is None:
            return UnitsEncoderOutput(hidden, None)
        return UnitsEncoderOutput(hidden, self.head(self.final_norm(h)))


class CodeLayer(nn.Module):
    """The vectors the codebook quantizes: log-mel ``(b, m, f)`` → layer ``layer`` of the Transformer, standardised
    per dimension, ``(b, d, n)`` (channels first, as the speech tokenizer's encoder gives them).

    E.g. ``(1, 80, 101)`` → ``(1, 256, 51)``. The standardisation is fitted with the codebook
    (:meth:`~modalities.speech.units.UnitsTokenizer.set_codebook`); until then it is the identity.
    """

    def __init__(self, transformer: UnitsEncoder, layer: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.layer = layer
        d = transformer.input_norm.normalized_shape[0]
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: standardised log-mel; ``lengths`` ``(b,)``: real mel frames of a padded batch (None: all real)."""
        units = None if lengths is None else UnitsEncoder.num_frames(lengths)
        h = self.transformer(utterance_norm(x, lengths), units, num_layers=self.layer).hidden[self.layer]
        return rearrange((h - self.mean) / self.std, "b n d -> b d n")
