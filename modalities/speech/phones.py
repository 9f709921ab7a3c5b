"""How much discrete speech codes say about phones: many-to-one mapping, purities, PNMI, and baselines.

Dimension legend: ``n`` frames (code frames aligned to phone labels), ``K`` codebook size, ``C`` phones.

The mapping sends every code to the phone it most often co-occurs with on a *fitting* set of
utterances and is scored on a held-out *scoring* set (VQ-VAE, section 4.3: 49.3% for K = 128 on
41 phones, chance 7.2%). Phone purity, code purity and PNMI follow HuBERT (Hsu et al. 2021,
section IV-B) and are measured on the scoring set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from modalities.speech.labels import PhoneSegment, frame_labels
from tokenizers_vq.metrics import code_stats, label_normalized_mutual_information


@dataclass
class AlignedFrames:
    """Frame-level codes and phone indices of a set of utterances (frames without a phone left out)."""

    codes: np.ndarray  # (n,) int64 in [0, K)
    labels: np.ndarray  # (n,) int64 in [0, C), indices into the phone inventory

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def align(
    codes: Sequence[np.ndarray],
    segments: Sequence[list[PhoneSegment]],
    frame_rate: float,
    first_frame_time: float,
    phones: Sequence[str],
) -> AlignedFrames:
    """Pair every code frame with the phone under its centre, over utterances, into an :class:`AlignedFrames`.

    ``codes``: one 1-D array per utterance (frame ``i`` centred at ``first_frame_time + i / frame_rate`` s);
    ``segments``: the same utterances' phone segments; ``phones``: the inventory that label indices
    refer to. Frames on no phone, or on a phone outside the inventory, are left out.
    """
    if len(codes) != len(segments):
        raise ValueError(f"got codes of {len(codes)} utterances but phone labels of {len(segments)}.")
    index = {p: i for i, p in enumerate(phones)}
    all_codes, all_labels = [], []
    for utt_codes, utt_segments in zip(codes, segments, strict=True):
        utt_codes = np.asarray(utt_codes)
        if utt_codes.ndim != 1:
            raise ValueError(f"phone alignment takes 1-D code sequences; got shape {utt_codes.shape}.")
        names = frame_labels(utt_segments, len(utt_codes), frame_rate, first_frame_time)
        keep = [i for i, name in enumerate(names) if name in index]
        all_codes.append(utt_codes[keep])
        all_labels.append(np.array([index[names[i]] for i in keep], dtype=np.int64))
    return AlignedFrames(
        np.concatenate(all_codes).astype(np.int64) if all_codes else np.zeros(0, np.int64),
        np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64),
    )


def joint_counts(frames: AlignedFrames, codebook_size: int, num_phones: int) -> np.ndarray:
    """Co-occurrence counts ``(K, C)`` of codes and phones."""
    flat = frames.codes * num_phones + frames.labels
    return np.bincount(flat, minlength=codebook_size * num_phones).reshape(codebook_size, num_phones)


def fit_mapping(frames: AlignedFrames, codebook_size: int, num_phones: int) -> np.ndarray:
    """Many-to-one map ``(K,)``: each code's most frequent phone; codes never seen get the most frequent phone."""
    counts = joint_counts(frames, codebook_size, num_phones)
    mapping = counts.argmax(axis=1)
    unseen = counts.sum(axis=1) == 0
    mapping[unseen] = counts.sum(axis=0).argmax()
    return mapping


@dataclass
class PhoneMetrics:
    """Code–phone figures for one set of codes (snake_case keys for ``--json``)."""

    mapping_accuracy: float  # map fitted on the fitting set, scored on the scoring set
    chance_accuracy: float  # always the fitting set's most frequent phone
    phone_purity: float  # E_code[max_phone p(phone | code)] on the scoring set
    code_purity: float  # E_phone[max_code p(code | phone)] on the scoring set
    pnmi: float  # I(phone; code) / H(phone) on the scoring set
    code_usage: float  # fraction of the K codes used on the scoring set
    code_perplexity: float
    codebook_size: int
    num_phones: int  # phones in the inventory
    fit_frames: int
    score_frames: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def phone_metrics(
    fit: AlignedFrames, score: AlignedFrames, codebook_size: int, num_phones: int
) -> tuple[PhoneMetrics, np.ndarray]:
    """The figures of :class:`PhoneMetrics` and the confusion counts ``(C, C)`` (true phone × mapped phone).

    E.g. codes that equal the phone index give mapping accuracy, purities and PNMI of 1; codes
    that are all 0 give the chance accuracy and PNMI 0.
    """
    if len(fit) == 0 or len(score) == 0:
        raise ValueError(
            f"phone analysis needs labelled frames in both sets; got {len(fit)} fitting and {len(score)} scoring "
            "frames. Check that the utterances have phone labels in the phone set."
        )
    for name, frames in (("fitting", fit), ("scoring", score)):
        if frames.codes.min() < 0 or frames.codes.max() >= codebook_size:
            raise ValueError(f"{name} codes must lie in [0, {codebook_size - 1}]; got up to {frames.codes.max()}.")
    mapping = fit_mapping(fit, codebook_size, num_phones)
    predicted = mapping[score.codes]
    majority = np.bincount(fit.labels, minlength=num_phones).argmax()
    joint = joint_counts(score, codebook_size, num_phones).astype(np.float64)
    total = joint.sum()
    confusion = np.bincount(score.labels * num_phones + predicted, minlength=num_phones**2).reshape(
        num_phones, num_phones
    )
    stats = code_stats(torch.from_numpy(score.codes), codebook_size)
    metrics = PhoneMetrics(
        mapping_accuracy=float((predicted == score.labels).mean()),
        chance_accuracy=float((score.labels == majority).mean()),
        phone_purity=float(joint.max(axis=1).sum() / total),
        code_purity=float(joint.max(axis=0).sum() / total),
        pnmi=label_normalized_mutual_information(
            torch.from_numpy(score.codes), torch.from_numpy(score.labels), codebook_size, num_phones
        ),
        code_usage=stats.usage,
        code_perplexity=stats.perplexity,
        codebook_size=codebook_size,
        num_phones=num_phones,
        fit_frames=len(fit),
        score_frames=len(score),
    )
    return metrics, confusion


def random_codes(lengths: Sequence[int], codebook_size: int, seed: int = 0) -> list[np.ndarray]:
    """Uniformly random codes, one array per utterance: the baseline that says nothing about phones."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, codebook_size, size=n, dtype=np.int64) for n in lengths]


def analyse(
    fit_codes: list[np.ndarray],
    score_codes: list[np.ndarray],
    fit_segments: list[list[PhoneSegment]],
    score_segments: list[list[PhoneSegment]],
    frame_rate: float,
    first_frame_time: float,
    codebook_size: int,
    phones: list[str],
) -> tuple[PhoneMetrics, np.ndarray]:
    """Align both sets of 1-D codes to their phones and compute :func:`phone_metrics` (fit on one, score the other)."""
    fit = align(fit_codes, fit_segments, frame_rate, first_frame_time, phones)
    score = align(score_codes, score_segments, frame_rate, first_frame_time, phones)
    return phone_metrics(fit, score, codebook_size, len(phones))
