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

:func:`open_corpus` checks a corpus before a prior sees it: ``meta.json`` against its schema, every file it
names inside the corpus folder, every array readable and as ``meta.json`` describes it (integer codes within
the codebook, one grid per item, the same item count everywhere, offsets that cover the frames). A corpus
that breaks any of these is refused with the file and the mismatch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenizers_vq.corpus_hf import STORAGE, hf_arrays
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
    """Open the corpus at ``directory`` for a prior, after checking it (see the module docstring).

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
    check = _Checker(path, hf_arrays(path, meta) if meta.get("storage") == STORAGE else None)
    levels_meta = check.levels(meta)
    labels = check.array(meta.get("labels", "labels.npy"), "labels", required="labels" in meta)
    if labels is not None:
        check.integers(labels, "labels", ndim=1)
    if meta.get("modality", "image") == "speech":
        return _speech_corpus(check, meta, levels_meta, labels, num_classes, max_length)
    if meta.get("modality", "image") != "image":
        raise check.bad(f"modality {meta.get('modality')!r} (image or speech)")
    levels = []
    for i, lv in enumerate(levels_meta):
        grid = check.array(lv["file"], f"levels[{i}].file")
        check.integers(grid, lv["file"], ndim=None)
        if grid.ndim < 2 or ("shape" in lv and list(grid.shape[1:]) != list(lv["shape"])):
            raise check.mismatch(lv["file"], f"holds an array of shape {grid.shape}, not (items, *grid) with the "
                                 f"grid {lv.get('shape')} of levels[{i}].shape")  # fmt: skip
        check.codes(grid, lv["file"], int(lv["codebook_size"]))
        levels.append(grid)
    n = int(levels[0].shape[0])
    check.counts(meta, {lv["file"]: int(a.shape[0]) for lv, a in zip(levels_meta, levels, strict=True)}, labels)
    names = (meta.get("dataset") or {}).get("class_names") if isinstance(meta.get("dataset"), dict) else None
    classes = num_classes if num_classes is not None else len(names or []) if labels is not None else 0
    if classes and labels is None:
        raise ValueError(f"{role} {path} has no labels, but {classes} classes are asked for (the prior is "
                         "class-conditional); pass a corpus of a labelled split.")  # fmt: skip
    if classes and labels is not None:
        check.codes(labels, meta.get("labels", "labels.npy"), classes, what="labels")
    if n == 0:
        raise check.bad("no items: the corpus is empty")
    return CodeCorpus(path, meta, levels, labels if classes else None, classes)


def _speech_corpus(
    check: _Checker,
    meta: dict[str, Any],
    levels_meta: list[dict[str, Any]],
    labels: np.ndarray | None,
    num_classes: int | None,
    max_length: int | None,
) -> CodeCorpus:
    path = check.directory
    if len(levels_meta) != 1:
        raise ValueError(
            f"{path} holds {len(levels_meta)} residual code levels per frame; the 1-D prior models one codebook. "
            "Tokenize with a single-codebook speech tokenizer (model.quantizer=vq)."
        )
    name = levels_meta[0]["file"]
    end = int(levels_meta[0]["codebook_size"])
    frames = check.array(name, "levels[0].file")
    check.integers(frames, name, ndim=1)
    check.codes(frames, name, end)
    offsets_name = meta.get("offsets", "offsets.npy")
    offsets = np.asarray(check.array(offsets_name, "offsets"))
    check.integers(offsets, offsets_name, ndim=1)
    if offsets.size < 2 or offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != frames.shape[0]:
        raise check.mismatch(offsets_name, f"must rise from 0 to the {frames.shape[0]} frames of {name}, one entry "
                             "per utterance boundary")  # fmt: skip
    lengths = np.diff(offsets)
    check.counts(meta, {offsets_name + " (utterances)": len(lengths)}, labels)
    T = int(max_length if max_length is not None else lengths.max() + 1)  # +1: room for the end code
    rows = np.full((len(lengths), T), end, dtype=np.int64)
    for u, (start, length) in enumerate(zip(offsets[:-1], lengths, strict=True)):
        keep = min(int(length), T)
        rows[u, :keep] = frames[start : start + keep]
    has_labels = labels is not None and len(labels) and int(np.min(labels)) >= 0
    if num_classes is None:
        num_classes = int(np.max(labels)) + 1 if has_labels else 0
    elif has_labels and num_classes:
        check.codes(labels, meta.get("labels", "labels.npy"), num_classes, what="labels")
    labels = np.asarray(labels) if has_labels else None
    return CodeCorpus(path, meta, [rows], labels, num_classes, end_code=end, lengths=lengths)


_SCAN = 1 << 24  # elements read at a time when checking the values of a memory-mapped array


class _Checker:
    """The checks of one corpus folder; every error names the file and what does not match."""

    def __init__(self, directory: Path, arrays: dict[str, np.ndarray] | None = None) -> None:
        self.directory = directory
        self.meta_path = directory / "meta.json"
        self.arrays = arrays  # a datasets corpus: its columns as the arrays the names stand for

    def bad(self, why: str) -> ValueError:
        return ValueError(f"{self.meta_path} is not a valid corpus description: {why}. Tokenize the data again.")

    def mismatch(self, name: str, why: str) -> ValueError:
        return ValueError(f"{self.directory / name} does not match meta.json: it {why}. The corpus is damaged; "
                          "tokenize the data again.")  # fmt: skip

    def levels(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """``meta["levels"]``, checked: one entry per level with a file name, a codebook size and maybe a shape."""
        levels = meta.get("levels")
        if not isinstance(levels, list) or not levels:
            raise self.bad("'levels' must be a non-empty list, one entry per code level")
        for i, lv in enumerate(levels):
            size = lv.get("codebook_size") if isinstance(lv, dict) else None
            if not isinstance(lv, dict) or not isinstance(lv.get("file"), str) or type(size) is not int or size < 1:
                raise self.bad(f"levels[{i}] must hold 'file' (a name) and 'codebook_size' (a positive whole number)")
            shape = lv.get("shape")
            if shape is not None and (not isinstance(shape, list) or not all(type(x) is int for x in shape)):
                raise self.bad(f"levels[{i}].shape must be a list of whole numbers")
        return levels

    def inside(self, name: Any, what: str) -> Path:
        """The file ``name`` (a value of meta.json's ``what``) in the corpus folder; never a path that leads out."""
        if not isinstance(name, str) or not name:
            raise self.bad(f"'{what}' must be a file name inside the corpus folder; got {name!r}")
        path = self.directory / name
        root = self.directory.resolve()
        if root not in path.resolve().parents:
            raise self.bad(f"'{what}' = {name!r} leads outside the corpus folder {self.directory}; a corpus's files "
                           "lie inside it")  # fmt: skip
        return path

    def array(self, name: Any, what: str, required: bool = True) -> np.ndarray | None:
        """The ``.npy`` array ``name`` inside the corpus, memory-mapped; errors name the file."""
        path = self.inside(name, what)
        if self.arrays is not None:  # a datasets corpus: the column of that name
            if name not in self.arrays and required:
                raise self.bad(f"'{what}' = {name!r} is not a column of the dataset")
            return self.arrays.get(name)
        if not path.is_file():
            if not required:
                return None
            raise FileNotFoundError(f"{path} is missing: meta.json names it in '{what}'. The corpus is incomplete; "
                                    "tokenize the data again.")  # fmt: skip
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} cannot be read as a .npy array ({err}); the corpus is damaged: tokenize the data "
                             "again.") from err  # fmt: skip

    def integers(self, array: np.ndarray, name: str, ndim: int | None) -> None:
        if not np.issubdtype(array.dtype, np.integer):
            raise self.mismatch(name, f"holds {array.dtype} values, not whole numbers")
        if ndim is not None and array.ndim != ndim:
            raise self.mismatch(name, f"has {array.ndim} dimensions (shape {array.shape}); a corpus keeps {ndim} there")

    def codes(self, array: np.ndarray, name: str, size: int, what: str = "codes") -> None:
        """Every value of ``array`` in ``0 .. size - 1`` (read in slices, so a large mapped array stays on disk)."""
        flat = array.reshape(-1)
        for start in range(0, flat.shape[0], _SCAN):
            part = np.asarray(flat[start : start + _SCAN])
            lo, hi = int(part.min()), int(part.max())
            if lo < 0 or hi >= size:
                bound = f"codebook_size {size}" if what == "codes" else f"{size} classes"
                raise self.mismatch(name, f"holds {what} from {lo} to {hi}, outside 0..{size - 1} ({bound})")

    def counts(self, meta: dict[str, Any], items: dict[str, int], labels: np.ndarray | None) -> None:
        """The same item count in every array (``name → count``), in the labels and in meta.json's ``count``."""
        if labels is not None:
            items = {**items, str(meta.get("labels", "labels.npy")): int(labels.shape[0])}
        if len(set(items.values())) > 1:
            (first, n), *rest = items.items()
            other, m = next((k, v) for k, v in rest if v != n)
            raise self.mismatch(other, f"holds {m} items but {first} holds {n}")
        count = meta.get("count")
        n = next(iter(items.values()))
        if count is not None and count != n:
            raise self.mismatch(next(iter(items)), f"holds {n} items but meta.json's 'count' says {count}")


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
