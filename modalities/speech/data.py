"""Speech data sets on disk: utterances found in a folder, their speakers, and their phone labels.

Two layouts are understood, and any folder of WAV/FLAC files fits one of them:

- ``fsdd``: files named ``digit_speaker_index.wav`` (the Free Spoken Digit Dataset), anywhere below the root;
- ``folders``: the speaker is the name of the folder holding the file (``root/<speaker>/<utt>.flac``;
  festival-phones, TIMIT's ``DR1/FCJF0/SA1.WAV``, LibriSpeech's chapters all fit).

``speaker_from`` takes the speaker from elsewhere: ``folder``, ``prefix`` (the file name up to a
separator, ``george_0_12.wav`` → ``george``) or ``regex`` (a named group ``speaker``, and optionally
``index`` and ``label``, searched in the file name). The ``fsdd`` layout is that regex with
:data:`FSDD_PATTERN`. Folders and files reached through symbolic links are followed, each real folder
once (a link back up the tree is not a loop).

Phone labels sit beside the audio with the same stem, in any format of :mod:`modalities.speech.labels`
(the first of ``.phn``, ``.TextGrid``, ``.ctm``, ``.lab``, ``.txt`` present), or come from one CTM for
the whole corpus (``ctm``), matched by utterance id, which then takes precedence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities.speech.audio import audio_sample_rate, load_audio
from modalities.speech.hf import list_hf_utterances
from modalities.speech.labels import PHONE_MAPS, PhoneSegment, apply_phone_map, find_alignment, read_alignment
from modalities.speech.layouts import (
    AUDIO_SUFFIXES,
    LAYOUTS,
    audio_files,
    corpus_alignments,
    find_ctm,
    fsdd_names,
    name_parts,
    speaker_naming,
)
from modalities.speech.tokenizer import SpeechTokenizer
from tokenizers_vq.progress import progress

DATA_ENV = "VQTOK_DATA"


@dataclass(frozen=True)
class Utterance:
    """One audio file and what its name and neighbours say about it (or one row of a ``datasets`` dataset, its
    audio's bytes in ``audio`` and ``path`` naming it inside the dataset: :mod:`modalities.speech.hf`)."""

    path: Path
    speaker: str
    id: str  # the file stem, e.g. "h001" or "7_jackson_32"
    index: int | None  # the number in the name: FSDD's recording index, a Harvard sentence number, ...
    label: str | None = None  # a whole-utterance label when the name carries one (FSDD's digit)
    phones_path: Path | None = None  # the alignment file: beside the audio (.phn, .TextGrid, ...) or the corpus CTM
    audio: bytes | None = field(default=None, repr=False, compare=False)  # the encoded file, read instead of path
    # The phone segments read from a corpus CTM when the listing was made (it is read once, not per utterance).
    segments: tuple[PhoneSegment, ...] | None = field(default=None, repr=False, compare=False)

    def read(self, sample_rate: int | None = None, min_seconds: float = 0.0) -> tuple[torch.Tensor, int]:
        """The utterance's mono waveform ``(t,)`` and its rate (:func:`~modalities.speech.audio.load_audio`)."""
        return load_audio(self.path, sample_rate, min_seconds, data=self.audio)

    def phones(self, phone_map: str | None = None, tier: str | None = None) -> list[PhoneSegment]:
        """The utterance's phone segments in seconds, optionally folded by a named map (``"timit39"``)."""
        if self.phones_path is None:
            raise ValueError(
                f"{self.path} has no phone labels: put a .phn, .TextGrid, .ctm or .lab with the same stem beside it, "
                "or name a corpus CTM in data.ctm."
            )
        if self.segments is not None:
            segments = list(self.segments)
        else:
            segments = read_alignment(self.phones_path, self.id, lambda: audio_sample_rate(self.path), tier)
        if phone_map is not None:
            if phone_map not in PHONE_MAPS:
                raise ValueError(f"unknown phone map {phone_map!r}; known maps: {sorted(PHONE_MAPS)} (or null).")
            segments = apply_phone_map(segments, PHONE_MAPS[phone_map])
        return segments


@dataclass
class Selection:
    """Which utterances of a data set to use: by speaker and by the number in the file name (inclusive)."""

    speakers: list[str] | None = None  # null: every speaker
    min_index: int | None = None  # e.g. 300 with max_index 399 picks festival-phones' h300..h399
    max_index: int | None = None

    def __post_init__(self) -> None:
        if self.min_index is not None and self.max_index is not None and self.min_index > self.max_index:
            raise ValueError(f"Selection needs min_index <= max_index; got {self.min_index} > {self.max_index}.")

    def __call__(self, utterance: Utterance) -> bool:
        if self.speakers is not None and utterance.speaker not in self.speakers:
            return False
        if self.min_index is None and self.max_index is None:
            return True
        if utterance.index is None:
            return False
        lo = self.min_index if self.min_index is not None else utterance.index
        hi = self.max_index if self.max_index is not None else utterance.index
        return lo <= utterance.index <= hi


def find_data_folder(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The audio folder of data set ``name``: ``root`` when given, else ``$VQTOK_DATA/<name>``, else
    ``<checkout>/../shared/data/<name>`` (beside a source checkout). Nothing is downloaded.

    Raises ``FileNotFoundError`` listing the places looked at.
    """
    if name == "hf" and root is None:
        raise FileNotFoundError("data.name=hf needs data.root= a datasets folder (save_to_disk) or an audio folder.")
    if root is not None:
        candidates = [Path(root).expanduser()]
    else:
        env = os.environ.get(DATA_ENV)
        checkout = Path(__file__).resolve().parents[2]
        candidates = ([Path(env) / name] if env else []) + [checkout.parent / "shared" / "data" / name]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"speech data {name!r} not found (looked in {', '.join(map(str, candidates))}); set {DATA_ENV} to the folder "
        "holding it, or pass data.root=PATH."
    )


def list_utterances(
    root: str | os.PathLike[str],
    layout: str = "auto",
    *,
    speaker_from: str | None = None,
    speaker_pattern: str | None = None,
    ctm: str | os.PathLike[str] | None = None,
) -> list[Utterance]:
    """Every audio file below ``root`` as an :class:`Utterance`, sorted by speaker, index and id.

    ``layout`` is ``"fsdd"``, ``"folders"`` or ``"auto"`` (``fsdd`` when every file name fits
    ``digit_speaker_index``). ``speaker_from`` / ``speaker_pattern`` take the speaker from elsewhere
    (:func:`speaker_naming`); ``ctm`` names a CTM of the whole corpus (:func:`find_ctm`). Raises
    ``FileNotFoundError`` for a missing root and ``ValueError`` for a folder without audio, an unknown
    layout, or a file whose name does not fit the layout or pattern.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}.")
    naming = speaker_naming(speaker_from, speaker_pattern)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"speech data folder {root} does not exist; pass the folder that holds the audio.")
    files = audio_files(root)
    if not files:
        raise ValueError(f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES)}).")
    if layout == "auto":
        layout = "fsdd" if fsdd_names(files) else "folders"
    parts = [name_parts(path, layout, naming, speaker_from == "folder") for path in files]
    corpus_ctm = find_ctm(ctm, root) if ctm else None
    corpus = corpus_alignments(corpus_ctm, files, [p["speaker"] for p in parts]) if corpus_ctm else {}
    siblings: dict[Path, set[str]] = {}
    utterances = []
    for path, part in zip(files, parts, strict=True):
        if path.parent not in siblings:  # list each folder once, not once per file in it
            siblings[path.parent] = {p.name for p in path.parent.iterdir()}
        index = int(part["index"]) if part["index"] is not None else None
        if path in corpus:
            phones, segments = corpus_ctm, corpus[path]
        else:
            phones, segments = find_alignment(path, siblings[path.parent]), None
        utterances.append(Utterance(path, part["speaker"], path.stem, index, part["label"], phones, segments=segments))
    return sorted(utterances, key=lambda u: (u.speaker, u.index if u.index is not None else -1, u.id))


