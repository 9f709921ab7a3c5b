"""Baseline codes for phone analysis, on exactly the frames a tokenizer's codes sit on.

Dimension legend: ``n`` frames of one utterance, ``e`` feature dimension (39 for MFCC+Δ+ΔΔ), ``K`` clusters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange

from modalities.speech.frontend import mfcc_features
from tokenizers_vq.search import kmeans, nearest_codes, penalized_codes


def mfcc_frames(
    waveform: torch.Tensor, sample_rate: int, frame_rate: float, first_frame_time: float, num_frames: int
) -> torch.Tensor:
    """MFCC+Δ+ΔΔ ``(n, 39)`` of a mono ``(t,)`` waveform, frame ``i`` centred at ``first_frame_time + i / frame_rate``.

    The hop is ``sample_rate / frame_rate`` samples (it must be whole); the waveform is shifted so
    frame centres land on the codes' centres, and the last frame is repeated or cut to give ``num_frames``.
    """
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(
            f"the MFCC baseline needs a whole number of samples per frame; {sample_rate} Hz / {frame_rate} frames/s "
            f"= {hop}."
        )
    shift = round(first_frame_time * sample_rate)
    features = mfcc_features(waveform[None, shift:], sample_rate, round(hop))[0]  # (e, n')
    features = rearrange(features, "e n -> n e")
    if features.shape[0] < num_frames:
        features = torch.cat([features, features[-1:].expand(num_frames - features.shape[0], -1)])
    return features[:num_frames]


def kmeans_codes(
    fit_features: Sequence[torch.Tensor],
    score_features: Sequence[torch.Tensor],
    codebook_size: int,
    seed: int = 0,
    standardize: bool = True,
    duration_penalty: float = 0.0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """k-means with ``K = codebook_size`` fitted on the fitting frames, then every frame's nearest centroid.

    With ``standardize`` (the default) features ``(n, e)`` per utterance are standardised with the
    fitting set's mean and deviation first, so no MFCC dimension dominates the distances; without,
    k-means sees the raw features, where c0 (the frame's level) and the low cepstra weigh most.
    ``duration_penalty`` > 0 assigns codes as a duration-penalised tokenizer does (a change of code
    costs that many times the utterance's mean squared distance to its nearest centroids), so such
    codes meet the same smoothing in their baseline. Returns code arrays per utterance, fitting then scoring.
    """
    train = torch.cat(list(fit_features)).float()
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    if not standardize:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    centroids, _ = kmeans((train - mean) / std, codebook_size, iters=20, seed=seed)
    norms = (centroids * centroids).sum(1)

    def assign(features: Sequence[torch.Tensor]) -> list[np.ndarray]:
        codes = []
        for f in features:
            x = (f.float() - mean) / std
            if duration_penalty > 0:
                distances = torch.cdist(x, centroids).square()[None]  # (1, n, K)
                codes.append(penalized_codes(distances, duration_penalty, relative=True)[0].numpy())
            else:
                codes.append(nearest_codes(x, centroids, norms).numpy())
        return codes

    return assign(fit_features), assign(score_features)
