"""Lookup-free quantization: one sign bit per dimension, kept in use by an entropy penalty.

Dimension legend: ``...`` leading shape, ``d`` input dim, ``b`` bits (quantized dims), ``n`` flattened
vectors, ``k = 2^b`` codes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tokenizers_vq import distributed
from tokenizers_vq.base import QuantizerOutput, SingleLevelQuantizer, check_codes, check_vectors, zero_loss
from tokenizers_vq.usage import CodeUsage

#: Largest codebook whose batch entropy is computed over every code (2^16 probabilities per vector).
MAX_BITS = 16
#: Rows per piece of the batch-entropy sum: a batch of several pieces has each piece's (rows, k)
#: probabilities recomputed in the backward pass instead of kept, so memory stays at one piece
#: whatever the batch; a batch of one piece keeps them (16 MiB at most) and skips the recomputation.
ENTROPY_CHUNK_ELEMENTS = 2**22
GEOMETRIES = ("cube", "sphere")


def check_lfq_size(codebook_size: int, owner: str) -> None:
    """Raise ``ValueError`` unless ``codebook_size`` is ``2^bits`` with ``1 <= bits <= MAX_BITS``."""
    ok = isinstance(codebook_size, int) and not isinstance(codebook_size, bool) and codebook_size >= 2
    if not ok or codebook_size & (codebook_size - 1) or codebook_size > 2**MAX_BITS:
        raise ValueError(
            f"{owner} must be a power of two from 2 to 2^{MAX_BITS} for lookup-free quantization "
            f"(2^bits codes, one bit per quantized dimension; e.g. 512 for 9 bits); got {codebook_size!r}."
        )


@dataclass
class LFQConfig:
    """Configuration of a :class:`LookupFreeQuantizer`. Defaults follow MAGVIT-v2 and vector-quantize-pytorch."""

    dim: int
    codebook_size: int = 512  # 2^bits: one sign bit per quantized dimension
    # "cube": codes ±1 in every dimension (LFQ, MAGVIT-v2); "sphere": inputs l2-normalised and codes
    # ±1/√b, on the unit sphere (binary spherical quantization, BSQ, Zhao et al. 2024).
    geometry: str = "cube"
    entropy_weight: float = 0.1  # weight of the entropy penalty in the loss
    # Weight of the batch entropy against the per-sample one (γ). The batch term is what prevents
    # collapse: at 0 every input may sit confidently on the same few codes.
    diversity: float = 1.0
    temperature: float = 0.01  # of the softmax over codes (−distance / temperature) in both entropy terms
    beta: float = 0.25  # commitment weight: pulls inputs towards their code's corner
    # Position in a residual stack: codes are scaled by 2^−residual_level, so deeper levels add finer bits.
    residual_level: int = 0

    def __post_init__(self) -> None:
        check_lfq_size(self.codebook_size, "LFQConfig.codebook_size")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"LFQConfig.geometry must be one of {GEOMETRIES}; got {self.geometry!r}")
        if self.dim <= 0:
            raise ValueError(f"LFQConfig.dim must be positive; got {self.dim}")
        for name in ("entropy_weight", "diversity", "beta", "residual_level"):
            if getattr(self, name) < 0:
                raise ValueError(f"LFQConfig.{name} must be >= 0; got {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"LFQConfig.temperature must be positive; got {self.temperature}")

    @property
    def bits(self) -> int:
        return self.codebook_size.bit_length() - 1

    def for_residual_level(self, level: int) -> LFQConfig:
        return replace(self, residual_level=level)

    def build(self) -> LookupFreeQuantizer:
        return LookupFreeQuantizer(self)


def _bernoulli_entropy(logit: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of Bernoulli(sigmoid(logit)), elementwise and stable for large |logit|."""
    p = torch.sigmoid(logit)
    return F.softplus(logit) - p * logit


