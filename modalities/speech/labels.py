"""Time-aligned phone labels: readers of the alignment formats, phone sets, and frame alignment.

Dimension legend: ``n`` code frames.

Formats (each read into :class:`PhoneSegment` lists in seconds, in time order):

- TIMIT ``.phn``: ``start_sample end_sample phone`` at the audio file's own rate;
- Praat ``.TextGrid``: the phone tier's non-empty intervals;
- Kaldi CTM (``.ctm``): ``utterance channel start duration phone [confidence]``, many utterances per file;
- plain segment files (``.lab``, ``.txt``): ``phone start end`` or ``start end phone`` per line in seconds
  (WaveSurfer, Audacity label tracks), or HTK label files (``start end phone`` in 100 ns units).

Stretches that no segment covers (before the first, after the last, between two) carry no phone; segments
out of time order or overlapping are refused, naming the file and line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
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

#: Alignment files looked for beside each audio file (same stem), the first one present taken.
ALIGNMENT_SUFFIXES = (".phn", ".PHN", ".TextGrid", ".textgrid", ".ctm", ".CTM", ".lab", ".LAB", ".txt", ".TXT")
#: Suffixes also used for other things (transcripts): such a file is an alignment only if it reads as segments.
SNIFFED_SUFFIXES = (".lab", ".txt")
#: The formats in words, for messages such as "the utterances need phone labels (...)".
ALIGNMENT_FORMATS = ".phn, .TextGrid, .ctm, or .lab/.txt segments beside the audio, or a corpus CTM in data.ctm"
HTK_UNITS_PER_SECOND = 10_000_000  # HTK label files count time in 100 ns units
_HTK_SMALLEST_END = 100_000  # integer times this large are HTK units: as seconds, a phone file over 27 hours
_TIME_TOLERANCE = 1e-3  # s: rounded times (a CTM's start + duration) overshoot the next start; below any frame hop


@dataclass(frozen=True)
class PhoneSegment:
    """One labelled interval ``[start, end)`` in seconds."""

    start: float
    end: float
    phone: str


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark, as Windows tools write, is not text
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 text file of phone labels ({err}).") from err


class _InOrder:
    """Checks that a file's segments come in time order without overlapping; errors name the file and line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: tuple[int, float, float] | None = None  # line, start, end of the previous segment

    def __call__(self, number: int, start: float, end: float) -> None:
        where = f"{self.path}:{number}"
        if start < 0 or end < start:
            raise ValueError(f"{where}: a segment must have 0 <= start <= end; got {start:g}..{end:g} s.")
        if self.last is not None:
            line, last_start, last_end = self.last
            if start < last_start:
                raise ValueError(
                    f"{where}: the segment at {start:g} s starts before the one on line {line} ({last_start:g} s); "
                    "segments must be in time order: sort the file by start time."
                )
            if start < last_end - _TIME_TOLERANCE:
                raise ValueError(
                    f"{where}: the segment {start:g}..{end:g} s overlaps the one on line {line} "
                    f"({last_start:g}..{last_end:g} s); one phone at a time: fix or remove one of them."
                )
        self.last = (number, start, end)


def read_phn(path: str | os.PathLike[str], sample_rate: int) -> list[PhoneSegment]:
    """Read a TIMIT-style ``.phn`` file (``start_sample end_sample phone`` per line, end exclusive).

    ``sample_rate`` is the rate the sample offsets count in (16000 for TIMIT), not the model's.
    Raises ``ValueError`` naming the file and line for a malformed line, a segment that ends before it starts,
    or one out of time order or overlapping the one before.
    """
    path = Path(path)
    text = _read_text(path)
    in_order = _InOrder(path)
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
        in_order(number, start / sample_rate, end / sample_rate)
        segments.append(PhoneSegment(start / sample_rate, end / sample_rate, parts[2]))
    return segments


# ---- plain segment files: "phone start end" or "start end phone" -----------------------------------------

_LABEL_FIRST, _TIME_FIRST = "phone start end", "start end phone"


def _fields(line: str) -> list[str]:
    # Audacity writes tab-separated "start<TAB>end<TAB>label", and its labels may hold spaces.
    return [f.strip() for f in line.split("\t")] if "\t" in line else line.split()


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _orders(fields: list[str]) -> set[str]:
    """The column orders a segment line fits: times in columns 2-3 (phone first) or 1-2 (phone last)."""
    if len(fields) != 3:
        return set()
    times = [_seconds(f) is not None for f in fields]
    return {
        order for order, fits in ((_LABEL_FIRST, times[1] and times[2]), (_TIME_FIRST, times[0] and times[1])) if fits
    }


def _segment_lines(text: str) -> list[tuple[int, list[str]]]:
    """Numbered fields of the lines that hold segments: blank lines and Audacity's frequency lines (``\\``) left out."""
    lines = enumerate(text.splitlines(), start=1)
    return [(number, _fields(line)) for number, line in lines if line.strip() and not line.startswith("\\")]


