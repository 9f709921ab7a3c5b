"""Speech from a Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder or a local ``audiofolder``.

``data.name=hf data.root=FOLDER`` reads every row of the dataset in ``FOLDER``: a ``DatasetDict`` saved with
``save_to_disk`` (its splits end to end, in their order), a single saved ``Dataset``, or a folder laid out as
``datasets``' ``audiofolder`` builder reads it (split folders such as ``train/`` and ``test/``, a
``metadata.csv`` or ``metadata.jsonl`` with a ``file_name`` column beside the audio, else the folder names as
labels). ``data.train`` and ``data.eval`` then pick utterances by speaker and by index, as for folders of
files: an utterance's index is its row's position in the dataset (0, 1, ...).

Columns: the audio is ``data.audio_column`` or the dataset's ``Audio`` column; the labels
``data.label_column`` or its ``ClassLabel`` column (none: no labels); the speakers
``data.speaker_column`` or a column named ``speaker`` or ``speaker_id`` (none: one speaker, ``unknown``).

The audio column is read with ``Audio(decode=False)``: the encoded file's bytes (a saved dataset embeds
them) or its path (an audio folder), decoded by :func:`modalities.speech.audio.load_audio` (soundfile), so
TorchCodec, which ``datasets`` decodes with, is not needed. Nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

SPEAKER_COLUMNS = ("speaker", "speaker_id")  # looked for when data.speaker_column is null
UNKNOWN_SPEAKER = "unknown"
_METADATA = ("metadata.csv", "metadata.jsonl")


def is_saved_dataset(root: Path) -> bool:
    return (root / "dataset_dict.json").is_file() or (root / "state.json").is_file()


def _saved(root: Path) -> dict[str, Any]:
    import datasets

    loaded = datasets.load_from_disk(str(root))
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}


def _metadata_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix == ".csv":
            return list(csv.DictReader(f))
        return [json.loads(line) for line in f if line.strip()]


def _audiofolder(root: Path) -> dict[str, Any]:
    """The splits of an audio folder as datasets ``Dataset`` objects with an undecoded ``Audio`` column ``audio``."""
    import datasets
    from datasets.data_files import DataFilesDict, get_data_patterns

    from modalities.speech.data import AUDIO_SUFFIXES

    try:
        found = DataFilesDict.from_patterns(get_data_patterns(str(root)), base_path=str(root))
    except datasets.exceptions.DataFilesNotFoundError as err:
        raise ValueError(f"{root} is neither a saved datasets folder nor an audio folder ({err}).") from err
    splits = {}
    for split, names in found.items():
        files = sorted(Path(p) for p in names if Path(p).suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            continue
        columns: dict[str, list[Any]] = {"audio": [str(p) for p in files]}
        metadata = [Path(p) for p in names if Path(p).name in _METADATA]
        if metadata:  # each file's row, matched by file_name relative to the metadata file's folder
            rows = {(m.parent / r["file_name"]).resolve(): r for m in metadata for r in _metadata_rows(m)}
            missing = [p for p in files if p.resolve() not in rows]
            if missing:
                raise ValueError(f"{missing[0]} has no row in {metadata[0]} (file_name column); add one.")
            keys = [k for k in rows[files[0].resolve()] if k != "file_name"]
            columns.update({k: [rows[p.resolve()].get(k) for p in files] for k in keys})
            features = None
        else:  # as datasets does without metadata: the folder names are the labels
            folders = sorted({p.parent.name for p in files})
            columns["label"] = [folders.index(p.parent.name) for p in files]
            features = datasets.Features({"audio": datasets.Value("string"),
                                          "label": datasets.ClassLabel(names=folders)})  # fmt: skip
        dataset = datasets.Dataset.from_dict(columns, features=features)
        splits[split] = dataset.cast_column("audio", datasets.Audio(decode=False))
    if not splits:
        raise ValueError(f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES)}) and is no saved datasets folder.")
    return splits


def _column(dataset: Any, wanted: str | None, role: str, kind: str | None = None,
            names: tuple[str, ...] = ()) -> str | None:  # fmt: skip
    if wanted is not None:
        if wanted not in dataset.column_names:
            raise ValueError(f"data.{role}_column={wanted!r} is not a column of the dataset; its columns are "
                             f"{dataset.column_names}.")  # fmt: skip
        return wanted
    typed = [name for name, f in dataset.features.items() if kind is not None and type(f).__name__ == kind]
    return next(iter(typed), None) or next((n for n in names if n in dataset.column_names), None)


def _label(value: Any, column: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ValueError(f"labels must be whole numbers (or a ClassLabel column); {column!r} holds {value!r}. Set "
                         "data.label_column to another column, or cast this one to ClassLabel.")  # fmt: skip
    return str(int(value))


def list_hf_utterances(
    root: Path, audio_column: str | None = None, label_column: str | None = None, speaker_column: str | None = None
) -> list[Any]:
    """Every row of the dataset at ``root`` as an :class:`~modalities.speech.data.Utterance` (see the module docstring).

    E.g. a saved ``DatasetDict`` with splits ``train`` (40 rows) and ``test`` (10) gives 50 utterances with
    indices 0..49; each carries its audio's bytes (``Utterance.audio``) or the path of its file.
    """
    import datasets

    from modalities.speech.data import Utterance

    if not root.is_dir():
        raise FileNotFoundError(f"datasets folder {root} does not exist; data.root must be a save_to_disk folder "
                                "or an audio folder.")  # fmt: skip
    splits = _saved(root) if is_saved_dataset(root) else _audiofolder(root)
    utterances: list[Utterance] = []
    for split, dataset in splits.items():
        audio = _column(dataset, audio_column, "audio", "Audio")
        if audio is None:
            raise ValueError(f"the dataset in {root} has no Audio column (columns {dataset.column_names}); set "
                             "data.audio_column.")  # fmt: skip
        label = _column(dataset, label_column, "label", "ClassLabel")
        speaker = _column(dataset, speaker_column, "speaker", names=SPEAKER_COLUMNS)
        dataset = dataset.cast_column(audio, datasets.Audio(decode=False))  # bytes or a path; no TorchCodec
        labels = dataset[label] if label is not None else [None] * len(dataset)
        speakers = dataset[speaker] if speaker is not None else [UNKNOWN_SPEAKER] * len(dataset)
        for row, (value, lab, who) in enumerate(zip(dataset[audio], labels, speakers, strict=True)):
            index = len(utterances)
            name = (value or {}).get("path") or f"{split}-{row}"
            data = (value or {}).get("bytes")
            if data is None and not Path(name).is_file():
                raise ValueError(f"row {row} of split {split!r} in {root} holds no audio (no bytes, and no file at "
                                 f"{name!r}).")  # fmt: skip
            # A row's audio in memory is named by a path into the dataset: FOLDER/split/row-name.
            path = Path(name) if data is None else root / split / f"{row}-{Path(name).name}"
            stem = Path(name).stem or f"{split}-{row}"
            utterances.append(Utterance(path, str(who), stem, index, _label(lab, str(label)), audio=data))
    return utterances