def _code_probability_sum(log_minus: torch.Tensor, delta: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """``Σ_n p_n(code)`` ``(k,)`` of rows whose bits are independent: ``log p_n(code) = Σ_i log_minus[n, i] +
    bits[code, i] · delta[n, i]``, one matrix product for all ``k`` codes."""
    return torch.exp(log_minus.sum(1, keepdim=True) + delta @ bits.T).sum(0)


class LookupFreeQuantizer(SingleLevelQuantizer):
    """LFQ (Yu et al. 2023, MAGVIT-v2, "Language Model Beats Diffusion"), and BSQ with ``geometry="sphere"``.

    Inputs are projected to ``b = log2(K)`` dimensions (when ``d != b``) and each dimension is
    replaced by its sign (times ``1/√b`` on the sphere); the code is the number whose bits are those
    signs, dimension 0 the most significant. There is no codebook to look up or learn: what keeps the
    codes in use is the entropy penalty, ``entropy_weight × (mean_n H(p_n) − diversity × H(mean_n p_n))``
    with ``p_n = softmax(−‖z_n − c‖² / temperature)`` over all ``K`` codes ``c``. The first term makes
    each input confident of one code; the second, over the batch (over all ranks under DDP), spreads the
    batch across codes. Shape contract: ``x`` ``(..., d)`` → ``quantized`` ``(..., d)``, codes ``(...)``
    in ``[0, 2^b)``; e.g. ``(8, 7, 7, 64)`` with ``codebook_size=512`` → codes ``(8, 7, 7)``.
    Quantization and entropies run in float32 under autocast.

    Args:
        config: an :class:`LFQConfig`, or leave it out and pass its fields as keywords.
    """

    def __init__(self, config: LFQConfig | None = None, **kwargs) -> None:
        super().__init__(LFQConfig, config, kwargs)
        config = self.config
        b = config.bits
        self.project_in = nn.Linear(config.dim, b) if config.dim != b else nn.Identity()
        self.project_out = nn.Linear(b, config.dim) if config.dim != b else nn.Identity()
        side = (b**-0.5 if config.geometry == "sphere" else 1.0) * 2.0**-config.residual_level
        self.side = side  # every code's coordinates are ±side
        # Derived constants, rebuilt from the config: not state to save.
        self.register_buffer("powers", 2 ** torch.arange(b - 1, -1, -1), persistent=False)  # (b,) MSB first
        self.register_buffer("code_bits", self._bits(torch.arange(config.codebook_size)), persistent=False)  # (k, b)
        self.tracker = CodeUsage(config.codebook_size)

    def _bits(self, codes: torch.Tensor) -> torch.Tensor:
        """0/1 floats ``(..., b)`` of ``codes`` ``(...)``."""
        return ((codes.long()[..., None] & self.powers) != 0).float()

    def _to_code_space(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project_in(x.reshape(-1, self.dim).float())  # (n, b)
        return F.normalize(z, dim=-1) * (self.side * self.config.bits**0.5) if self.config.geometry == "sphere" else z

    def _codes(self, z: torch.Tensor) -> torch.Tensor:
        return ((z.detach() > 0).long() * self.powers).sum(-1)

    def _entropy_loss(self, z: torch.Tensor) -> torch.Tensor:
        """``mean_n H(p_n) − diversity · H(mean_n p_n)`` (nats) of code-space vectors ``z`` ``(n, b)``.

        The softmax over the ``2^b`` codes ``±side`` factorises into one Bernoulli per bit: ``−‖z − c‖²``
        is ``2 z·c`` up to a constant, so bit ``i`` is set with probability ``sigmoid(4 · side · z_i / T)``.
        The per-sample entropy is then a sum over bits; the batch entropy needs every code's mean
        probability, summed over pieces of rows (and ranks) without keeping any ``(n, k)`` matrix.
        """
        cfg = self.config
        logit = 4.0 * self.side * z / cfg.temperature  # (n, b)
        per_sample = _bernoulli_entropy(logit).sum(1).mean() if z.shape[0] else z.new_zeros(())
        if cfg.diversity == 0:
            return per_sample
        log_minus = F.logsigmoid(-logit)  # (n, b): log P(bit i unset)
        delta = F.logsigmoid(logit) - log_minus  # (n, b)
        rows = max(1, ENTROPY_CHUNK_ELEMENTS // cfg.codebook_size)
        total = zero_loss(z).expand(cfg.codebook_size)  # in the graph even for an empty batch
        if z.shape[0] <= rows:  # one piece: keep its probabilities for the backward pass (no recomputation)
            total = total + _code_probability_sum(log_minus, delta, self.code_bits)
        for start in range(0, z.shape[0] if z.shape[0] > rows else 0, rows):
            piece = (log_minus[start : start + rows], delta[start : start + rows], self.code_bits)
            total = total + checkpoint(_code_probability_sum, *piece, use_reentrant=False)
        count = z.new_tensor(float(z.shape[0]))
        if self.training:
            # Differentiable sums: every rank's gradient sees the whole batch's mean, so DDP's averaging of
            # gradients gives what one process on the joined batch would.
            total = distributed.all_reduce_sum_autograd(total)
            count = distributed.all_reduce_sum(count)
        mean = total / count.clamp_min(1.0)  # (k,)
        batch = -(mean * torch.log(mean.clamp_min(1e-30))).sum()
        # The batch term is what keeps the codes in use: the per-sample term alone is as low for a batch that
        # sits confidently on one code as for one spread over all (test_the_batch_entropy_term_...).
        return per_sample - cfg.diversity * batch

    # ---- the interface ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self._to_code_space(x)
            codes = self._codes(z)
            q = (self._bits(codes) * 2 - 1) * self.side  # (n, b)
            q_st = z + (q - z).detach()
            quantized = self.project_out(q_st).reshape(x.shape).to(x.dtype)
            if z.shape[0]:
                commitment = self.config.beta * F.mse_loss(z, q)
            else:
                commitment = zero_loss(z)
            needs_entropy = self.training and self.config.entropy_weight > 0
            entropy = self.config.entropy_weight * self._entropy_loss(z) if needs_entropy else z.new_zeros(())
            health = self.tracker.observe(codes)
        codes = codes.reshape(x.shape[:-1])
        return QuantizerOutput(quantized, codes, commitment, z.new_zeros(()), **vars(health), entropy_loss=entropy)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._codes(self._to_code_space(x)).reshape(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.codebook_size)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self.project_out((self._bits(codes) * 2 - 1) * self.side)
