"""Configuration of an image tokenizer (VQ-VAE or VQ-VAE-2), checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modalities.image.layers import ACTIVATIONS
from tokenizers_vq import VQConfig
from tokenizers_vq.kinds import KINDS, LevelConfig, check_kind_fields, config_dict, level_config, num_codes
from tokenizers_vq.pretrained import check_known_fields

_KINDS = ("vqvae", "vqvae2")
_CHOICES = {
    "distance": ("euclidean", "cosine"),
    "update": ("ema", "loss"),
    "init": ("kmeans", "random"),
    "dead_code": ("restart", "none"),
    "activation": tuple(ACTIVATIONS),
    "quantizer": KINDS,
}
# Fields added after image tokenizers were first saved: config.json holds them only when they differ
# from their defaults, so a tokenizer saved before them keeps its config.json and content identity.
_ADDED = ("quantizer", "gradient", "fsq_levels", "lfq_entropy_weight")


@dataclass
class ImageTokenizerConfig:
    """Architecture and codebooks of an :class:`~modalities.image.ImageTokenizer`.

    Levels are counted top first: level 0 is the coarsest grid, the last level (the "bottom") has
    ``downsample`` and every level above it a further factor 2. For 32×32 RGB with ``kind="vqvae2"``,
    ``downsample=4`` and ``num_levels=2`` the code grids are 4×4 (top) and 8×8 (bottom). For 28×28
    images (MNIST, Fashion-MNIST) pick a total factor that divides 28: ``vqvae`` with ``downsample=4``
    (7×7 codes) or ``vqvae2`` with ``downsample=2`` and ``num_levels=2`` (7×7 top, 14×14 bottom).

    ``quantizer`` picks how every level snaps its vectors to codes (docs/quantizer.md): ``"vq"`` uses
    ``codebook_size`` and all the codebook fields (``codebook_dim`` to ``decay``); ``"simvq"`` uses
    ``codebook_size``, ``beta``, ``gradient`` and ``seed``; ``"fsq"`` only ``fsq_levels`` (its codebook
    size is their product); ``"lfq"`` and ``"bsq"`` take ``codebook_size`` (a power of two: 2^bits),
    ``beta`` and ``lfq_entropy_weight``. The other fields are ignored by that kind.
    """

    kind: str = "vqvae"  # "vqvae": one code grid (van den Oord 2017); "vqvae2": a hierarchy (Razavi 2019)
    in_channels: int = 1  # 1 for grey, 3 for RGB
    hidden_channels: int = 128  # width of encoders and decoders (the papers use 128-256)
    res_channels: int = 32  # bottleneck width inside each residual block
    num_res_blocks: int = 2
    activation: str = "relu"  # of encoders and decoders: "relu" (the papers'), "silu" or "gelu"
    downsample: int = 4  # bottom level factor, a power of two >= 2 (one strided 4×4 conv per factor 2)
    num_levels: int = 1  # vqvae: 1; vqvae2: >= 2, each upper level downsampled by a further 2
    codebook_size: int = 512  # entries per level; every level has its own codebook
    code_dim: int = 64  # dimension of a code vector
    codebook_dim: int | None = None  # look codes up in a smaller space (ViT-VQGAN's factorised codes); null: code_dim
    distance: str = "euclidean"  # "cosine" snaps l2-normalised vectors to l2-normalised codes
    update: str = "ema"  # codebook learning: "ema" (VQ-VAE-2) or "loss" (VQ-VAE's codebook term)
    init: str = "kmeans"  # "kmeans" on the first training batch, or "random"
    dead_code: str = "restart"  # "restart" re-seeds unused codes from the batch; "none" leaves them
    beta: float = 0.25  # commitment weight
    decay: float = 0.99  # EMA decay of the codebook statistics
    seed: int = 0  # seed of codebook initialisation and restarts; level l uses seed + l
    quantizer: str = "vq"  # "vq" (VQ-VAE's codebook), "fsq", "lfq", "bsq" (spherical LFQ) or "simvq"
    gradient: str = "straight_through"  # vq, simvq: "rotation" passes gradients by the rotation trick (Fifty 2024)
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # fsq: levels per dimension (1,000 codes)
    lfq_entropy_weight: float = 0.1  # lfq, bsq: weight of the entropy penalty that keeps the codes in use

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"ImageTokenizerConfig.kind must be one of {_KINDS}; got {self.kind!r}.")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ImageTokenizerConfig.{name} must be one of {allowed}; got {getattr(self, name)!r}.")
        for name in ("in_channels", "hidden_channels", "res_channels", "num_res_blocks", "codebook_size", "code_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageTokenizerConfig.{name} must be a positive integer; got {value!r}.")
        if self.in_channels not in (1, 3):
            raise ValueError(
                f"ImageTokenizerConfig.in_channels must be 1 (grey) or 3 (RGB); got {self.in_channels}. "
                "Convert other images to grey or RGB first (e.g. PIL's Image.convert('RGB'))."
            )
        if self.hidden_channels < 2:
            raise ValueError(f"ImageTokenizerConfig.hidden_channels must be at least 2; got {self.hidden_channels}.")
        cd = self.codebook_dim
        if cd is not None and (isinstance(cd, bool) or not isinstance(cd, int) or not 1 <= cd <= self.code_dim):
            raise ValueError(
                f"ImageTokenizerConfig.codebook_dim must be null or an integer in [1, code_dim={self.code_dim}]; got {cd!r}."
            )
        d = self.downsample
        if isinstance(d, bool) or not isinstance(d, int) or d < 2 or d & (d - 1):
            raise ValueError(
                f"ImageTokenizerConfig.downsample must be a power of two >= 2 (2, 4, 8, 16, ...); got {d!r}."
            )
        if self.kind == "vqvae" and self.num_levels != 1:
            raise ValueError(
                f"kind='vqvae' has exactly one level; got num_levels={self.num_levels}. "
                "Use kind='vqvae2' for a hierarchy of code grids."
            )
        if self.kind == "vqvae2" and (not isinstance(self.num_levels, int) or self.num_levels < 2):
            raise ValueError(
                f"kind='vqvae2' needs num_levels >= 2; got {self.num_levels!r}. Use kind='vqvae' for one level."
            )
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"ImageTokenizerConfig.decay must be in [0, 1); got {self.decay}.")
        if self.beta < 0:
            raise ValueError(f"ImageTokenizerConfig.beta must be >= 0; got {self.beta}.")
        check_kind_fields(
            "ImageTokenizerConfig", self.quantizer, self.gradient, self.fsq_levels, self.codebook_size,
            self.lfq_entropy_weight,
        )  # fmt: skip
        self.fsq_levels = list(self.fsq_levels)

    @property
    def total_downsample(self) -> int:
        """Factor from image to the top code grid; image sides must be multiples of it."""
        return self.downsample * 2 ** (self.num_levels - 1)

    def level_downsample(self, level: int) -> int:
        """Factor from image to the grid of ``level`` (0 = top)."""
        return self.downsample * 2 ** (self.num_levels - 1 - level)

    @property
    def num_codes(self) -> int:
        """Codes per level (``K``) whatever the quantizer: ``codebook_size``, or the product of ``fsq_levels``."""
        return num_codes(self.quantizer, self.codebook_size, self.fsq_levels)

    def quantizer_config(self, level: int) -> LevelConfig:
        """The config of ``level``'s quantizer (0 = top): a :class:`~tokenizers_vq.VQConfig` for ``"vq"``."""
        vq = VQConfig(
            dim=self.code_dim,
            codebook_size=self.codebook_size,
            codebook_dim=self.codebook_dim,
            distance=self.distance,
            update=self.update,
            init=self.init,
            dead_code=self.dead_code,
            beta=self.beta,
            decay=self.decay,
            gradient=self.gradient,
            seed=self.seed + level,
        )
        return level_config(self.quantizer, vq, self.fsq_levels, self.lfq_entropy_weight)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self, _ADDED)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImageTokenizerConfig:
        """Build from a dict such as ``to_dict()`` wrote; unknown keys are an error, not ignored."""
        check_known_fields(cls, values)
        return cls(**values)
