"""Codebook health and code–label information, shared by every modality.

Dimension legend: ``n`` code positions, ``K`` codebook size, ``C`` number of labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CodeStats:
    """Health of one codebook level over a set of codes.

    ``usage`` is the fraction of the ``K`` codes that occur at least once, ``perplexity`` is
    ``exp(entropy)`` of the code histogram (``K`` when every code is equally frequent),
    ``dead_codes`` counts the codes that never occur.
    """

    usage: float
    perplexity: float
    dead_codes: int
    codebook_size: int


def code_histogram(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Counts ``(K,)`` of each code in ``codes`` (any shape, integer)."""
    return torch.bincount(codes.reshape(-1).long(), minlength=codebook_size)[:codebook_size]


def perplexity_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """``exp(H)`` of the distribution proportional to ``counts``; 1 for an empty histogram."""
    counts = counts.float()
    total = counts.sum()
    if total <= 0:
        return torch.ones((), device=counts.device)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return torch.exp(entropy)


def code_stats(codes: torch.Tensor, codebook_size: int) -> CodeStats:
    """Usage, perplexity and dead codes of one level's ``codes`` (any shape)."""
    counts = code_histogram(codes, codebook_size)
    used = int((counts > 0).sum())
    return CodeStats(
        usage=used / codebook_size,
        perplexity=float(perplexity_from_counts(counts)),
        dead_codes=codebook_size - used,
        codebook_size=codebook_size,
    )


def label_normalized_mutual_information(
    codes: torch.Tensor, labels: torch.Tensor, codebook_size: int, num_labels: int
) -> float:
    """``I(label; code) / H(label)`` over all code positions, each position carrying its item's label.

    This is PNMI (HuBERT) when labels are phones aligned frame by frame; for images, every code of
    an image carries the image's class. 0 means codes say nothing about labels, 1 means the code
    determines the label. ``codes``: ``(n,)`` ints in ``[0, K)``; ``labels``: ``(n,)`` ints in ``[0, C)``.
    """
    if codes.shape != labels.shape:
        raise ValueError(
            f"codes and labels must have the same shape; got {tuple(codes.shape)} and {tuple(labels.shape)}"
        )
    joint = (
        torch.bincount(
            labels.reshape(-1).long() * codebook_size + codes.reshape(-1).long(),
            minlength=num_labels * codebook_size,
        )
        .reshape(num_labels, codebook_size)
        .double()
    )
    total = joint.sum()
    if total == 0:
        return 0.0
    p = joint / total
    p_label = p.sum(1, keepdim=True)
    p_code = p.sum(0, keepdim=True)
    nz = p > 0
    mi = (p[nz] * (p[nz] / (p_label @ p_code)[nz]).log()).sum()
    h_label = -(p_label[p_label > 0] * p_label[p_label > 0].log()).sum()
    return float(mi / h_label) if h_label > 0 else 0.0
