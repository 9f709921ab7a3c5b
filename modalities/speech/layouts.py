"""How a folder of audio files reads as a speech data set: walking it (through symbolic links), the speaker,
index and label in each file's name or folder, and a corpus CTM matched to the files.

The ``fsdd`` layout is one naming among others: :data:`FSDD_PATTERN` searched in each stem, as
``speaker_from=regex`` searches the user's pattern. :func:`modalities.speech.data.list_utterances` puts
these together.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from modalities.speech.labels import PhoneSegment, read_ctm

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
LAYOUTS = ("auto", "fsdd", "folders")
SPEAKER_SOURCES = ("folder", "prefix", "regex")
FSDD_PATTERN = r"^(?P<label>\d+)_(?P<speaker>[^_]+)_(?P<index>\d+)$"  # FSDD's digit_speaker_index names
_FSDD_NAME = re.compile(FSDD_PATTERN)
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def fsdd_names(files: list[Path]) -> bool:
    """Whether every file's stem follows FSDD's ``digit_speaker_index`` (the ``auto`` layout's test)."""
    return all(_FSDD_NAME.match(p.stem) for p in files)


def speaker_naming(speaker_from: str | None, speaker_pattern: str | None) -> re.Pattern[str] | None:
    """The pattern that finds a speaker in a file's stem for ``data.speaker_from`` (null: the layout's own
    speaker; ``folder``: the folder's name, no pattern), checked.

    ``prefix``: the stem up to the first ``speaker_pattern`` (a separator, ``_`` by default);
    ``regex``: ``speaker_pattern`` itself, a regular expression with a group ``(?P<speaker>...)`` and
    optionally ``(?P<index>\\d+)`` and ``(?P<label>...)``. Raises ``ValueError`` saying what to set.
    """
    if speaker_from is not None and speaker_from not in SPEAKER_SOURCES:
        raise ValueError(f"data.speaker_from must be one of {SPEAKER_SOURCES} or null; got {speaker_from!r}.")
    if speaker_from in (None, "folder"):
        if speaker_pattern is not None:
            raise ValueError(
                f"data.speaker_pattern is read only with data.speaker_from=prefix or regex (it is {speaker_from or 'null'}); "
                "set one of them, or leave the pattern out."
            )
        return None
    if speaker_from == "prefix":
        separator = "_" if speaker_pattern is None else speaker_pattern
        if not separator:
            raise ValueError("data.speaker_pattern is the separator after the speaker's prefix, e.g. '_'; got ''.")
        return re.compile(rf"^(?P<speaker>.+?){re.escape(separator)}")
    if speaker_pattern is None:
        raise ValueError(
            "data.speaker_from=regex needs data.speaker_pattern, a regular expression with a group (?P<speaker>...), "
            r"e.g. '^(?P<speaker>[a-z]+)_(?P<index>\d+)$'."
        )
    try:
        pattern = re.compile(speaker_pattern)
    except re.error as err:
        raise ValueError(f"data.speaker_pattern {speaker_pattern!r} is not a regular expression ({err}).") from err
    if "speaker" not in pattern.groupindex:
        raise ValueError(f"data.speaker_pattern {speaker_pattern!r} needs a named group (?P<speaker>...).")
    return pattern


def audio_files(root: Path) -> list[Path]:
    """The audio files below ``root``, sorted, through symbolic links to folders and files.

    Each real folder is walked once: a link back to a folder already walked (a loop, or a second way to
    the same folder) is skipped. A link's own name is kept in the path (the speaker of ``root/spk -> /x``
    is ``spk``). Broken links are left out.
    """
    seen: set[tuple[int, int]] = set()
    files = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        here = os.stat(folder)
        if (here.st_dev, here.st_ino) in seen:  # reached again through a link: its files are listed already
            subfolders.clear()
            continue
        seen.add((here.st_dev, here.st_ino))
        subfolders.sort()
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
                files.append(path)
    return sorted(files)


def name_parts(path: Path, layout: str, speaker: re.Pattern[str] | None, by_folder: bool) -> dict[str, Any]:
    """Speaker, index and label of an audio file: the folder and the last number in the name, then what the
    layout's pattern and the speaker pattern find in the stem (each later one overriding)."""
    number = _LAST_NUMBER.search(path.stem)
    parts: dict[str, Any] = {"speaker": path.parent.name, "index": number.group(1) if number else None, "label": None}
    for pattern, setting in ((_FSDD_NAME if layout == "fsdd" else None, "layout"), (speaker, "speaker_pattern")):
        if pattern is None:
            continue
        match = pattern.search(path.stem)
        if match is None:
            if setting == "layout":
                raise ValueError(
                    f"{path.name} does not follow the FSDD naming digit_speaker_index; use layout=folders."
                )
            raise ValueError(
                f"{path.name} does not match the speaker pattern {pattern.pattern!r} (data.speaker_from, "
                "data.speaker_pattern); change them, or move the file out of the data folder."
            )
        parts.update({k: v for k, v in match.groupdict().items() if k in parts and v is not None})
    if by_folder:
        parts["speaker"] = path.parent.name
    if parts["index"] is not None and not str(parts["index"]).isdigit():
        raise ValueError(f"{path.name}: the pattern's index group matched {parts['index']!r}, which is not a number.")
    return parts


def corpus_alignments(ctm: Path, files: list[Path], speakers: list[str]) -> dict[Path, tuple[PhoneSegment, ...]]:
    """Each audio file's segments in the corpus CTM ``ctm``, by utterance id: the stem, or ``speaker-stem`` or
    ``speaker_stem`` (Kaldi prefixes utterance ids with the speaker's). A stem that several files share
    matches only by a prefixed id; the bare stem for such files is an error."""
    table = read_ctm(ctm)
    stems: dict[str, int] = {}
    for path in files:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    found = {}
    for path, speaker in zip(files, speakers, strict=True):
        keys = [f"{speaker}-{path.stem}", f"{speaker}_{path.stem}"] + ([path.stem] if stems[path.stem] == 1 else [])
        key = next((k for k in keys if k in table), None)
        if key is None and path.stem in table:  # the bare stem names several files: which one is ambiguous
            raise ValueError(
                f"{ctm} names utterance {path.stem!r}, but {stems[path.stem]} files below the data folder have that "
                f"stem; write its ids as <speaker>-<stem> (e.g. {speaker}-{path.stem})."
            )
        if key is not None:
            found[path] = tuple(table[key])
    if table and not found:
        sample = ", ".join(list(table)[:3])
        raise ValueError(
            f"no utterance in {ctm} (e.g. {sample}) is a file below the data folder (e.g. {files[0].stem}); "
            "CTM utterance ids must be the files' stems (or speaker-stem)."
        )
    return found


def find_ctm(ctm: str | os.PathLike[str], root: Path) -> Path:
    """The corpus CTM named by ``data.ctm``: as given when absolute, else below the data folder ``root``, else
    from the working directory; ``FileNotFoundError`` naming both places otherwise."""
    given = Path(ctm).expanduser()
    candidates = [given] if given.is_absolute() else [root / given, given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"data.ctm {str(ctm)!r} not found (looked at {', '.join(map(str, candidates))}).")
