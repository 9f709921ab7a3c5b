"""What the report plays: WAV files grouped per utterance, each group's files side by side in a fixed order.

``vqtok reconstruct`` (speech) writes for each utterance::

    <id>_original.wav  <id>_vocoder.wav  <id>_codes.wav  <id>_as_<speaker>.wav ...

and a row per utterance in its ``figures.json`` (``utterance``, ``speaker``, ``seconds``,
``log_mel_distance``, ``stoi``, ...). Those files form one :class:`AudioGroup` per id: the original,
the vocoder ceiling, the reconstruction, then the conversions, with the row's figures. Any other WAV
(a prior's ``sample_*.wav``) is a group of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

# The files of one utterance, by the end of their name: the role and how the page labels it, in page order.
ROLES = (("original", "original"), ("vocoder", "vocoder ceiling"), ("codes", "reconstruction"))
LEGEND = (
    "Per utterance, side by side: the original; the vocoder ceiling (Griffin-Lim of the original's log-mel, the "
    "best this vocoder can do); the reconstruction decoded from the codes; the same codes in other speakers' "
    "voices. Under each, its log-mel spectrogram in dB below its loudest bin."
)
_ROLE_STEM = re.compile(r"^(?P<id>.+)_(?P<role>original|vocoder|codes|as_.+)$")
# Figures of an utterance's row shown in its heading, and their words.
FACTS = (("speaker", ""), ("seconds", " s"), ("log_mel_distance", "log-mel distance "), ("stoi", "STOI "))


@dataclass
class AudioGroup:
    """The WAV files of one utterance (or one lone WAV), in page order, and its row of figures."""

    name: str
    files: list[tuple[str, Path]] = field(default_factory=list)  # (label, file)
    figures: Mapping[str, Any] = field(default_factory=dict)


def _order(role: str) -> tuple[int, str]:
    names = [r for r, _ in ROLES]
    return (names.index(role), "") if role in names else (len(names), role)


def _label(role: str) -> str:
    if role.startswith("as_"):
        return f"as {role[3:]}"
    return dict(ROLES).get(role, role)


def group_wavs(wavs: Sequence[Path], rows: Sequence[Mapping[str, Any]] = ()) -> list[AudioGroup]:
    """``wavs`` as groups: per folder and utterance id (files named ``<id>_<role>.wav``), else one file each.

    ``rows``: figures of the utterances (``utterance`` names the id); within a folder their groups come
    first, in their order, with the row attached; the others follow by name.
    """
    by_id: dict[tuple[Path, str], list[tuple[str, Path]]] = {}
    groups: list[tuple[Path, AudioGroup]] = []
    for wav in sorted(wavs):
        match = _ROLE_STEM.match(wav.stem)
        if match is None:
            groups.append((wav.parent, AudioGroup(wav.stem, [("", wav)])))
        else:
            by_id.setdefault((wav.parent, match["id"]), []).append((match["role"], wav))
    known = {str(r["utterance"]): r for r in rows if "utterance" in r}
    for (folder, name), files in by_id.items():
        files.sort(key=lambda f: _order(f[0]))
        group = AudioGroup(name, [(_label(role), wav) for role, wav in files], known.get(name, {}))
        groups.append((folder, group))
    order = {name: i for i, name in enumerate(known)}
    groups.sort(key=lambda fg: (str(fg[0]), order.get(fg[1].name, len(order)), fg[1].name))
    return [group for _, group in groups]


def describe(group: AudioGroup) -> str:
    """The figures of a group's utterance in a few words: ``spk0, 1.05 s, log-mel distance 1.54, STOI 0.38``."""
    words = []
    for key, word in FACTS:
        value = group.figures.get(key)
        if isinstance(value, float):
            value = f"{value:.3g}"
        if value is not None:
            words.append(f"{value}{word}" if key == "seconds" else f"{word}{value}")
    return ", ".join(words)


def read_wave(path: Path) -> tuple[np.ndarray, int] | None:
    """A WAV as a mono waveform ``(t,)`` and its rate; None for a file that is not readable audio."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (t, c)
    except (sf.SoundFileError, RuntimeError, ValueError, EOFError):
        return None
    return data.mean(axis=1), int(rate)
