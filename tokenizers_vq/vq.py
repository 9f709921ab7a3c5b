"""The VQ-VAE vector quantizer: nearest-neighbour snapping to a learned codebook.

Dimension legend: ``...`` leading shape, ``d`` input dim, ``c`` codebook dim (``d`` unless projected),
``n`` flattened vectors, ``k`` codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tokenizers_vq import distributed
from tokenizers_vq.base import QuantizerOutput, SingleLevelQuantizer, check_codes, check_vectors, zero_loss
from tokenizers_vq.metrics import perplexity_from_counts
from tokenizers_vq.rotation import GRADIENTS, check_gradient
from tokenizers_vq.search import DEFAULT_CHUNK_BYTES, kmeans, nearest_codes, penalized_codes

_CHOICES = {
    "distance": ("euclidean", "cosine"),
    "update": ("ema", "loss"),
    "init": ("kmeans", "random"),
    "dead_code": ("restart", "none"),
}


@dataclass
class VQConfig:
    """Configuration of a :class:`VectorQuantizer`.

    Defaults follow VQ-VAE (β = 0.25) with VQ-VAE-2's EMA codebook (decay 0.99).
    """

    dim: int
    codebook_size: int = 512
    codebook_dim: int | None = None  # a smaller c projects inputs d → c and codes back c → d (ViT-VQGAN)
    distance: str = "euclidean"  # "cosine" snaps l2-normalised vectors to l2-normalised codes
    update: str = "ema"  # "ema": moving averages (VQ-VAE-2); "loss": the codebook term ‖sg(z_e) − e‖²
    decay: float = 0.99  # EMA decay, also used for the usage tracker in "loss" mode
    epsilon: float = 1e-5  # Laplace smoothing of EMA cluster sizes, so no code divides by zero
    beta: float = 0.25  # commitment weight, on the commitment term only (taming-transformers #46)
    # How gradients pass the snap: "straight_through" copies them (VQ-VAE); "rotation" rotates them
    # from the code's direction onto the input's (the rotation trick, Fifty et al. 2024).
    gradient: str = "straight_through"
    init: str = "kmeans"  # "kmeans": k-means on the first training batch; "random": unit Gaussian
    kmeans_iters: int = 10
    dead_code: str = "restart"  # "restart": re-seed codes with EMA usage < threshold from current inputs
    dead_code_threshold: float = 1.0  # in expected uses per batch (the usage EMA below)
    # Usage is tracked by its own, faster EMA: with the codebook's 0.99 a code that k-means gave 12
    # vectors would need ~250 steps to count as dead, while early training collapses in a few.
    dead_code_decay: float = 0.9
    seed: int = 0  # seeds k-means and restarts; restarts also mix in the step count, so resumes match
    chunk_bytes: int = DEFAULT_CHUNK_BYTES  # working buffer of the distance search

    def __post_init__(self) -> None:
        for field, allowed in _CHOICES.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"VQConfig.{field} must be one of {allowed}; got {getattr(self, field)!r}")
        if self.dim <= 0 or self.codebook_size <= 0:
            raise ValueError(f"VQConfig needs dim > 0 and codebook_size > 0; got {self.dim}, {self.codebook_size}")
        if self.codebook_dim is not None and self.codebook_dim <= 0:
            raise ValueError(f"VQConfig.codebook_dim must be positive or None; got {self.codebook_dim}")
        for name in ("decay", "dead_code_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"VQConfig.{name} must be in [0, 1); got {getattr(self, name)}")
        check_gradient(self.gradient, "VQConfig.gradient")

    @property
    def code_dim(self) -> int:
        return self.codebook_dim or self.dim

    def for_residual_level(self, level: int) -> VQConfig:
        """The config of level ``level`` of a residual stack: its own seed."""
        return replace(self, seed=self.seed + level)

    def build(self) -> VectorQuantizer:
        return VectorQuantizer(self)


def sequence_codes(z: torch.Tensor, codebook: torch.Tensor, duration_penalty: float) -> torch.Tensor:
    """Duration-penalised codes ``(b, n)`` of code-space sequences ``z`` ``(b, n, c)`` against ``codebook`` ``(k, c)``
    (:func:`~tokenizers_vq.search.penalized_codes` on squared Euclidean distances, the penalty relative)."""
    distances = torch.cdist(z, codebook[None].expand(z.shape[0], -1, -1)).square()  # (b, n, k)
    return penalized_codes(distances, duration_penalty, relative=True)


class VectorQuantizer(SingleLevelQuantizer):
    """Vector quantizer of VQ-VAE (van den Oord et al. 2017) with VQ-VAE-2's EMA codebook.

    Every input vector is replaced by its nearest codebook entry; gradients pass by the
    straight-through estimator, or by the rotation trick (``gradient="rotation"``). Shape contract: ``x`` ``(..., d)`` → ``quantized`` ``(..., d)``,
    ``codes`` ``(...)``; e.g. ``(8, 32, 32, 64)`` → codes ``(8, 32, 32)`` in ``[0, K)``.

    The codebook is updated inside ``forward`` when ``self.training`` (EMA statistics, k-means
    initialisation, dead-code restarts); under ``torch.distributed`` these statistics are summed
    over ranks so every rank holds the same codebook as one process on the concatenated batch.
    Distances and EMA statistics run in float32, also under autocast.

    Args:
        config: a :class:`VQConfig`, or leave it out and pass its fields as keywords.
    """

    def __init__(self, config: VQConfig | None = None, **kwargs) -> None:
        super().__init__(VQConfig, config, kwargs)
        config = self.config
        c, k = config.code_dim, config.codebook_size
        projected = config.codebook_dim is not None and config.codebook_dim != config.dim
        self.project_in = nn.Linear(config.dim, c) if projected else nn.Identity()
        self.project_out = nn.Linear(c, config.dim) if projected else nn.Identity()
        gen = torch.Generator().manual_seed(config.seed)
        init = torch.randn(k, c, generator=gen)
        if config.distance == "cosine":
            init = F.normalize(init, dim=-1)
        self.embedding = nn.Parameter(init, requires_grad=config.update == "loss")
        # EMA of per-batch code counts. Starting at 1 (not 0) keeps unused codes where they are:
        # embed_sum / cluster_size stays at the initial vector instead of blowing up.
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("usage", torch.ones(k))  # EMA of counts with dead_code_decay
        self.register_buffer("embed_sum", init.clone() if config.update == "ema" else torch.zeros(0))
        self.register_buffer("initialized", torch.tensor(config.init != "kmeans"))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self._workspace: dict[str, torch.Tensor] = {}  # the search's distance buffer, kept between calls

    # ---- helpers -------------------------------------------------------------------------
    def codebook(self) -> torch.Tensor:
        """The codebook ``(k, c)`` in float32 as used for search (unit rows for cosine)."""
        e = self.embedding.float()
        return F.normalize(e, dim=-1) if self.config.distance == "cosine" else e

    def _to_code_space(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project_in(x.reshape(-1, self.dim).float())  # (n, c)
        return F.normalize(z, dim=-1) if self.config.distance == "cosine" else z

    def _search(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        codebook = codebook.detach()
        norms = None if self.config.distance == "cosine" else (codebook * codebook).sum(1)
        return nearest_codes(z.detach(), codebook, norms, self.config.chunk_bytes, self._workspace)

    def _generator(self, salt: int) -> torch.Generator:
        # A function of (seed, step) only, so every rank and a resumed run draw the same numbers.
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + int(self.steps) * 7919 + salt)

    # ---- codebook updates (training only) -----------------------------------------------------
    @torch.no_grad()
    def _initialise(self, z: torch.Tensor) -> None:
        data = distributed.all_gather_rows(z.detach())
        if data.shape[0] == 0:
            return  # no data on any rank yet; try again on the next batch
        cfg = self.config
        centroids, counts = kmeans(data, cfg.codebook_size, cfg.kmeans_iters, cfg.seed, cfg.distance == "cosine")
        distributed.broadcast(centroids)
        distributed.broadcast(counts)
        self.embedding.data.copy_(centroids)
        self.cluster_size.copy_(counts)
        self.usage.copy_(counts)
        if cfg.update == "ema":
            self.embed_sum.copy_(centroids * counts[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Update usage statistics (and the codebook for EMA); returns the global code counts."""
        cfg = self.config
        k = cfg.codebook_size
        counts = torch.bincount(codes, minlength=k).float()
        sums = (
            torch.zeros(k, z.shape[1], device=z.device).index_add_(0, codes, z.detach())
            if cfg.update == "ema"
            else None
        )
        distributed.all_reduce_sum(counts)
        if sums is not None:
            distributed.all_reduce_sum(sums)
        if counts.sum() == 0:
            return counts  # empty batch on every rank: nothing to learn from
        self.cluster_size.mul_(cfg.decay).add_(counts, alpha=1 - cfg.decay)
        self.usage.mul_(cfg.dead_code_decay).add_(counts, alpha=1 - cfg.dead_code_decay)
        if cfg.update == "ema":
            self.embed_sum.mul_(cfg.decay).add_(sums, alpha=1 - cfg.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + cfg.epsilon) / (n + k * cfg.epsilon) * n
            new = self.embed_sum / smoothed[:, None]
            self.embedding.data.copy_(F.normalize(new, dim=-1) if cfg.distance == "cosine" else new)
        if cfg.dead_code == "restart":
            self._restart_dead(z)
        self.steps.add_(1)
        return counts

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor) -> None:
        cfg = self.config
        dead = self.usage < cfg.dead_code_threshold  # identical on every rank
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        data = distributed.all_gather_rows(z.detach())
        if data.shape[0] == 0:
            return
        pick = torch.randint(data.shape[0], (num_dead,), generator=self._generator(salt=1)).to(data.device)
        fresh = data[pick]
        self.embedding.data[dead] = fresh
        # A restarted code starts at the threshold: unless inputs pick it up, it is re-seeded again.
        self.usage[dead] = cfg.dead_code_threshold
        self.cluster_size[dead] = cfg.dead_code_threshold
        if cfg.update == "ema":
            self.embed_sum[dead] = fresh * cfg.dead_code_threshold

    # ---- the interface ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self._to_code_space(x)  # (n, c) float32
            if self.training and not bool(self.initialized):
                self._initialise(z)
            codebook = self.codebook()
            codes = self._search(z, codebook)  # (n,)
            q = F.embedding(codes, codebook)  # (n, c); carries the codebook gradient in "loss" mode
            if self.training:
                counts = self._update(z, codes)
            else:
                counts = torch.bincount(codes, minlength=self.codebook_size).float()
            if z.shape[0]:
                commitment = self.config.beta * F.mse_loss(z, q.detach())
                codebook_loss = F.mse_loss(q, z.detach()) if self.config.update == "loss" else z.new_zeros(())
            else:
                commitment = codebook_loss = zero_loss(z)
            q_st = GRADIENTS[self.config.gradient](z, q)  # equals q; straight-through: d q_st / d z = I
            quantized = self.project_out(q_st).reshape(x.shape).to(x.dtype)
        return QuantizerOutput(
            quantized=quantized,
            codes=codes.reshape(x.shape[:-1]),
            commitment_loss=commitment,
            codebook_loss=codebook_loss,
            perplexity=perplexity_from_counts(counts),
            usage=(counts > 0).float().mean(),
            dead_codes=(self.usage < self.config.dead_code_threshold).sum(),
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_vectors(x, self.dim)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._search(self._to_code_space(x), self.codebook()).reshape(x.shape[:-1])

    @torch.no_grad()
    def encode_sequence(self, x: torch.Tensor, duration_penalty: float = 0.0) -> torch.Tensor:
        """Codes ``(b, n)`` of sequences ``(b, n, dim)`` where changing code costs ``duration_penalty``.

        The penalty is in units of each sequence's mean squared quantization error; the codes are the
        best trade of distance against code changes (:func:`~tokenizers_vq.search.penalized_codes`), so
        runs of one code grow longer and follow segments such as phones. 0 gives :meth:`encode`.
        """
        check_vectors(x, self.dim)
        if x.ndim != 3:
            raise ValueError(f"encode_sequence takes sequences (b, n, {self.dim}); got shape {tuple(x.shape)}.")
        if duration_penalty == 0:
            return self.encode(x)  # penalized_codes refuses negative and non-finite penalties
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self._to_code_space(x).reshape(*x.shape[:2], -1)  # (b, n, c)
            return sequence_codes(z, self.codebook().detach(), duration_penalty)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        check_codes(codes, self.codebook_size)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self.project_out(F.embedding(codes.long(), self.codebook()))
