"""The code corpus: what ``vqtok tokenize`` writes and priors train on, its format, writer helpers and reader.

Dimension legend: ``n`` items (images or utterances), ``h_l``/``w_l`` level ``l``'s grid, ``T`` codes
per utterance after padding, ``N`` code frames of all utterances end to end, ``K`` codebook size.

A corpus directory holds::

    codes_level{l}.npy   images: (n, h_l, w_l); speech: (N,) frames of every utterance end to end
                         (int16 when the codebook fits, else int32)
    offsets.npy          speech: (U + 1,) int64, utterance u's frames are [offsets[u], offsets[u + 1])
    labels.npy           (n,) int64 class labels (-1: none)
    meta.json            format and version, the modality, the tokenizer (its content identity and its
                         path relative to the corpus), the levels, the data set, and modality extras
    config.yaml          the resolved config that made it

Arrays are plain ``.npy`` files, so ``numpy.load(path, mmap_mode="r")`` maps them without reading them.
Image corpora hold fixed grids. Speech corpora hold utterances of different lengths end to end; for a
prior each becomes one row of ``T`` codes followed by an *end* code ``K`` (one past the codebook) up
to ``T``, so the prior also learns where utterances stop. Samples are cut at their first end code.

Corpora of format version 1 recorded the tokenizer by an absolute path and the SHA-256 of its weights
file; they still open (:func:`tokenizer_path`, :func:`tokenizers_vq.pretrained.matches_identity`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenizers_vq.io import atomic_write_json, read_json
from tokenizers_vq.layout import CodeLayout

FORMAT = "tokenizers-vq/code-corpus"
FORMAT_VERSION = 2  # 2: the tokenizer by content identity and a path relative to the corpus
READABLE_VERSIONS = (1, 2)


def code_dtype(codebook_size: int) -> np.dtype:
    """The smallest signed integer type that holds codes ``0 .. codebook_size - 1`` (int16 or int32)."""
    return np.dtype(np.int16) if codebook_size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` into ``path`` (inside a corpus being built under a temporary name)."""
    with open(path, "wb") as f:
        np.save(f, array)


def tokenizer_record(
    tokenizer_dir: str | os.PathLike[str], identity: str, artifact_dir: str | os.PathLike[str]
) -> dict:
    """How an artifact at ``artifact_dir`` names its tokenizer: content identity and a path relative to itself.

    The relative path lets a whole run folder be copied elsewhere and still find its tokenizer.
    """
    rel = os.path.relpath(Path(tokenizer_dir).resolve(), Path(artifact_dir).resolve())
    return {"path": rel, "sha256": identity}


def tokenizer_path(record: dict[str, Any] | None, artifact_dir: str | os.PathLike[str]) -> Path | None:
    """The tokenizer directory an artifact's record names (a relative path is relative to the artifact)."""
    if not isinstance(record, dict) or not record.get("path"):
        return None
    path = Path(str(record["path"])).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(Path(artifact_dir).resolve() / path))


