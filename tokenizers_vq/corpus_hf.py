"""A code corpus stored as a Hugging Face ``datasets`` dataset (``vqtok tokenize --format hf``), and read back.

Dimension legend: ``n`` items, ``h_l``/``w_l`` level ``l``'s grid, ``n_u`` code frames of utterance ``u``.

The folder is what ``Dataset.save_to_disk`` writes, so ``datasets.load_from_disk(folder)`` opens it:
one row per item with the columns ``id`` (the item's index, or an utterance's id), ``codes_level{l}``
(images: an ``(h_l, w_l)`` grid; speech: the ``n_u`` codes of that level), ``label`` (-1: none) and,
for speech, ``speaker`` (and ``phones``, one phone index per frame, when the utterances had labels).
The corpus description (:mod:`tokenizers_vq.corpus`: tokenizer identity, levels, data set) is the
dataset's ``info.description`` as JSON and, so that our readers find it like any corpus's, also
``meta.json`` beside the dataset's files with ``"storage": "hf"``. Reading gives back exactly the
arrays of the ``.npy`` corpus, so priors see no difference.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

STORAGE = "hf"
_ARROW_INT = {np.dtype(np.int16): "int16", np.dtype(np.int32): "int32", np.dtype(np.int64): "int64"}


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def npy_to_hf(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Turn the ``.npy`` corpus in ``folder`` (being built, ``meta`` its description) into a ``datasets`` dataset in
    the same folder; returns the description to write as its ``meta.json``."""
    import datasets

    levels = meta["levels"]
    speech = meta.get("modality") == "speech"
    labels = _load(folder / meta.get("labels", "labels.npy")).astype(np.int64)
    columns: dict[str, Any] = {}
    features: dict[str, Any] = {}
    if speech:
        offsets = _load(folder / meta.get("offsets", "offsets.npy"))
        rows = [json.loads(line) for line in (folder / "utterances.jsonl").read_text(encoding="utf-8").splitlines()]
        columns["id"] = [str(r["id"]) for r in rows]
        features["id"] = datasets.Value("string")
        for lv in levels:
            frames = _load(folder / lv["file"])
            name = Path(lv["file"]).stem
            columns[name] = [frames[a:b] for a, b in itertools.pairwise(offsets)]
            features[name] = datasets.Sequence(datasets.Value(_ARROW_INT[frames.dtype]))
        speakers = _load(folder / "speakers.npy")
        columns["speaker"] = [meta["speakers"][int(s)] for s in speakers]
        features["speaker"] = datasets.Value("string")
        if (folder / "phones.npy").is_file():
            phones = _load(folder / "phones.npy")
            columns["phones"] = [phones[a:b] for a, b in itertools.pairwise(offsets)]
            features["phones"] = datasets.Sequence(datasets.Value("int16"))
    else:
        columns["id"] = list(range(len(labels)))
        features["id"] = datasets.Value("int64")
        for lv in levels:
            grid = _load(folder / lv["file"])
            name = Path(lv["file"]).stem
            columns[name] = list(grid)
            features[name] = datasets.Array2D(shape=tuple(grid.shape[1:]), dtype=_ARROW_INT[grid.dtype])
    columns["label"] = labels
    features["label"] = datasets.Value("int64")
    hf_meta = {
        **meta,
        "storage": STORAGE,
        "levels": [{**lv, "file": Path(lv["file"]).stem} for lv in levels],
        "labels": "label",
    }
    for key in ("offsets",):
        hf_meta.pop(key, None)
    schema = datasets.Features(features)
    info = datasets.DatasetInfo(description=json.dumps(hf_meta, sort_keys=True), features=schema)
    dataset = datasets.Dataset.from_dict(columns, features=schema, info=info)
    staging = folder / "_dataset"
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the tokenize verb shows its own progress
    try:
        dataset.save_to_disk(str(staging))
    finally:
        if shown:
            datasets.enable_progress_bars()
    for name in [*(lv["file"] for lv in levels), meta.get("labels", "labels.npy"), "offsets.npy", "speakers.npy",
                 "phones.npy", "utterances.jsonl"]:  # fmt: skip
        (folder / name).unlink(missing_ok=True)
    for item in staging.iterdir():
        item.rename(folder / item.name)
    shutil.rmtree(staging)
    return hf_meta


def hf_arrays(folder: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of the ``.npy`` corpus that the dataset in ``folder`` stores, by the names ``meta`` gives them
    (``codes_level{l}``, ``label``; speech also ``offsets.npy``); ``ValueError`` naming the folder when it cannot
    be read."""
    import datasets

    try:
        dataset = datasets.load_from_disk(str(folder)).with_format("numpy")
    except (FileNotFoundError, ValueError, OSError) as err:
        raise ValueError(f"{folder} cannot be read as a datasets corpus ({err}); tokenize the data again.") from err
    arrays: dict[str, np.ndarray] = {"label": np.asarray(dataset["label"], dtype=np.int64)}
    speech = meta.get("modality") == "speech"
    for lv in meta["levels"]:
        column = dataset[lv["file"]]
        if speech:
            parts = [np.asarray(c) for c in column]
            arrays[lv["file"]] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            lengths = np.array([len(p) for p in parts], dtype=np.int64)
            arrays["offsets.npy"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        else:
            arrays[lv["file"]] = np.asarray(column)
    return arrays
