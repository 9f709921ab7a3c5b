"""ABX discriminability of phones in any frame representation (Schatz et al. 2013; ZeroSpeech 2021, Libri-light ABX).

Dimension legend: ``u`` utterances, ``n`` frames of one utterance, ``d`` feature dimension, ``i`` items
(phone segments), ``t`` triplets, ``p`` item pairs, ``a``/``b`` frames of a pair's two items (padded).

Items are the phone segments of a set of utterances, each with its context (the previous and the next
phone) and its speaker; an item's frames are those whose centre lies in the segment. A triplet
(A, B, X) takes A and X of one phone, B of another, all three in the same context; it is right when
X is closer to A than to B, and a tie counts half. The distance between two items is dynamic time
warping over their frames with the angular distance ``arccos(cos) / π`` between frames, the cost of
the best path divided by its length (Libri-light's normalised DTW)::

    per-utterance frames (n, d) ──items──▶ segments (n_i, d) ──DTW, angular──▶ d(X, A), d(X, B)
      ──per cell──▶ share of wrong triplets ──mean over contexts (and X speakers), speakers, phone pairs──▶ error

*Within* speaker, A, B and X come from one speaker (X another token than A); *across* speakers, A
and B come from one speaker and X from another. As in Libri-light's ``eval_ABX``, the error of each
cell (context, A phone, B phone, speaker[, X speaker]) is averaged over contexts and X speakers, then
over speakers, then over the (A phone, B phone) pairs.

Cost: a cell holds up to ``|A| (|A| - 1) |B|`` triplets, so :func:`sample_triplets` draws at most
``max_triplets`` of them, seeded, spread evenly over cells (a cell with fewer takes all of its own).
:func:`abx_error` then runs DTW once per distinct (X, A) and (X, B) pair, at most ``2 t``: time
``O(t · L² · d)`` and memory ``O(batch · L²)`` for items of up to ``L`` frames, batched over pairs
(padded to the longest in a batch) and vectorised over each anti-diagonal of the DTW table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from modalities.speech.labels import PhoneSegment

MODES = ("within", "across")
Frames = np.ndarray | torch.Tensor


@dataclass
class PhoneItems:
    """Phone segments as frame ranges ``[start, stop)`` of their utterance, with phone, context and speaker ids."""

    utterance: np.ndarray  # (i,) int64 index into the per-utterance frame arrays
    start: np.ndarray  # (i,) int64 first frame of the segment
    stop: np.ndarray  # (i,) int64 one past its last frame (stop > start)
    phone: np.ndarray  # (i,) int64 index into ``phones``
    context: np.ndarray  # (i,) int64 index into ``contexts``
    speaker: np.ndarray  # (i,) int64 index into ``speakers``
    phones: list[str]
    contexts: list[tuple[str, str]]  # (previous phone, next phone)
    speakers: list[str]

    def __len__(self) -> int:
        return int(self.phone.shape[0])


def phone_items(
    segments: Sequence[Sequence[PhoneSegment]],
    num_frames: Sequence[int],
    speakers: Sequence[str],
    frame_rate: float,
    first_frame_time: float,
) -> PhoneItems:
    """The ABX items of utterances: every phone segment with a phone on either side and at least one frame.

    ``segments``: each utterance's phone segments; ``num_frames``: its frame count, frame ``k`` centred at
    ``first_frame_time + k / frame_rate`` s (the frames of ``modalities.speech.phones.align``);
    ``speakers``: its speaker. A segment's frames are those whose centre lies in ``[start, end)``; the
    first and last segment of an utterance have no context and are left out, as are segments too short
    to hold a frame centre. E.g. ``pau a b pau`` at 0.1 s each and 10 frames/s → items ``a`` (context
    ``pau``, ``b``) on frame 1 and ``b`` (``a``, ``pau``) on frame 2.
    """
    if not len(segments) == len(num_frames) == len(speakers):
        raise ValueError(
            f"phone_items needs one entry per utterance in segments, num_frames and speakers; got "
            f"{len(segments)}, {len(num_frames)} and {len(speakers)}."
        )
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive; got {frame_rate}.")
    rows: list[tuple[int, int, int, str, tuple[str, str], str]] = []
    for u, (utt, n, speaker) in enumerate(zip(segments, num_frames, speakers, strict=True)):
        ordered = sorted(utt, key=lambda s: s.start)
        centres = first_frame_time + np.arange(int(n)) / frame_rate  # (n,) as frame_labels places them
        starts = np.searchsorted(centres, [s.start for s in ordered], side="left")
        stops = np.searchsorted(centres, [s.end for s in ordered], side="left")
        for k in range(1, len(ordered) - 1):
            if stops[k] > starts[k]:
                context = (ordered[k - 1].phone, ordered[k + 1].phone)
                rows.append((u, int(starts[k]), int(stops[k]), ordered[k].phone, context, str(speaker)))
    phones = sorted({r[3] for r in rows})
    contexts = sorted({r[4] for r in rows})
    speaker_names = sorted({r[5] for r in rows})
    ids = [{name: j for j, name in enumerate(names)} for names in (phones, contexts, speaker_names)]

    def column(values: list) -> np.ndarray:
        return np.array(values, dtype=np.int64).reshape(-1)

    return PhoneItems(
        utterance=column([r[0] for r in rows]),
        start=column([r[1] for r in rows]),
        stop=column([r[2] for r in rows]),
        phone=column([ids[0][r[3]] for r in rows]),
        context=column([ids[1][r[4]] for r in rows]),
        speaker=column([ids[2][r[5]] for r in rows]),
        phones=phones,
        contexts=contexts,
        speakers=speaker_names,
    )


@dataclass
class Triplets:
    """Sampled ABX triplets of one mode, as item indices, and the cell each belongs to."""

    mode: str  # "within" or "across"
    a: np.ndarray  # (t,) int64 items
    b: np.ndarray  # (t,) int64
    x: np.ndarray  # (t,) int64
    cell: np.ndarray  # (t,) int64 index into ``cells``
    cells: np.ndarray  # (c, 5) int64: context, A-B speaker, A phone, B phone, X speaker
    reason: str | None = None  # why there is no triplet, when there is none

    def __len__(self) -> int:
        return int(self.a.shape[0])


def _cells(items: PhoneItems, mode: str) -> tuple[list[tuple[int, int, int, int, int]], list[tuple]]:
    """Every cell of ``mode`` with its groups of items: keys (context, speaker, A, B, X speaker) and (A, X, B)."""
    groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(items.context.tolist(), items.speaker.tolist(), items.phone.tolist(), strict=True)):
        groups[key].append(i)
    by_context_speaker: dict[tuple[int, int], list[int]] = defaultdict(list)
    speakers_of: dict[tuple[int, int], list[int]] = defaultdict(list)  # (context, phone) -> speakers
    for c, s, p in groups:
        by_context_speaker[(c, s)].append(p)
        speakers_of[(c, p)].append(s)
    keys, members = [], []
    for (c, s), phones in sorted(by_context_speaker.items()):
        for pa in phones:
            a = groups[(c, s, pa)]
            xs = [s] if mode == "within" else [sx for sx in speakers_of[(c, pa)] if sx != s]
            for pb in phones:
                if pb == pa:
                    continue
                for sx in xs:
                    if mode == "within" and len(a) < 2:
                        continue  # X must be another token of A's phone
                    keys.append((c, s, pa, pb, sx))
                    members.append((a, groups[(c, sx, pa)], groups[(c, s, pb)]))
    return keys, members


def sample_triplets(items: PhoneItems, mode: str, max_triplets: int = 20000, seed: int = 0) -> Triplets:
    """At most ``max_triplets`` ABX triplets of ``mode`` ("within" or "across"), spread over the cells.

    Every cell gets the same quota ``q`` (the largest that keeps the total within ``max_triplets``),
    drawn without replacement; a cell with fewer than ``q`` triplets gives all of them. With more cells
    than ``max_triplets``, that many cells are drawn and give one triplet each. The same items, mode,
    budget and seed give the same triplets. When there are none, ``reason`` says why.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if isinstance(max_triplets, bool) or not isinstance(max_triplets, int) or max_triplets < 1:
        raise ValueError(f"max_triplets must be a positive integer; got {max_triplets!r}.")
    empty = np.zeros(0, dtype=np.int64)
    if mode == "across" and len(items.speakers) < 2:
        reason = f"across-speaker ABX needs items of 2 speakers or more; these have {len(items.speakers)}"
        return Triplets(mode, empty, empty, empty, empty, np.zeros((0, 5), np.int64), reason)
    keys, members = _cells(items, mode)
    if not keys:
        reason = f"no {mode}-speaker cell: no context holds two phones of one speaker" + (
            " with two tokens of one of them" if mode == "within" else " and one of them from another speaker"
        )
        return Triplets(mode, empty, empty, empty, empty, np.zeros((0, 5), np.int64), reason)
    rng = np.random.default_rng(seed)
    counts = np.array(
        [len(a) * (len(a) - 1 if mode == "within" else len(x)) * len(b) for a, x, b in members], dtype=np.int64
    )
    chosen = np.arange(len(keys))
    if len(keys) > max_triplets:
        chosen = np.sort(rng.choice(len(keys), size=max_triplets, replace=False))
        quota = 1
    else:
        quota = _quota(counts, max_triplets)
    a_out, b_out, x_out, cell_out = [], [], [], []
    for j, k in enumerate(chosen):
        a, x, b = (np.asarray(g, dtype=np.int64) for g in members[k])
        total = int(counts[k])
        flat = np.arange(total) if total <= quota else np.sort(rng.choice(total, size=quota, replace=False))
        # flat index -> (A token, X token, B token); within, X skips A's own token.
        nx = len(a) - 1 if mode == "within" else len(x)
        ia, rest = np.divmod(flat, nx * len(b))
        ix, ib = np.divmod(rest, len(b))
        if mode == "within":
            ix = ix + (ix >= ia)
        a_out.append(a[ia])
        x_out.append(x[ix])
        b_out.append(b[ib])
        cell_out.append(np.full(len(flat), j, dtype=np.int64))
    cells = np.array([keys[k] for k in chosen], dtype=np.int64).reshape(-1, 5)
    return Triplets(mode, *(np.concatenate(v) for v in (a_out, b_out, x_out, cell_out)), cells)


