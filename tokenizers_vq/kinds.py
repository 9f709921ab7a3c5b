"""Quantizers chosen by name: the kinds a tokenizer config offers, and the core config each name stands for.

A tokenizer config holds flat fields (``quantizer``, ``codebook_size``, ``beta``, ``fsq_levels``, ...);
:func:`level_config` turns them into the config of one quantizer, and :func:`build_quantizer` builds any
quantizer config (a residual stack included). The helpers here are shared by the image and speech
tokenizer configs, so a kind means the same in both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Any

from tokenizers_vq.base import Quantizer
from tokenizers_vq.fsq import FSQConfig, check_fsq_levels
from tokenizers_vq.lfq import LFQConfig, check_lfq_size
from tokenizers_vq.residual import LevelConfig, RVQConfig
from tokenizers_vq.rotation import check_gradient
from tokenizers_vq.simvq import SimVQConfig
from tokenizers_vq.vq import VQConfig

#: Single-level kinds: a learned codebook (VQ-VAE), finite scalar quantization, lookup-free quantization
#: (sign bits), its spherical variant (BSQ), and a linear map of a frozen basis (SimVQ).
KINDS = ("vq", "fsq", "lfq", "bsq", "simvq")
#: The kinds that snap to a codebook by nearest-code search: they take a gradient estimator and
#: duration-penalised sequence encoding.
SEARCH_KINDS = ("vq", "simvq")

QuantizerConfig = LevelConfig | RVQConfig


def build_quantizer(config: QuantizerConfig) -> Quantizer:
    """The quantizer ``config`` describes: ``VQConfig`` → ``VectorQuantizer``, ``FSQConfig`` →
    ``FiniteScalarQuantizer``, ``LFQConfig`` → ``LookupFreeQuantizer``, ``SimVQConfig`` → ``SimVQ``,
    ``RVQConfig`` → ``ResidualVectorQuantizer`` of any of them."""
    if not isinstance(config, QuantizerConfig):
        raise TypeError(f"build_quantizer takes one of {QuantizerConfig}; got {type(config).__name__}.")
    return config.build()


def level_config(kind: str, vq: VQConfig, fsq_levels: list[int], lfq_entropy_weight: float) -> LevelConfig:
    """The config of one quantizer of ``kind``. ``vq`` holds what every kind may take from a tokenizer's fields
    (``dim``, ``codebook_size``, ``beta``, ``seed``, ``gradient``) and is itself the config of ``"vq"``.

    E.g. ``level_config("fsq", VQConfig(dim=64), [8, 8, 8], 0.1)`` is ``FSQConfig(dim=64, levels=[8, 8, 8])``
    (512 codes); ``"lfq"`` with ``codebook_size=512`` quantizes 9 sign bits.
    """
    if kind == "vq":
        return vq
    if kind == "fsq":
        return FSQConfig(dim=vq.dim, levels=list(fsq_levels))
    if kind in ("lfq", "bsq"):
        geometry = "sphere" if kind == "bsq" else "cube"
        return LFQConfig(vq.dim, vq.codebook_size, geometry, entropy_weight=lfq_entropy_weight, beta=vq.beta)
    if kind == "simvq":
        return SimVQConfig(vq.dim, vq.codebook_size, beta=vq.beta, gradient=vq.gradient, seed=vq.seed)
    raise ValueError(f"unknown quantizer kind {kind!r}; choose one of {KINDS}.")


def num_codes(kind: str, codebook_size: int, fsq_levels: list[int]) -> int:
    """Codes per level of a quantizer of ``kind``: the product of ``fsq_levels`` for FSQ, else ``codebook_size``."""
    return math.prod(fsq_levels) if kind == "fsq" else codebook_size


def check_kind_fields(
    owner: str, kind: str, gradient: str, fsq_levels: Any, codebook_size: int, lfq_entropy_weight: float
) -> None:
    """Raise ``ValueError`` naming ``owner``'s field (e.g. ``ImageTokenizerConfig.fsq_levels``) unless the
    kind-specific fields fit ``kind`` (which the caller has checked is one of its choices)."""
    check_gradient(gradient, f"{owner}.gradient")
    if gradient != "straight_through" and kind not in SEARCH_KINDS:
        raise ValueError(
            f"{owner}.gradient={gradient!r} needs a codebook to rotate onto: quantizer vq, rvq or simvq; "
            f"{kind} rounds each dimension itself. Leave gradient at 'straight_through'."
        )
    check_fsq_levels(fsq_levels, f"{owner}.fsq_levels")
    if kind in ("lfq", "bsq"):
        check_lfq_size(codebook_size, f"{owner}.codebook_size (with quantizer={kind!r})")
    if isinstance(lfq_entropy_weight, bool) or not lfq_entropy_weight >= 0:
        raise ValueError(f"{owner}.lfq_entropy_weight must be >= 0; got {lfq_entropy_weight!r}.")


def config_dict(config: Any, added: tuple[str, ...]) -> dict[str, Any]:
    """``asdict(config)`` without the fields in ``added`` that hold their defaults.

    ``added`` are fields a config class gained after models were first saved with it: written only
    when set, the ``config.json`` of a model saved before them reads back to the same dict, so its
    content identity (which hashes that dict) does not change.
    """
    values = asdict(config)
    for f in fields(config):
        if f.name in added:
            default = f.default_factory() if callable(f.default_factory) else f.default
            if values[f.name] == default:
                del values[f.name]
    return values
