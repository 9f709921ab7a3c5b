"""Phone analysis of speech codes, shared by train-tokenizer's evaluations and the phones verb.

Dimension legend: ``n`` code frames, ``K`` codebook size.
"""

from __future__ import annotations

import numpy as np

from modalities.speech import PhoneMetrics, PhoneSegment, align, phone_metrics


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
    """Align both sets of 1-D codes to their phones and compute :func:`~modalities.speech.phone_metrics`."""
    fit = align(fit_codes, fit_segments, frame_rate, first_frame_time, phones)
    score = align(score_codes, score_segments, frame_rate, first_frame_time, phones)
    return phone_metrics(fit, score, codebook_size, len(phones))