def _quota(counts: np.ndarray, budget: int) -> int:
    """The largest per-cell quota ``q >= 1`` with ``sum(min(counts, q)) <= budget`` (water filling)."""
    ordered = np.sort(counts)
    taken = 0  # triplets of the cells that give all they have
    for k, c in enumerate(ordered):
        left = len(ordered) - k
        if taken + c * left > budget:
            return max(1, (budget - taken) // left)
        taken += int(c)
    return int(ordered[-1])


def angular_frames(frames: Frames) -> np.ndarray:
    """Frames ``(n, d)`` as unit vectors ``(n, d + 1)`` for the angular distance, float64.

    As in Libri-light's ABX, an extra coordinate puts an all-zero frame at a fixed angle from every
    other frame (``cos = 0``, distance 0.5) and at distance 0 from another all-zero frame.
    """
    x = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"frames must be a numeric (n, d) array; got {x.dtype} of shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError("frames hold NaN or infinite values; ABX needs finite features.")
    x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)  # (n, 1)
    null = norm[:, 0] == 0
    unit = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return np.concatenate([unit, null[:, None].astype(np.float64)], axis=1)


def dtw(cost: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """Normalised DTW of a batch of frame-distance tables: ``(p, a, b)`` padded, true sizes ``(p,)`` → ``(p,)``.

    Steps (1, 0), (0, 1) and (1, 1), each cell's cost added once; the best path's total is divided
    by its number of cells. Ties between predecessors go to the diagonal, then to (i, j - 1), as
    Libri-light's backtracking does, so the path length is the one it finds. E.g. a (1, 3) table
    ``[[0, 1, 2]]`` → ``3 / 3 = 1``. Cells past a pair's sizes are ignored.
    """
    p, na, nb = cost.shape
    len_a, len_b = np.asarray(len_a, dtype=np.int64), np.asarray(len_b, dtype=np.int64)
    if len_a.shape != (p,) or len_b.shape != (p,):
        raise ValueError(
            f"dtw needs one size per table: len_a and len_b of shape ({p},); got {len_a.shape}, {len_b.shape}."
        )
    if p and (len_a.min() < 1 or len_b.min() < 1 or len_a.max() > na or len_b.max() > nb):
        raise ValueError(f"dtw sizes must lie in [1, {na}] and [1, {nb}]; got {len_a.tolist()}, {len_b.tolist()}.")
    total = np.full((p, na + 1, nb + 1), np.inf)  # 1-based tables with an infinite border: row 0, column 0
    total[:, 0, 0] = 0.0
    steps = np.zeros((p, na + 1, nb + 1), dtype=np.int64)
    for k in range(2, na + nb + 1):  # anti-diagonal i + j = k of the 1-based table
        i = np.arange(max(1, k - nb), min(na, k - 1) + 1)
        j = k - i
        diag, left, up = total[:, i - 1, j - 1], total[:, i, j - 1], total[:, i - 1, j]  # (p, cells of the diagonal)
        take_diag = (diag <= left) & (diag <= up)
        take_left = ~take_diag & (left <= up)
        best = np.where(take_diag, diag, np.where(take_left, left, up))
        before = np.where(
            take_diag, steps[:, i - 1, j - 1], np.where(take_left, steps[:, i, j - 1], steps[:, i - 1, j])
        )
        total[:, i, j] = best + cost[:, i - 1, j - 1]
        steps[:, i, j] = before + 1
    rows = np.arange(p)
    return total[rows, len_a, len_b] / steps[rows, len_a, len_b]


def _pair_distances(
    frames: np.ndarray, first: np.ndarray, size: np.ndarray, pairs: np.ndarray, max_cells: int = 1 << 21
) -> np.ndarray:
    """DTW distances ``(p,)`` of item pairs ``(p, 2)``; item ``i`` is ``frames[first[i] : first[i] + size[i]]``."""
    out = np.zeros(len(pairs))
    if not len(pairs):
        return out
    sa, sb = size[pairs[:, 0]], size[pairs[:, 1]]
    order = np.lexsort((sb, sa))  # similar sizes together: little padding
    start = 0
    while start < len(order):
        na, nb = int(sa[order[start]]), int(sb[order[start]])
        stop = start + 1
        while stop < len(order):  # grow the batch while its padded tables stay under max_cells
            na2, nb2 = max(na, int(sa[order[stop]])), max(nb, int(sb[order[stop]]))
            if (stop - start + 1) * na2 * nb2 > max_cells:
                break
            na, nb, stop = na2, nb2, stop + 1
        batch = order[start:stop]
        index_a = first[pairs[batch, 0]][:, None] + np.minimum(np.arange(na)[None], sa[batch][:, None] - 1)
        index_b = first[pairs[batch, 1]][:, None] + np.minimum(np.arange(nb)[None], sb[batch][:, None] - 1)
        cos = np.einsum("pad,pbd->pab", frames[index_a], frames[index_b])  # (p, a, b); padding repeats a frame
        out[batch] = dtw(np.arccos(np.clip(cos, -1.0, 1.0)) / math.pi, sa[batch], sb[batch])
        start = stop
    return out


@dataclass
class AbxScore:
    """ABX error of one representation in one mode: ``error`` in [0, 1] (0.5: chance), or None and why."""

    error: float | None
    triplets: int
    cells: int
    reason: str | None = None


def abx_error(features: Sequence[Frames], items: PhoneItems, triplets: Triplets) -> AbxScore:
    """The ABX error of per-utterance frames ``(n, d)`` on sampled ``triplets`` of ``items`` (see the module).

    ``features[u]`` holds the frames of utterance ``u`` that ``items`` index, e.g. encoder outputs
    ``(n, 64)``, MFCC ``(n, 39)`` or one codebook vector per code; any ``d`` works, one per call.
    E.g. features that are one fixed vector per phone give error 0; the same vector everywhere, 0.5.
    """
    if len(items) and int(items.utterance.max()) >= len(features):
        raise ValueError(
            f"the items refer to {int(items.utterance.max()) + 1} utterances; got features of {len(features)}."
        )
    unit = [angular_frames(f) for f in features]
    dims = {u.shape[1] for u in unit}
    if len(dims) > 1:
        raise ValueError(f"every utterance's frames need the same dimension; got {sorted(d - 1 for d in dims)}.")
    lengths = np.array([u.shape[0] for u in unit], dtype=np.int64)
    if len(items) and (items.stop > lengths[items.utterance]).any():
        bad = int(np.argmax(items.stop > lengths[items.utterance]))
        raise ValueError(
            f"item {bad} ends at frame {int(items.stop[bad])} but utterance {int(items.utterance[bad])} has "
            f"{int(lengths[items.utterance[bad]])} frames; build the items with these features' frame counts."
        )
    if not len(triplets):
        return AbxScore(None, 0, 0, triplets.reason or f"no {triplets.mode}-speaker triplet")
    frames = np.concatenate(unit)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = offsets[items.utterance] + items.start
    size = items.stop - items.start
    pairs = np.concatenate([np.stack([triplets.x, triplets.a], 1), np.stack([triplets.x, triplets.b], 1)])
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)  # DTW once per distinct pair
    distance = _pair_distances(frames, first, size, unique)[inverse.reshape(-1)]
    d_xa, d_xb = distance[: len(triplets)], distance[len(triplets) :]
    wrong = (d_xa > d_xb) + 0.5 * (d_xa == d_xb)  # (t,) a tie counts half
    return AbxScore(_average(triplets, wrong), len(triplets), len(triplets.cells))