def select(utterances: Sequence[Utterance], selection: Selection) -> list[Utterance]:
    """The utterances that ``selection`` keeps, in their order."""
    return [u for u in utterances if selection(u)]


def speakers_of(utterances: Sequence[Utterance]) -> list[str]:
    """The distinct speakers, sorted."""
    return sorted({u.speaker for u in utterances})


@dataclass
class SpeechSplit:
    """Utterances of one split with their waveforms ``(t,)`` at the model's rate."""

    utterances: list[Utterance]
    waveforms: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def has_phones(self) -> bool:
        return bool(self.utterances) and all(u.phones_path is not None for u in self.utterances)


def selection_of(data: Any, split: str) -> Selection:
    """``data.train`` or ``data.eval``."""
    return data.train if split == "train" else data.eval


def data_name(data: Any) -> str:
    """The data set's name: the folder's name when ``data.root`` is set, else ``data.name``."""
    return Path(data.root).name if data.root else data.name


def _index_range(utterances: Sequence[Utterance]) -> str:
    indices = [u.index for u in utterances if u.index is not None]
    unnumbered = len(utterances) - len(indices)
    span = f"{min(indices)}..{max(indices)}" if indices else "no index"
    return span + (f", {unnumbered} without a number in the name" if indices and unnumbered else "")


