"""Time-aligned phone labels: TIMIT ``.phn`` and Praat TextGrid readers, phone sets, and frame alignment.

Dimension legend: ``n`` code frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from praatio import textgrid
from praatio.utilities.errors import PraatioException

#: The 61 TIMIT phones folded to the 39 classes of Lee and Hon (1989); ``q`` (glottal stop) is dropped.
TIMIT_61_TO_39: dict[str, str | None] = {
    **{p: p for p in "iy ih eh ae ah uw uh aa ey ay oy aw ow er l r w y m n ng ch jh dh b d dx g p t k z v f th s hh sh".split()},
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{p: "sil" for p in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
    "q": None,
}  # fmt: skip

#: Phone maps by name, for configs (``phones.phone_map: timit39``).
PHONE_MAPS: dict[str, dict[str, str | None]] = {"timit39": TIMIT_61_TO_39}


@dataclass(frozen=True)
class PhoneSegment:
    """One labelled interval ``[start, end)`` in seconds."""

    start: float
    end: float
    phone: str


def read_phn(path: str | os.PathLike[str], sample_rate: int) -> list[PhoneSegment]:
    """Read a TIMIT-style ``.phn`` file (``start_sample end_sample phone`` per line, end exclusive).

    ``sample_rate`` is the rate the sample offsets count in (16000 for TIMIT), not the model's.
    Raises ``ValueError`` naming the file and line for a malformed line or a segment that ends before it starts.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 text file of phone labels ({err}).") from err
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{number}: expected 'start_sample end_sample phone'; got {line!r}.")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError as err:
            raise ValueError(f"{path}:{number}: sample offsets must be integers; got {line!r}.") from err
        if end < start or start < 0:
            raise ValueError(f"{path}:{number}: a segment must have 0 <= start <= end; got {start}..{end}.")
        segments.append(PhoneSegment(start / sample_rate, end / sample_rate, parts[2]))
    return segments


def read_textgrid(path: str | os.PathLike[str], tier: str | None = None) -> list[PhoneSegment]:
    """Read the phone tier of a Praat TextGrid (with praatio); empty intervals are left out.

    ``tier``: the tier's name; by default the first interval tier whose name contains "phone"
    (as in Montreal Forced Aligner output), else the first interval tier.
    """
    path = Path(path)
    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except (PraatioException, ValueError, IndexError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path} as a Praat TextGrid ({err}).") from err
    interval_tiers = [name for name in grid.tierNames if isinstance(grid.getTier(name), textgrid.IntervalTier)]
    if tier is None:
        named = [name for name in interval_tiers if "phone" in name.lower()]
        if not (named or interval_tiers):
            raise ValueError(f"{path} has no interval tier to read phones from; its tiers are {grid.tierNames}.")
        tier = (named or interval_tiers)[0]
    elif tier not in interval_tiers:
        raise ValueError(f"{path} has no interval tier {tier!r}; its interval tiers are {interval_tiers}.")
    return [
        PhoneSegment(float(e.start), float(e.end), e.label.strip())
        for e in grid.getTier(tier).entries
        if e.label.strip()
    ]


def apply_phone_map(segments: list[PhoneSegment], phone_map: dict[str, str | None]) -> list[PhoneSegment]:
    """Rename phones by ``phone_map``; phones mapped to ``None`` are dropped, unknown ones raise ``ValueError``."""
    out = []
    for seg in segments:
        if seg.phone not in phone_map:
            raise ValueError(
                f"phone {seg.phone!r} is not in the phone map; the map covers {sorted(phone_map)[:8]}... "
                "Use phone_map=null for this phone set, or a map made for it."
            )
        target = phone_map[seg.phone]
        if target is not None:
            out.append(PhoneSegment(seg.start, seg.end, target))
    return out


def frame_labels(
    segments: list[PhoneSegment], num_frames: int, frame_rate: float, first_frame_time: float | None = None
) -> list[str | None]:
    """The phone under each frame's centre: frame ``i`` is centred at ``first_frame_time + i / frame_rate`` s.

    ``first_frame_time`` defaults to ``0.5 / frame_rate`` (frames tile the signal from time 0). A frame
    whose centre lies in no segment (past the end, in a gap, or on a dropped phone) gets ``None``.
    E.g. segments ``[0, 0.1) a``, ``[0.1, 0.3) b`` at 20 frames/s → ``a a b b b b`` for 6 frames.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive; got {frame_rate}.")
    offset = 0.5 / frame_rate if first_frame_time is None else first_frame_time
    centres = offset + np.arange(num_frames) / frame_rate  # (n,)
    labels: list[str | None] = [None] * num_frames
    if not segments:
        return labels
    starts = np.array([s.start for s in segments])
    ends = np.array([s.end for s in segments])
    order = np.argsort(starts, kind="stable")
    # The last segment starting at or before each centre; it covers the centre if it has not ended yet.
    idx = np.searchsorted(starts[order], centres, side="right") - 1
    for i, j in enumerate(idx):
        if j >= 0:
            seg = order[j]
            if centres[i] < ends[seg]:
                labels[i] = segments[seg].phone
    return labels
