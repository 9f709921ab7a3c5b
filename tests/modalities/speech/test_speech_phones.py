"""Phone metrics on small hand-made label arrays, alignment of codes to phones, baselines, the confusion PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.speech import (
    AlignedFrames,
    PhoneSegment,
    align,
    confusion_png,
    fit_mapping,
    kmeans_codes,
    mfcc_frames,
    phone_metrics,
    random_codes,
)


def frames(codes: list[int], labels: list[int]) -> AlignedFrames:
    return AlignedFrames(np.array(codes, dtype=np.int64), np.array(labels, dtype=np.int64))


def test_codes_equal_to_phones_score_one() -> None:
    data = frames([0, 1, 2, 2, 1, 0], [0, 1, 2, 2, 1, 0])
    metrics, confusion = phone_metrics(data, data, codebook_size=4, num_phones=3)
    assert metrics.mapping_accuracy == 1.0
    assert metrics.phone_purity == 1.0 and metrics.code_purity == 1.0
    assert metrics.pnmi == pytest.approx(1.0)
    assert metrics.chance_accuracy == pytest.approx(2 / 6)
    assert metrics.code_usage == 0.75  # codes 0, 1, 2 of K = 4
    assert metrics.code_perplexity == pytest.approx(3.0)
    np.testing.assert_array_equal(confusion, np.diag([2, 2, 2]))


def test_constant_codes_score_chance() -> None:
    fit = frames([5] * 6, [0, 0, 0, 1, 1, 2])
    score = frames([5] * 4, [0, 1, 1, 2])
    metrics, _ = phone_metrics(fit, score, codebook_size=8, num_phones=3)
    assert metrics.mapping_accuracy == metrics.chance_accuracy == 0.25  # always phone 0, the fit set's majority
    assert metrics.pnmi == 0.0
    assert metrics.phone_purity == 0.5  # the one code's most frequent phone (1) covers 2 of 4
    assert metrics.code_purity == 1.0  # every phone sits wholly in the one code


def test_hand_computed_example() -> None:
    # code 0 -> phone 0 (2 of 3), code 1 -> phone 1 (2 of 2); code 2 never seen -> majority phone 0
    fit = frames([0, 0, 0, 1, 1], [0, 0, 1, 1, 1])
    assert fit_mapping(fit, 3, 2).tolist() == [0, 1, 1]  # majority of the fit set is phone 1 (3 of 5)
    score = frames([0, 1, 2, 0], [0, 1, 1, 1])
    metrics, confusion = phone_metrics(fit, score, codebook_size=3, num_phones=2)
    assert metrics.mapping_accuracy == 0.75  # predicted 0, 1, 1, 0
    assert metrics.chance_accuracy == 0.75
    np.testing.assert_array_equal(confusion, [[1, 0], [1, 2]])
    # PNMI by hand: p(code, phone) on the scoring set
    joint = np.array([[1, 1], [0, 1], [0, 1]]) / 4
    pc, pp = joint.sum(1), joint.sum(0)
    mi = sum(joint[i, j] * math.log(joint[i, j] / (pc[i] * pp[j])) for i in range(3) for j in range(2) if joint[i, j])
    h = -sum(p * math.log(p) for p in pp)
    assert metrics.pnmi == pytest.approx(mi / h)
    assert metrics.phone_purity == pytest.approx((1 + 1 + 1) / 4)
    assert metrics.code_purity == pytest.approx((1 + 1) / 4)


def test_metric_errors() -> None:
    with pytest.raises(ValueError, match="labelled frames"):
        phone_metrics(frames([], []), frames([0], [0]), 2, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        phone_metrics(frames([0, 7], [0, 0]), frames([0], [0]), 2, 1)


def test_align_pairs_code_frames_with_phones() -> None:
    segments = [[PhoneSegment(0.0, 0.04, "a"), PhoneSegment(0.04, 0.1, "b")], [PhoneSegment(0.0, 0.1, "zz")]]
    codes = [np.array([3, 4, 5, 6, 7, 8]), np.array([1, 1])]
    # 50 frames/s centred at 0.01, 0.03, ...: a a b b b; the 6th centre (0.11) is past the end
    out = align(codes, segments, frame_rate=50.0, first_frame_time=0.01, phones=["a", "b"])
    assert out.codes.tolist() == [3, 4, 5, 6, 7] and out.labels.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="1-D code"):
        align([np.zeros((2, 2))], [[]], 50.0, 0.0, ["a"])


def test_random_codes_sit_at_chance() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=20000)
    fit_codes, score_codes = random_codes([20000, 20000], codebook_size=8, seed=0)
    metrics, _ = phone_metrics(
        frames(fit_codes.tolist(), labels.tolist()), frames(score_codes.tolist(), labels.tolist()), 8, 4
    )
    assert abs(metrics.mapping_accuracy - 0.25) < 0.02 and metrics.pnmi < 0.01


def test_kmeans_on_mfcc_finds_two_tones() -> None:
    t = torch.arange(16000) / 16000
    wave = torch.cat([torch.sin(2 * math.pi * 300 * t), 0.3 * torch.randn(16000)])  # 1 s tone, 1 s noise
    feats = mfcc_frames(wave, 16000, frame_rate=50.0, first_frame_time=0.005, num_frames=100)
    assert feats.shape == (100, 39)
    fit, score = kmeans_codes([feats], [feats], codebook_size=4, seed=0)
    np.testing.assert_array_equal(fit[0], score[0])
    tone, noise = np.bincount(score[0][5:45], minlength=4), np.bincount(score[0][55:95], minlength=4)
    # the tone and the noise fall into clusters of their own (a boundary frame may get a third)
    assert tone.max() >= 35 and noise.max() >= 35 and tone.argmax() != noise.argmax()
    with pytest.raises(ValueError, match="whole number"):
        mfcc_frames(wave, 16000, frame_rate=48.0, first_frame_time=0.0, num_frames=10)


def test_confusion_png(tmp_path: Path) -> None:
    path = confusion_png(np.array([[3, 1], [0, 0]]), ["aa", "pau"], tmp_path / "c.png", title="test")
    image = Image.open(path)
    assert image.format == "PNG" and image.width > 28 and image.height > 28
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        confusion_png(np.zeros((3, 3)), ["a", "b"], tmp_path / "bad.png")


def test_kmeans_standardisation_decides_which_dimension_counts() -> None:
    # Dimensions 0-2: two groups 0.1 apart; dimension 3: noise of deviation 100. Standardised, the
    # groups stand out; raw, the noise dominates the distances and splits the frames at random.
    rng = np.random.default_rng(0)
    groups = np.repeat([0.0, 0.1], 200)[:, None] + 0.001 * rng.standard_normal((400, 3))
    frames = torch.tensor(np.concatenate([groups, 100 * rng.standard_normal((400, 1))], 1))
    split = []
    for standardize in (True, False):
        (codes,), _ = kmeans_codes([frames], [frames], codebook_size=2, seed=0, standardize=standardize)
        split.append(len(set(codes[:200])) == 1 and len(set(codes[200:])) == 1 and codes[0] != codes[-1])
    assert split == [True, False]