def reads_as_segments(path: str | os.PathLike[str]) -> bool:
    """Whether the first line of ``path`` is a segment line (three columns, two of them adjacent times).

    A ``.lab`` or ``.txt`` file beside the audio may be a transcript (Montreal Forced Aligner's ``.lab``,
    a corpus's ``.txt``) rather than an alignment; only one that starts like a segment file counts.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    lines = _segment_lines(head)
    return bool(lines) and bool(_orders(lines[0][1]))


def read_segments(path: str | os.PathLike[str]) -> list[PhoneSegment]:
    """Read a plain segment file: ``phone start end`` or ``start end phone`` per line, times in seconds.

    E.g. WaveSurfer ``.lab`` (``0.12 0.31 ae``), an Audacity label track (``0.12<TAB>0.31<TAB>ae``; its
    ``\\`` frequency lines are skipped), or ``ae 0.12 0.31``. The column order is the one every line
    fits; a file of three numbers per line is ambiguous and refused. ``start end phone`` files whose times
    are all integers reaching :data:`_HTK_SMALLEST_END` or more are HTK label files, in 100 ns units. A
    line with an empty label (an Audacity label without text) marks a stretch without a phone.
    Raises ``ValueError`` naming the file and line for a malformed line, or a segment out of time order
    or overlapping the one before.
    """
    path = Path(path)
    lines = _segment_lines(_read_text(path))
    orders = {_LABEL_FIRST, _TIME_FIRST}
    for number, fields in lines:
        fits = _orders(fields)
        if not fits & orders:
            expected = " or ".join(f"'{o}'" for o in sorted(orders))
            before = " like the lines before" if len(orders) == 1 else ""
            raise ValueError(
                f"{path}:{number}: expected {expected} (times in seconds){before}; got {' '.join(fields)!r}."
            )
        orders &= fits
    if len(orders) > 1 and lines:
        raise ValueError(
            f"{path}: every line is three numbers, so which two are the times is ambiguous; write the phones as "
            "names, not numbers (or convert the file to a CTM)."
        )
    label_first = _LABEL_FIRST in orders
    rows = [(number, f[0], f[1], f[2]) if label_first else (number, f[2], f[0], f[1]) for number, f in lines]
    scale = 1.0
    if not label_first and rows and all(t.lstrip("-").isdigit() for _, _, *ts in rows for t in ts):
        if max(int(end) for *_, end in rows) >= _HTK_SMALLEST_END:
            scale = 1.0 / HTK_UNITS_PER_SECOND
    in_order = _InOrder(path)
    segments = []
    for number, label, start_text, end_text in rows:
        start, end = float(start_text) * scale, float(end_text) * scale
        in_order(number, start, end)
        if label:
            segments.append(PhoneSegment(start, end, label))
    return segments


# ---- Kaldi CTM: "utterance channel start duration phone [confidence]" -----------------------------------


def read_ctm(path: str | os.PathLike[str]) -> dict[str, list[PhoneSegment]]:
    """Read a Kaldi CTM file: the phone segments of each utterance it holds, by utterance id, in file order.

    Lines are ``utterance channel start duration phone [confidence]`` in seconds (``ali-to-phones --ctm-output``,
    ``lattice-align-phones`` with ``nbest-to-ctm``); blank lines and ``;;`` comments are skipped. An utterance's
    lines may be anywhere in the file but must come in time order without overlapping. Raises ``ValueError``
    naming the file and line otherwise, or for a malformed line.
    """
    path = Path(path)
    table: dict[str, list[PhoneSegment]] = {}
    checks: dict[str, _InOrder] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        times = [_seconds(f) for f in fields[2:4]]
        if len(fields) not in (5, 6) or None in times:
            raise ValueError(
                f"{path}:{number}: expected 'utterance channel start duration phone [confidence]' (seconds); "
                f"got {line.strip()!r}."
            )
        utterance, start, duration = fields[0], times[0], times[1]
        assert start is not None and duration is not None, "checked above"
        checks.setdefault(utterance, _InOrder(path))(number, start, start + duration)
        table.setdefault(utterance, []).append(PhoneSegment(start, start + duration, fields[4]))
    return table


def ctm_segments(path: str | os.PathLike[str], utterance: str) -> list[PhoneSegment]:
    """The segments of ``utterance`` in the CTM file beside its audio: its own lines, or all of them when the
    file holds one utterance under another id (none when the file is empty)."""
    table = read_ctm(path)
    if utterance in table:
        return table[utterance]
    if len(table) <= 1:
        return next(iter(table.values()), [])
    held = ", ".join(sorted(table)[:5]) + (", ..." if len(table) > 5 else "")
    raise ValueError(
        f"{path} holds utterances {held} but not {utterance!r}; a CTM beside an audio file names it by the file's stem."
    )


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


def find_alignment(audio: Path, siblings: set[str]) -> Path | None:
    """The alignment file beside ``audio`` (the names in its folder are ``siblings``): the first of
    :data:`ALIGNMENT_SUFFIXES` with the same stem, a ``.lab``/``.txt`` only if it :func:`reads_as_segments`."""
    stem = audio.stem
    for suffix in ALIGNMENT_SUFFIXES:
        if stem + suffix in siblings:
            candidate = audio.with_name(stem + suffix)
            if suffix.lower() not in SNIFFED_SUFFIXES or reads_as_segments(candidate):
                return candidate
    return None


def read_alignment(
    path: str | os.PathLike[str], utterance: str, sample_rate: Callable[[], int], tier: str | None = None
) -> list[PhoneSegment]:
    """The phone segments of ``utterance`` in the alignment file ``path``, read by its suffix.

    ``sample_rate`` gives the audio's rate, asked only for a ``.phn`` (whose offsets count samples);
    ``tier`` picks a TextGrid's phone tier (see :func:`read_textgrid`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".phn":
        return read_phn(path, sample_rate())
    if suffix == ".textgrid":
        return read_textgrid(path, tier)
    if suffix == ".ctm":
        return ctm_segments(path, utterance)
    return read_segments(path)


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