def describe_found(utterances: Sequence[Utterance], per_speaker: int = 8) -> str:
    """What a listing holds, for messages: each speaker's index range when there are at most ``per_speaker``
    speakers (``george 0..49, jackson 0..49``), else the speakers' names and the overall range."""
    speakers = speakers_of(utterances)
    if len(speakers) <= per_speaker:
        ranges = ", ".join(f"{s} {_index_range([u for u in utterances if u.speaker == s])}" for s in speakers)
        return f"{len(speakers)} speaker(s) with these indices: {ranges}"
    names = ", ".join(speakers[:per_speaker]) + ", ..."
    return f"{len(speakers)} speakers ({names}) with indices {_index_range(utterances)}"


def _empty_selection(root: Path, found: list[Utterance], selection: Selection, setting: str) -> ValueError:
    unknown = [s for s in selection.speakers or [] if s not in speakers_of(found)]
    why = f" (no speaker {', '.join(unknown)} there)" if unknown else ""
    return ValueError(
        f"no utterance in {root} fits {setting} (speakers={selection.speakers}, min_index={selection.min_index}, "
        f"max_index={selection.max_index}){why}; the folder holds {describe_found(found)}; change "
        f"{setting}.speakers, {setting}.min_index or {setting}.max_index to fit."
    )


def find_utterances(
    data: Any, selection: Selection, limit: int | None = None, setting: str | None = None
) -> list[Utterance]:
    """The utterances of ``data`` that ``selection`` keeps (the first ``limit`` of them when given).

    ``setting`` names the selection in messages (``data.train``, ``phones.fit``; by default ``data.train``
    or ``data.eval`` when ``selection`` is one of them). A selection that keeps nothing is a ``ValueError``
    listing the speakers and index ranges the data set does hold.
    """
    root = find_data_folder(data.name, data.root)
    if data.name == "hf":
        found = list_hf_utterances(root, data.audio_column, data.label_column, data.speaker_column)
    else:
        naming = {k: getattr(data, k, None) for k in ("speaker_from", "speaker_pattern", "ctm")}
        found = list_utterances(root, data.layout, **naming)
    utterances = select(found, selection)
    if not utterances:
        named = {id(getattr(data, "train", None)): "data.train", id(getattr(data, "eval", None)): "data.eval"}
        raise _empty_selection(root, found, selection, setting or named.get(id(selection), "the selection"))
    return utterances[:limit] if limit is not None else utterances


def load_split(
    data: Any, selection: Selection, sample_rate: int, limit: int | None = None, min_seconds: float = 0.0
) -> SpeechSplit:
    """Audio of the selected utterances, mono and resampled to ``sample_rate``; an utterance shorter than
    ``min_seconds`` (the tokenizer's ``config.min_seconds``) is refused, naming the file."""
    utterances = find_utterances(data, selection, limit)
    loading = progress(utterances, desc=f"loading {data_name(data)}", unit="utterance")
    return SpeechSplit(utterances, [u.read(sample_rate, min_seconds)[0] for u in loading])


def phone_segments(data: Any, utterances: list[Utterance]) -> list[list[PhoneSegment]]:
    """Phone labels of each utterance, folded by ``data.phone_map``."""
    return [u.phones(data.phone_map, data.textgrid_tier) for u in utterances]


def phone_inventory(*segment_sets: list[list[PhoneSegment]]) -> list[str]:
    """The sorted phones that occur in any of the segment sets."""
    return sorted({s.phone for segments in segment_sets for utt in segments for s in utt})


@torch.no_grad()
def encode_waveforms(tokenizer: SpeechTokenizer, waveforms: list[torch.Tensor]) -> list[np.ndarray]:
    """Codes of each waveform ``(t,)`` at the model's rate: ``(n,)`` arrays, or ``(n, l)`` for residual codes."""
    encoding = progress(waveforms, desc="encoding", unit="utterance")
    return [tokenizer.encode(w, tokenizer.sample_rate).codes[0].cpu().numpy() for w in encoding]
