"""The quantizer interface every quantizer in the toolkit implements, its output, and an identity quantizer.

Dimension legend: ``...`` any leading shape (batch, grid), ``d`` vector dimension, ``l`` levels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """What a quantizer's ``forward`` returns.

    Shapes for an input of shape ``(b, n, d)`` (for example ``(8, 1024, 64)``):

    - ``quantized``: ``(b, n, d)``, the snapped vectors with a straight-through gradient
      (``d quantized / d input`` is the identity).
    - ``codes``: ``(b, n)`` int64 for one level, ``(b, n, l)`` for ``l`` residual levels.
    - ``commitment_loss``: scalar, already multiplied by β (VQ-VAE's ``β‖z_e − sg(z_q)‖²``).
    - ``codebook_loss``: scalar ``‖sg(z_e) − z_q‖²``; zero when the codebook learns by EMA.
    - ``perplexity``: ``exp`` of the entropy of this batch's code histogram (``(l,)`` per level for
      residual quantizers, a scalar otherwise).
    - ``usage``: fraction of the codebook used in this batch (same shape as ``perplexity``).
    - ``dead_codes``: number of codes whose moving-average usage is below the dead-code threshold.
    - ``entropy_loss``: scalar, LFQ's weighted entropy penalty (per-sample entropy minus batch
      entropy); zero for the quantizers that have none.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    dead_codes: torch.Tensor
    entropy_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(()))

    @property
    def loss(self) -> torch.Tensor:
        """The quantizer's share of the training loss: commitment, codebook and entropy terms."""
        return self.commitment_loss + self.codebook_loss + self.entropy_loss


def check_vectors(x: torch.Tensor, dim: int, name: str = "input") -> None:
    """Raise ``TypeError``/``ValueError`` unless ``x`` is a finite float tensor of shape ``(..., dim)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., {dim}); got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor (float32, float16 or bfloat16); got {x.dtype}. "
            "Convert it with .float() first."
        )
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., {dim}) with vectors in the last dimension (channels last); "
            f"got shape {tuple(x.shape)}. Move the channel axis last (e.g. einops.rearrange(x, 'b d h w -> b h w d'))."
        )
    # One reduction first: a finite sum means every entry is finite (the full check runs only if
    # the sum is not finite, which also catches a finite input whose sum overflows).
    if x.numel() and not bool(torch.isfinite(x.sum(dtype=torch.float32))) and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite values; check the encoder's output or the learning rate."
        )


def check_codes(codes: torch.Tensor, codebook_size: int, name: str = "codes") -> None:
    """Raise ``TypeError``/``ValueError`` unless ``codes`` is an integer tensor with values in ``[0, K)``."""
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer codes; got {type(codes).__name__}.")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor (int64 or int32); got {codes.dtype}.")
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= codebook_size:
            raise ValueError(
                f"{name} must lie in [0, {codebook_size - 1}] for a codebook of {codebook_size} entries; "
                f"got values from {lo} to {hi}. Were they made by a tokenizer with another codebook size?"
            )


class Quantizer(nn.Module, ABC):
    """Interface of every quantizer: channels-last vectors in, codes and snapped vectors out."""

    dim: int

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of entries per codebook (``K``)."""

    @property
    @abstractmethod
    def num_levels(self) -> int:
        """Number of code levels per vector (1, or the depth of a residual quantizer)."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        """Quantize ``x`` of shape ``(..., d)``; update the codebook when training."""

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes for ``x`` of shape ``(..., d)``: ``(...)`` (one level) or ``(..., l)``; never trains."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Vectors ``(..., d)`` for codes made by ``encode``."""


class SingleLevelQuantizer(Quantizer):
    """A one-level quantizer built from a dataclass ``config`` that has a ``codebook_size``."""

    config: Any

    def __init__(self, config_class: type, config: Any, fields: dict[str, Any]) -> None:
        """Keep ``config``, or ``config_class(**fields)`` when it is None (one or the other, not both)."""
        super().__init__()
        if config is not None and fields:
            raise TypeError(f"pass either a {config_class.__name__} or keyword fields, not both")
        self.config = config_class(**fields) if config is None else config
        self.dim = self.config.dim

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_levels(self) -> int:
        return 1

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def zero_loss(z: torch.Tensor) -> torch.Tensor:
    """A float32 zero loss that stays in ``z``'s graph, so an empty batch's loss still backpropagates."""
    return z.new_zeros((), dtype=torch.float32) + 0.0 * z.sum()


class IdentityQuantizer(Quantizer):
    """Passes vectors through unchanged; for tests of models around a quantizer.

    Codes are all zeros of shape ``(...)``, and ``decode`` cannot invert them, so it raises.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    @property
    def codebook_size(self) -> int:
        return 1

    @property
    def num_levels(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        zero = x.new_zeros((), dtype=torch.float32)
        return QuantizerOutput(
            quantized=x,
            codes=self.encode(x),
            commitment_loss=zero,
            codebook_loss=zero,
            perplexity=zero + 1.0,
            usage=zero + 1.0,
            dead_codes=torch.zeros((), dtype=torch.int64, device=x.device),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_vectors(x, self.dim)
        return torch.zeros(x.shape[:-1], dtype=torch.int64, device=x.device)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("IdentityQuantizer keeps no codebook, so its codes cannot be decoded.")
