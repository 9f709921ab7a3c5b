"""ABX error on hand-made items whose answers are known, DTW against a plain reference, seeded triplet sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modalities.speech.abx import (
    PhoneItems,
    abx,
    abx_error,
    angular_frames,
    dtw,
    phone_items,
    sample_triplets,
)
from modalities.speech.labels import PhoneSegment


def items_of(rows: list[tuple[int, int, int]], frames: int = 1) -> PhoneItems:
    """One item per utterance of ``frames`` frames; rows are (context, speaker, phone) ids."""
    rows_ = np.array(rows, dtype=np.int64).reshape(-1, 3)
    n = len(rows_)
    return PhoneItems(
        utterance=np.arange(n),
        start=np.zeros(n, np.int64),
        stop=np.full(n, frames, np.int64),
        phone=rows_[:, 2],
        context=rows_[:, 0],
        speaker=rows_[:, 1],
        phones=[f"p{i}" for i in range(rows_[:, 2].max() + 1)],
        contexts=[(f"c{i}", f"c{i}") for i in range(rows_[:, 0].max() + 1)],
        speakers=[f"s{i}" for i in range(rows_[:, 1].max() + 1)],
    )


def grid(contexts: int = 3, speakers: int = 2, phones: int = 3, tokens: int = 3) -> PhoneItems:
    rows = [(c, s, p) for c in range(contexts) for s in range(speakers) for p in range(phones) for _ in range(tokens)]
    return items_of(rows, frames=2)


def reference_dtw(cost: np.ndarray) -> float:
    """Libri-light's normalised DTW, loop by loop: the best path's cost over its length found by backtracking."""
    n, m = cost.shape
    total = np.zeros((n, m))
    total[0, 0] = cost[0, 0]
    for i in range(1, n):
        total[i, 0] = cost[i, 0] + total[i - 1, 0]
    for j in range(1, m):
        total[0, j] = cost[0, j] + total[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            total[i, j] = cost[i, j] + min(total[i - 1, j], total[i - 1, j - 1], total[i, j - 1])
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = total[i - 1, j], total[i, j - 1], total[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j  # the rest runs along the first row or column
    return total[n - 1, m - 1] / length


def test_dtw_matches_the_reference_on_random_tables() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 8, size=(40, 2))
    cost = rng.random((40, 7, 7))
    cost[:10] = rng.integers(0, 3, size=(10, 7, 7))  # many ties between predecessors
    got = dtw(cost, sizes[:, 0], sizes[:, 1])
    want = [reference_dtw(cost[k, :a, :b]) for k, (a, b) in enumerate(sizes)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_dtw_hand_cases() -> None:
    assert dtw(np.array([[[0.0, 1.0, 2.0]]]), [1], [3]).tolist() == [1.0]  # one row: (0 + 1 + 2) / 3
    diagonal = np.array([[[0.2, 9.0], [9.0, 0.4]]])
    assert dtw(diagonal, [2], [2])[0] == pytest.approx(0.3)  # the diagonal: (0.2 + 0.4) / 2
    assert dtw(np.zeros((0, 3, 3)), [], []).shape == (0,)


def test_angular_frames() -> None:
    unit = angular_frames(np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]]))
    cos = unit @ unit.T
    assert np.arccos(np.clip(cos, -1, 1))[0, 2] / math.pi == pytest.approx(1 - math.acos(0.6) / math.pi)
    assert cos[1, 1] == 1.0 and cos[0, 1] == 0.0  # an all-zero frame: distance 0 to itself, 0.5 to the rest


def test_separable_features_score_zero() -> None:
    items = grid()
    one_hot = [torch.eye(3)[[p, p]] for p in items.phone]  # (2, 3): the phone's own direction, twice
    result = abx(one_hot, items)
    assert result.within.error == 0.0 and result.across.error == 0.0
    assert result.within.cells == 3 * 2 * 3 * 2  # contexts × speakers × ordered phone pairs
    assert result.across.cells == 3 * 2 * 3 * 2  # ... × one other speaker


def test_identical_features_score_one_half() -> None:
    items = grid()
    same = [np.ones((2, 5)) for _ in range(len(items))]
    result = abx(same, items)
    assert result.within.error == 0.5 and result.across.error == 0.5  # every triplet a tie


def test_speaker_features_fail_across_but_not_within() -> None:
    # Frames that encode phone + speaker: within speaker the phone decides; across, the speaker misleads.
    items = grid(contexts=1, speakers=2, phones=2, tokens=2)
    vectors = {(0, 0): [1.0, 0.0], (1, 0): [0.0, 1.0], (0, 1): [0.0, 1.0], (1, 1): [1.0, 0.0]}  # (phone, speaker)
    frames = [np.array([vectors[(int(p), int(s))]] * 2) for p, s in zip(items.phone, items.speaker, strict=True)]
    result = abx(frames, items)
    assert result.within.error == 0.0 and result.across.error == 1.0


def test_cells_are_averaged_before_triplets() -> None:
    # Context 0: 2 tokens of p0 at 90° from each other, p1 between them, so both triplets fail (cell error 1).
    # Context 1: 3 tokens of p0 alike, p1 apart: 6 right triplets (cell error 0). Mean of cells 0.5, of triplets 0.25.
    rows = [(0, 0, 0), (0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 1)]
    h = 1 / math.sqrt(2)
    vectors = [[1, 0], [0, 1], [h, h], [1, 0], [1, 0], [1, 0], [0, 1]]
    items = items_of(rows)
    triplets = sample_triplets(items, "within")
    assert len(triplets) == 2 + 6
    score = abx_error([np.array([v], dtype=float) for v in vectors], items, triplets)
    assert score.error == pytest.approx(0.5) and score.cells == 2


def test_triplets_follow_the_definition() -> None:
    items = grid(contexts=2, speakers=3, phones=3, tokens=3)
    for mode in ("within", "across"):
        t = sample_triplets(items, mode, max_triplets=10**6)
        assert (items.phone[t.a] == items.phone[t.x]).all() and (items.phone[t.a] != items.phone[t.b]).all()
        assert len({*items.context[t.a], *items.context[t.b], *items.context[t.x]}) == 2
        assert (items.context[t.a] == items.context[t.b]).all() and (items.context[t.a] == items.context[t.x]).all()
        assert (items.speaker[t.a] == items.speaker[t.b]).all()
        if mode == "within":
            assert (items.speaker[t.x] == items.speaker[t.a]).all() and (t.a != t.x).all()
            assert len(t) == 2 * 3 * 6 * (3 * 2 * 3)  # cells × |A|(|A|-1)|B|: every triplet when the budget allows
        else:
            assert (items.speaker[t.x] != items.speaker[t.a]).all()
            assert len(t) == 2 * 3 * 6 * 2 * (3 * 3 * 3)
        triples = set(zip(t.a.tolist(), t.b.tolist(), t.x.tolist(), strict=True))
        assert len(triples) == len(t)  # drawn without replacement


def test_sampling_is_seeded_and_bounded() -> None:
    items = grid(contexts=2, speakers=2, phones=3, tokens=4)
    a = sample_triplets(items, "within", max_triplets=100, seed=3)
    b = sample_triplets(items, "within", max_triplets=100, seed=3)
    c = sample_triplets(items, "within", max_triplets=100, seed=4)
    assert len(a) <= 100 and len(a.cells) == 2 * 2 * 6
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    few = sample_triplets(items, "within", max_triplets=5, seed=0)  # fewer triplets than cells: 5 cells, 1 each
    assert len(few) == 5 and len(few.cells) == 5
    features = [np.random.default_rng(int(i)).standard_normal((2, 4)) for i in range(len(items))]
    assert abx_error(features, items, a).error == abx_error(features, items, b).error


def test_phone_items_from_segments() -> None:
    segments = [[PhoneSegment(0.0, 0.1, "pau"), PhoneSegment(0.1, 0.2, "a"), PhoneSegment(0.2, 0.3, "b"),
                 PhoneSegment(0.3, 0.302, "c"), PhoneSegment(0.302, 0.4, "pau")]]  # fmt: skip
    items = phone_items(segments, [4], ["ann"], frame_rate=10.0, first_frame_time=0.05)
    assert items.phones == ["a", "b"]  # edges have no context; "c" holds no frame centre
    assert items.start.tolist() == [1, 2] and items.stop.tolist() == [2, 3]
    assert [items.contexts[c] for c in items.context] == [("pau", "b"), ("a", "c")]
    assert items.speakers == ["ann"] and items.utterance.tolist() == [0, 0]


def test_no_triplets_give_none_and_a_reason() -> None:
    one_speaker = grid(speakers=1)
    result = abx([np.ones((2, 3))] * len(one_speaker), one_speaker)
    assert result.within.error is not None
    assert result.across.error is None and "2 speakers" in (result.across.reason or "")
    lonely = items_of([(0, 0, 0), (1, 0, 1), (1, 1, 0)])  # no context holds two phones of one speaker
    empty = abx([np.ones((1, 3))] * 3, lonely)
    assert empty.within.error is None and "no within-speaker cell" in (empty.within.reason or "")
    assert empty.to_dict() == {"within": None, "across": None}


def test_bad_inputs_are_refused() -> None:
    items = grid(contexts=1, speakers=2, phones=2, tokens=2)
    frames = [np.ones((2, 3))] * len(items)
    triplets = sample_triplets(items, "within")
    with pytest.raises(ValueError, match="mode must be one of"):
        sample_triplets(items, "between")
    with pytest.raises(ValueError, match="max_triplets must be a positive integer"):
        sample_triplets(items, "within", max_triplets=0)
    with pytest.raises(ValueError, match="refer to 8 utterances; got features of 7"):
        abx_error(frames[:-1], items, triplets)
    with pytest.raises(ValueError, match="ends at frame 2 but utterance 0 has 1 frames"):
        abx_error([np.ones((1, 3)), *frames[1:]], items, triplets)
    with pytest.raises(ValueError, match="same dimension"):
        abx_error([np.ones((2, 4)), *frames[1:]], items, triplets)
    with pytest.raises(ValueError, match="NaN or infinite"):
        abx_error([np.full((2, 3), np.nan), *frames[1:]], items, triplets)
    with pytest.raises(ValueError, match=r"numeric \(n, d\) array"):
        abx_error([np.ones(3), *frames[1:]], items, triplets)
    with pytest.raises(ValueError, match="one entry per utterance"):
        phone_items([[]], [1, 2], ["a"], 50.0, 0.01)
    with pytest.raises(ValueError, match="dtw sizes"):
        dtw(np.zeros((1, 2, 2)), [3], [1])