def read_meta(corpus_dir: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a corpus; ``FileNotFoundError`` when the directory is not a complete corpus."""
    path = Path(corpus_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{corpus_dir} is not a code corpus: meta.json is missing.")
    meta = read_json(path, "the corpus")
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or meta.get("format_version") not in READABLE_VERSIONS
    ):
        got = (meta.get("format"), meta.get("format_version")) if isinstance(meta, dict) else (None, None)
        raise ValueError(
            f"{path} is format {got[0]!r} version {got[1]!r}; expected {FORMAT!r} version "
            f"{' or '.join(map(str, READABLE_VERSIONS))}."
        )
    return meta


def write_meta(tmp: Path, meta: dict[str, Any]) -> None:
    """``meta.json`` of a corpus being built in ``tmp``, with the format and version filled in."""
    atomic_write_json(tmp / "meta.json", {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})


@dataclass
class CodeCorpus:
    """A code corpus ready for a prior: ``levels[l]`` ``(n, *grid_l)`` arrays, ``labels`` ``(n,)`` or None."""

    directory: Path
    meta: dict[str, Any]
    levels: list[np.ndarray]
    labels: np.ndarray | None
    num_classes: int
    end_code: int | None = None  # speech: the code that pads an utterance after its last frame
    lengths: np.ndarray | None = None  # speech: frames of each utterance (before padding or cutting)

    @property
    def modality(self) -> str:
        return str(self.meta.get("modality", "image"))

    @property
    def tokenizer_dir(self) -> Path | None:
        """The tokenizer that made this corpus (its recorded path, relative to the corpus when relative)."""
        return tokenizer_path(self.meta.get("tokenizer"), self.directory)

    def __len__(self) -> int:
        return int(self.levels[0].shape[0])

    def layout(self, conditional: bool = True) -> CodeLayout:
        sizes = [int(lv["codebook_size"]) for lv in self.meta["levels"]]
        if self.end_code is not None:
            sizes = [self.end_code + 1]
        return CodeLayout(
            shapes=[tuple(a.shape[1:]) for a in self.levels],
            codebook_sizes=sizes,
            num_classes=self.num_classes if conditional else 0,
        )

    def coded_frames(self, limit: int | None = None) -> float | None:
        """Speech: mean codes per utterance that carry information, frames plus the end code (within the padded
        length), over the first ``limit`` utterances; None for images."""
        if self.lengths is None:
            return None
        T = self.levels[0].shape[1]
        lengths = self.lengths[: len(self) if limit is None else limit]
        return float(np.minimum(lengths + 1, T).mean())

    @property
    def dims_per_item(self) -> int | None:
        """Values per image (``c · h · w``) for an image corpus; None for speech."""
        shape = self.meta.get("image_shape")
        return int(np.prod(shape)) if shape else None

    def batch(
        self, indices: torch.Tensor | np.ndarray, conditional: bool = True
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Codes (one int64 ``(b, *grid)`` tensor per level) and labels of the items at ``indices``."""
        idx = np.asarray(indices)
        levels = [torch.from_numpy(np.asarray(a[idx], dtype=np.int64)) for a in self.levels]
        labels = None
        if conditional and self.num_classes:
            assert self.labels is not None, "a corpus with classes has labels"
            labels = torch.from_numpy(np.asarray(self.labels[idx], dtype=np.int64))
        return levels, labels

    def batches(
        self, batch_size: int, limit: int | None = None, conditional: bool = True
    ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor | None]]:
        """The first ``limit`` items (all when None) in order, ``batch_size`` at a time."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            yield self.batch(np.arange(start, min(start + batch_size, n)), conditional)


def open_corpus(
    directory: str | Path | None, role: str = "corpus", num_classes: int | None = None, max_length: int | None = None
) -> CodeCorpus:
    """Open the corpus at ``directory`` for a prior.

    Args:
        directory: a folder written by ``vqtok tokenize``.
        role: the config key that named it, for messages (``corpus`` or ``eval_corpus``).
        num_classes: the class count to use (an evaluation corpus takes the training corpus's); by
            default the image data set's class count, or ``max(label) + 1`` for labelled speech.
        max_length: speech only: codes per utterance (longer ones are cut); by default the longest.
    """
    if directory is None:
        raise ValueError(f"pass {role}=DIR: a code corpus written by `vqtok tokenize` (codes_level*.npy, meta.json).")
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{role} {directory} does not exist; make one with `vqtok tokenize`.")
    meta = read_meta(path)
    labels_file = path / meta.get("labels", "labels.npy")
    labels = np.load(labels_file, mmap_mode="r") if labels_file.is_file() else None
    if meta.get("modality", "image") == "speech":
        return _speech_corpus(path, meta, labels, num_classes, max_length)
    levels = [np.load(path / lv["file"], mmap_mode="r") for lv in meta["levels"]]
    classes = num_classes if num_classes is not None else len(meta.get("dataset", {}).get("class_names") or [])
    return CodeCorpus(path, meta, levels, labels if classes else None, classes)


def _speech_corpus(
    path: Path, meta: dict[str, Any], labels: np.ndarray | None, num_classes: int | None, max_length: int | None
) -> CodeCorpus:
    if len(meta["levels"]) != 1:
        raise ValueError(
            f"{path} holds {len(meta['levels'])} residual code levels per frame; the 1-D prior models one codebook. "
            "Tokenize with a single-codebook speech tokenizer (model.quantizer=vq)."
        )
    frames = np.load(path / meta["levels"][0]["file"], mmap_mode="r")
    offsets = np.load(path / meta.get("offsets", "offsets.npy"))
    lengths = np.diff(offsets)
    end = int(meta["levels"][0]["codebook_size"])
    T = int(max_length if max_length is not None else lengths.max() + 1)  # +1: room for the end code
    rows = np.full((len(lengths), T), end, dtype=np.int64)
    for u, (start, length) in enumerate(zip(offsets[:-1], lengths, strict=True)):
        keep = min(int(length), T)
        rows[u, :keep] = frames[start : start + keep]
    has_labels = labels is not None and len(labels) and int(np.min(labels)) >= 0
    if num_classes is None:
        num_classes = int(np.max(labels)) + 1 if has_labels else 0
    labels = np.asarray(labels) if has_labels else None
    return CodeCorpus(path, meta, [rows], labels, num_classes, end_code=end, lengths=lengths)


def item_codes(corpus: CodeCorpus, index: int) -> list[np.ndarray]:
    """The codes of item ``index``, one flat int64 array per level (raster order); speech: its frames only."""
    if corpus.lengths is not None:
        row = np.asarray(corpus.levels[0][index], dtype=np.int64)  # (T,), end codes after the frames
        return [row[: min(int(corpus.lengths[index]), row.shape[0])]]
    return [np.asarray(level[index], dtype=np.int64).reshape(-1) for level in corpus.levels]  # (h * w,) each


def code_sequences(corpus: CodeCorpus, limit: int | None = None) -> list[np.ndarray]:
    """Each of the first ``limit`` items' codes as one flat sequence (levels one after another)."""
    n = len(corpus) if limit is None else min(limit, len(corpus))
    return [np.concatenate(item_codes(corpus, i)) for i in range(n)]


def trim_at_end(codes: torch.Tensor, end_code: int) -> list[torch.Tensor]:
    """Speech samples ``(b, T)`` → one ``(t_i,)`` tensor per item, cut before its first end code."""
    out = []
    for row in codes:
        stop = (row == end_code).nonzero()
        out.append(row[: int(stop[0]) if len(stop) else row.shape[0]])
    return out