def _average(triplets: Triplets, wrong: np.ndarray) -> float:
    """Libri-light's averaging: cell errors → mean over contexts and X speakers → over speakers → over phone pairs."""
    cell_error = np.bincount(triplets.cell, wrong, len(triplets.cells)) / np.bincount(
        triplets.cell, None, len(triplets.cells)
    )
    level = triplets.cells[:, [1, 2, 3]]  # speaker, A phone, B phone
    for keep in ([1, 2], []):  # (speaker, A, B) → (A, B) → all
        keys, group = np.unique(level, axis=0, return_inverse=True)
        cell_error = np.bincount(group.reshape(-1), cell_error) / np.bincount(group.reshape(-1))
        level = keys[:, keep] if keep else np.zeros((len(keys), 1), dtype=np.int64)
    return float(cell_error.mean())


@dataclass
class AbxResult:
    """ABX error within and across speakers of one representation."""

    within: AbxScore
    across: AbxScore

    def to_dict(self) -> dict[str, float | None]:
        return {"within": self.within.error, "across": self.across.error}


def abx(features: Sequence[Frames], items: PhoneItems, max_triplets: int = 20000, seed: int = 0) -> AbxResult:
    """Within- and across-speaker ABX error of per-utterance frames ``(n, d)`` on ``items`` (see the module).

    To score several representations on the same triplets, call :func:`sample_triplets` once per mode
    and :func:`abx_error` per representation; this is that for one representation.
    """
    within, across = (sample_triplets(items, mode, max_triplets, seed) for mode in MODES)
    return AbxResult(abx_error(features, items, within), abx_error(features, items, across))
