"""SimVQ: a codebook that is a learned linear map of a frozen random basis.

Dimension legend: ``...`` leading shape, ``d`` vector dim, ``n`` flattened vectors, ``k`` codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tokenizers_vq.base import QuantizerOutput, SingleLevelQuantizer, check_codes, check_vectors, zero_loss
from tokenizers_vq.rotation import GRADIENTS, check_gradient
from tokenizers_vq.search import DEFAULT_CHUNK_BYTES, nearest_codes
from tokenizers_vq.usage import CodeUsage
from tokenizers_vq.vq import sequence_codes


@dataclass
class SimVQConfig:
    """Configuration of a :class:`SimVQ` quantizer."""

    dim: int
    codebook_size: int = 512
    beta: float = 0.25  # commitment weight (encoder → codes); the codebook term has weight 1
    gradient: str = "straight_through"  # or "rotation" (the rotation trick); see VQConfig.gradient
    seed: int = 0  # seeds the frozen basis and the map's start
    chunk_bytes: int = DEFAULT_CHUNK_BYTES  # working buffer of the distance search

    def __post_init__(self) -> None:
        if self.dim <= 0 or self.codebook_size <= 0:
            raise ValueError(f"SimVQConfig needs dim > 0 and codebook_size > 0; got {self.dim}, {self.codebook_size}")
        if self.beta < 0:
            raise ValueError(f"SimVQConfig.beta must be >= 0; got {self.beta}")
        check_gradient(self.gradient, "SimVQConfig.gradient")

    def for_residual_level(self, level: int) -> SimVQConfig:
        return replace(self, seed=self.seed + level)

    def build(self) -> SimVQ:
        return SimVQ(self)


class SimVQ(SingleLevelQuantizer):
    """SimVQ (Zhu et al. 2024, "Addressing Representation Collapse in Vector Quantized Models with One Linear Layer").

    The codebook is ``C = B Wᵀ``: ``B`` ``(k, d)`` a frozen Gaussian basis, ``W`` ``(d, d)`` learned by the
    codebook term ``‖sg(z) − q‖²``. A gradient step on ``W`` moves every code at once, the unused ones
    too, so codes do not die the way a table's rows do when no input picks them; no EMA, k-means or
    restarts. Nearest-code search and losses as in :class:`~tokenizers_vq.VectorQuantizer`
    (float32 under autocast). Shape contract: ``x`` ``(..., d)`` → ``quantized`` ``(..., d)``, codes
    ``(...)``; e.g. ``(8, 7, 7, 64)`` with ``codebook_size=512`` → codes ``(8, 7, 7)`` in ``[0, 512)``.

    Args:
        config: a :class:`SimVQConfig`, or leave it out and pass its fields as keywords.
    """

    def __init__(self, config: SimVQConfig | None = None, **kwargs) -> None:
        super().__init__(SimVQConfig, config, kwargs)
        config = self.config
        gen = torch.Generator().manual_seed(config.seed)
        # Rows of about unit norm; saved with the weights, so a resumed or loaded model has the same basis.
        self.register_buffer("basis", torch.randn(config.codebook_size, config.dim, generator=gen) * config.dim**-0.5)
        self.transform = nn.Linear(config.dim, config.dim, bias=False)  # W
        with torch.no_grad():  # nn.Linear's own U(±1/√d) start, drawn from the seed: the codebook is the seed's
            bound = config.dim**-0.5
            self.transform.weight.copy_(torch.rand(config.dim, config.dim, generator=gen) * (2 * bound) - bound)
        self.tracker = CodeUsage(config.codebook_size)
        self._workspace: dict[str, torch.Tensor] = {}

    def codebook(self) -> torch.Tensor:
        """The implicit codebook ``B Wᵀ`` ``(k, d)`` in float32, differentiable in ``W``."""
        return self.basis.float() @ self.transform.weight.float().T

    def _search(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        codebook = codebook.detach()
        return nearest_codes(
            z.detach(), codebook, (codebook * codebook).sum(1), self.config.chunk_bytes, self._workspace
        )

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = x.reshape(-1, self.dim).float()  # (n, d)
            codebook = self.codebook()
            codes = self._search(z, codebook)
            q = F.embedding(codes, codebook)  # (n, d), carries the gradient to W
            if z.shape[0]:
                codebook_loss = F.mse_loss(q, z.detach())
                # Keep the commitment term with the rotation trick (vector-quantize-pytorch #177): its
                # gradient only turns and rescales what reaches q, so nothing else holds the encoder to its
                # codes, and without β‖z − sg(q)‖² the encoder drifts off while the codebook term chases it.
                commitment = self.config.beta * F.mse_loss(z, q.detach())
            else:
                commitment = codebook_loss = zero_loss(z)
            quantized = GRADIENTS[self.config.gradient](z, q).reshape(x.shape).to(x.dtype)
            health = self.tracker.observe(codes)
        return QuantizerOutput(quantized, codes.reshape(x.shape[:-1]), commitment, codebook_loss, **vars(health))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._search(x.reshape(-1, self.dim).float(), self.codebook()).reshape(x.shape[:-1])

    @torch.no_grad()
    def encode_sequence(self, x: torch.Tensor, duration_penalty: float = 0.0) -> torch.Tensor:
        """Duration-penalised codes ``(b, n)`` of sequences ``(b, n, d)``, as :meth:`VectorQuantizer.encode_sequence`."""
        check_vectors(x, self.dim)
        if x.ndim != 3:
            raise ValueError(f"encode_sequence takes sequences (b, n, {self.dim}); got shape {tuple(x.shape)}.")
        if duration_penalty == 0:
            return self.encode(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return sequence_codes(x.float(), self.codebook(), duration_penalty)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.codebook_size)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return F.embedding(codes.long(), self.codebook())
