"""Residual vector quantization: each level quantizes what the levels before it left over.

Dimension legend: ``...`` leading shape, ``d`` vector dim, ``l`` levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tokenizers_vq.base import Quantizer, QuantizerOutput, check_codes, check_vectors
from tokenizers_vq.fsq import FiniteScalarQuantizer, FSQConfig
from tokenizers_vq.lfq import LFQConfig, LookupFreeQuantizer
from tokenizers_vq.rotation import GRADIENTS
from tokenizers_vq.simvq import SimVQConfig
from tokenizers_vq.vq import VQConfig

#: The configs of the quantizers a residual stack is made of.
LevelConfig = VQConfig | FSQConfig | LFQConfig | SimVQConfig


@dataclass
class RVQConfig:
    """Configuration of a :class:`ResidualVectorQuantizer`: one level config shared by all levels.

    Any single-level quantizer stacks: VQ (SoundStream's residual VQ), FSQ (residual FSQ: each level
    rounds a finer grid), LFQ and SimVQ; each level gets ``level.for_residual_level(i)`` (VQ and SimVQ
    their own seed, FSQ and LFQ a smaller range).
    """

    level: LevelConfig = field(default_factory=lambda: VQConfig(dim=64))
    num_levels: int = 4
    # Quantizer dropout (SoundStream): with this probability a training batch uses only the first
    # n ~ U{1..l} levels, so one model serves every bitrate.
    dropout_prob: float = 0.0

    def __post_init__(self) -> None:
        if self.num_levels < 1:
            raise ValueError(f"RVQConfig.num_levels must be >= 1; got {self.num_levels}")
        if not 0.0 <= self.dropout_prob <= 1.0:
            raise ValueError(f"RVQConfig.dropout_prob must be in [0, 1]; got {self.dropout_prob}")
        if not isinstance(self.level, LevelConfig):
            raise TypeError(f"RVQConfig.level must be one of {LevelConfig}; got {type(self.level).__name__}")

    @property
    def codebook_size(self) -> int:
        return self.level.codebook_size

    def build(self) -> ResidualVectorQuantizer:
        return ResidualVectorQuantizer(self)


class ResidualVectorQuantizer(Quantizer):
    """Residual VQ (SoundStream, Zeghidour et al. 2021; EnCodec): ``l`` codebooks applied in turn.

    Shape contract: ``x`` ``(..., d)`` → ``quantized`` ``(..., d)``, ``codes`` ``(..., n)`` with
    ``n = l`` levels (fewer under quantizer dropout or ``num_levels=``); e.g. ``(4, 75, 128)`` with
    ``l = 8`` → codes ``(4, 75, 8)``.

    Level ``i`` sees ``r_i = r_{i-1} − sg(q_{i-1})``. Subtracting the *detached* quantized vector
    (not the straight-through one) keeps ``d r_i / d x = I``, so every level's commitment loss
    reaches the encoder (the EnCodec #25 bug made later levels' inputs constant).
    """

    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        self.config = config
        self.dim = config.level.dim
        self.levels = nn.ModuleList(config.level.for_residual_level(i).build() for i in range(config.num_levels))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    def _active_levels(self, num_levels: int | None) -> int:
        if num_levels is not None:
            if not 1 <= num_levels <= self.num_levels:
                raise ValueError(f"num_levels must be in [1, {self.num_levels}]; got {num_levels}")
            return num_levels
        p = self.config.dropout_prob
        if not self.training or p == 0.0:
            return self.num_levels
        # Seeded by (seed, step) so all ranks and resumed runs drop the same levels.
        seed = getattr(self.config.level, "seed", 0)  # FSQ and LFQ draw nothing, so have no seed of their own
        gen = torch.Generator().manual_seed(seed * 1_000_003 + int(self.steps))
        if float(torch.rand((), generator=gen)) >= p:
            return self.num_levels
        return int(torch.randint(1, self.num_levels + 1, (), generator=gen))

    def forward(self, x: torch.Tensor, num_levels: int | None = None) -> QuantizerOutput:
        check_vectors(x, self.dim)
        n = self._active_levels(num_levels)
        residual = x
        total = torch.zeros_like(x)
        outs: list[QuantizerOutput] = []
        for level in self.levels[:n]:
            out = level(residual)
            residual = residual - out.quantized.detach()  # never subtract the straight-through tensor (EnCodec #25)
            total = total + out.quantized
            outs.append(out)
        if self.training:
            self.steps.add_(1)
        if isinstance(self.levels[0], FiniteScalarQuantizer | LookupFreeQuantizer):
            # Their projections learn only through their outputs: the sum keeps every level's gradient path.
            quantized = total
        else:
            # Codebook levels learn by their own loss terms; one estimator over the sum gives the encoder
            # the straight-through identity (not l × identity) or one rotation onto the whole reconstruction.
            quantized = GRADIENTS[getattr(self.config.level, "gradient", "straight_through")](x, total.detach())
        return QuantizerOutput(
            quantized=quantized,
            codes=torch.stack([o.codes for o in outs], dim=-1),
            commitment_loss=torch.stack([o.commitment_loss for o in outs]).sum(),
            codebook_loss=torch.stack([o.codebook_loss for o in outs]).sum(),
            entropy_loss=torch.stack([o.entropy_loss.to(x.device) for o in outs]).sum(),
            perplexity=torch.stack([o.perplexity for o in outs]),
            usage=torch.stack([o.usage for o in outs]),
            dead_codes=torch.stack([o.dead_codes for o in outs]).sum(),
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        check_vectors(x, self.dim)
        return self._residual_codes(x, num_levels, lambda level, residual: level.encode(residual))

    @torch.no_grad()
    def encode_sequence(
        self, x: torch.Tensor, duration_penalty: float = 0.0, num_levels: int | None = None
    ) -> torch.Tensor:
        """Codes ``(b, n, levels)`` of sequences ``(b, n, dim)``: the first level duration-penalised
        (:meth:`VectorQuantizer.encode_sequence`), each further level the nearest code to what is left."""
        check_vectors(x, self.dim)
        if not hasattr(self.levels[0], "encode_sequence"):
            raise ValueError(
                f"duration-penalised codes need a nearest-code search (VQ or SimVQ levels); this stack's levels "
                f"are {type(self.levels[0]).__name__}. Use duration_penalty=0."
            )
        return self._residual_codes(
            x, num_levels, lambda level, residual: level.encode_sequence(residual, duration_penalty)
        )

    def _residual_codes(self, x: torch.Tensor, num_levels: int | None, first_level) -> torch.Tensor:
        """Codes of the first ``num_levels`` levels: ``first_level(level, x)`` picks level 0's, each
        further level takes the nearest code to what the earlier levels left."""
        n = num_levels if num_levels is not None else self.num_levels
        self._active_levels(n)
        residual = x
        codes = []
        for i, level in enumerate(self.levels[:n]):
            c = first_level(level, residual) if i == 0 else level.encode(residual)
            residual = residual - level.decode(c).to(residual.dtype)
            codes.append(c)
        return torch.stack(codes, dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.codebook_size)
        if codes.ndim == 0 or not 1 <= codes.shape[-1] <= self.num_levels:
            raise ValueError(
                f"residual codes must have shape (..., n) with 1 <= n <= {self.num_levels} levels last; "
                f"got shape {tuple(codes.shape)}"
            )
        return sum(level.decode(codes[..., i]) for i, level in enumerate(self.levels[: codes.shape[-1]]))
