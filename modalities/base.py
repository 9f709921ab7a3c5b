"""The modality plug-in interface, the table of modalities, and loading any tokenizer by what its folder says it is.

A modality (image, speech) gives the generic recipes what differs between kinds of data: loading a
split of its data, checking that a tokenizer fits it, evaluating, and turning a split into a code
corpus (:class:`CorpusSource`). The recipes are written once over this interface.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tokenizers_vq.hub import resolve_model
from tokenizers_vq.pretrained import read_model_config
from tokenizers_vq.tokenizer import Tokenizer

# modality name → "module:Class" of its plug-in; imported only when used, so `vqtok --help` stays fast.
MODALITIES = {
    "image": "modalities.image.task:ImageModality",
    "speech": "modalities.speech.task:SpeechModality",
    "speech-units": "modalities.speech.units.task:SpeechUnitsModality",
}
# config.json "kind" → the modality whose tokenizer class reads it.
TOKENIZER_KINDS = {"image-tokenizer": "image", "speech-tokenizer": "speech", "speech-units-tokenizer": "speech-units"}


@dataclass
class CorpusSource:
    """A split ready to be encoded into a code corpus in chunks (see :mod:`tokenizers_vq.corpus`).

    ``encode(start, stop)`` gives one chunk's arrays; ``write(tmp, chunks)`` writes the corpus arrays
    (and any files beside them) into the temporary directory and returns the modality's part of
    ``meta.json``; ``result(out, merged)`` the ``tokenize`` figures (their keys are the verb's JSON keys).

    ``encode`` is ``encode_inputs(model, read(start, stop))``, in two parts so that other processes can
    run them (``tokenize --engine ray``): ``read`` reads, decodes and preprocesses items ``[start, stop)``
    into arrays without the model, ``encode_inputs`` turns those into the chunk's arrays with a tokenizer
    it is given. Both must pickle without the model (they close over file lists and sizes, not over it).
    """

    name: str  # the data set's name, for the default output folder
    split: str
    count: int  # items to encode
    identity: dict[str, Any]  # what a resumed run must share with the chunks already written
    encode: Any  # Callable[[int, int], dict[str, np.ndarray]]
    write: Any  # Callable[[Path, Iterator[dict[str, np.ndarray]]], dict[str, Any]]
    result: Any  # Callable[[Path, bool], dict[str, Any]]
    extras: dict[str, Any] = field(default_factory=dict)
    read: Any = None  # Callable[[int, int], dict[str, np.ndarray]]: the model's inputs for items [start, stop)
    encode_inputs: Any = None  # Callable[[Tokenizer, dict[str, np.ndarray]], dict[str, np.ndarray]]


class Modality(Protocol):
    """What a generic recipe needs of a modality; the image and speech packages implement it."""

    name: str
    tokenizer_class: type[Tokenizer]
    reconstruction_figures: str  # the JSON file `reconstruct` writes beside its outputs

    def training_data(self, cfg: Any) -> Any:
        """The training items and the held-out ones evaluated during training, loaded before any process group."""
        ...

    def training(self, model: Tokenizer, cfg: Any, data: Any) -> Any:
        """``model``'s training set, step and evaluation over ``data``: ``len()``, ``step(net, indices) -> StepOutput``,
        ``evaluate()``, ``describe(step, figures)``, ``progress`` and ``result_figures(figures)``."""
        ...

    def prepare(self, model: Tokenizer, cfg: Any) -> Tokenizer:
        """The opened tokenizer with the run's encoding options applied (e.g. speech's duration penalty)."""
        ...

    def corpus_source(self, model: Tokenizer, cfg: Any, split: str) -> CorpusSource:
        """Split ``split`` of ``cfg.data``, ready to be encoded by ``model`` into a corpus."""
        ...

    def evaluate(self, model: Tokenizer, cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``evaluate`` verb's figures on ``cfg``'s split: (what was evaluated, the figures)."""
        ...

    def reconstruct(self, model: Tokenizer, cfg: Any, out: Path) -> dict[str, Any]:
        """Write held-out items beside their reconstructions into ``out``; return the ``reconstruct`` figures."""
        ...

    # The rate verbs (compress, decompress, rd; recipes/coding). ``model`` is in eval mode, without gradients.
    rate: RateTraits  # how its rate–distortion figures are named

    def split_of(self, data: Any, role: str) -> str:
        """The split of the data section ``data`` that plays ``role`` (``"train"`` or ``"eval"``)."""
        ...

    def load_items(
        self, model: Tokenizer, data: Any, split: str, limit: int | None, seed: int | None = None
    ) -> CodingItems:
        """The first ``limit`` items of split ``split`` of ``data`` (with ``seed``, a seeded random subset where
        the modality draws one), checked to fit ``model``."""
        ...

    def read_files(self, model: Tokenizer, path: str) -> CodingItems:
        """The file ``path``, or every file of the folder ``path`` in the modality's formats (sorted), as items."""
        ...

    def item_codes(self, model: Tokenizer, items: CodingItems) -> ItemCodes:
        """The codes of ``items``, as the rate verbs code them."""
        ...

    def check_output(self, model: Tokenizer, options: Any) -> None:
        """Raise ``ValueError`` unless the ``decompress`` section ``options`` asks for outputs ``model`` can write."""
        ...

    def write_outputs(
        self, model: Tokenizer, codes: ItemCodes, stems: list[str], directory: Path, options: Any
    ) -> dict[str, Any]:
        """Decode ``codes`` and write what ``options`` asks for into ``directory`` (one file per item, named by
        ``stems``); returns the ``decompress`` figures they add."""
        ...

    def distortion(self, model: Tokenizer, items: CodingItems, codes: ItemCodes, depth: int | None) -> dict[str, Any]:
        """How far ``model``'s reconstruction of ``items`` from ``codes`` (its first ``depth`` residual levels; None:
        all) lies from them: the figures of ``rate.metrics`` and any others the modality measures."""
        ...

    def describe_model(self, model: Tokenizer, codes: ItemCodes, depth: int | None) -> tuple[str, dict[str, Any]]:
        """A short label of ``model`` at ``depth`` for tables and plots, and figures that describe it."""
        ...

    def codec_points(
        self, model: Tokenizer, items: CodingItems, options: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Classic codecs (``rate.codecs``, swept over ``rate.setting``) on ``items`` as the ``rd`` section
        ``options`` asks: one point per codec and setting (``bits_per_<unit>`` and the distortion figures), and
        the figures that describe the sweep."""
        ...


def get_modality(name: str) -> Modality:
    """The plug-in of modality ``name``; ``ValueError`` naming the known ones."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known modalities: {', '.join(MODALITIES)}.")
    module, _, attr = MODALITIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)()


def tokenizer_modality(directory: str | os.PathLike[str], revision: str | None = None) -> str:
    """The modality of the tokenizer saved in ``directory`` (a folder or a Hub repo id), read from its ``config.json``."""
    kind = read_model_config(resolve_model(directory, revision)).get("kind")
    if kind not in TOKENIZER_KINDS:
        raise ValueError(
            f"{directory} holds a {kind!r}, not a tokenizer ({', '.join(TOKENIZER_KINDS)}); "
            "pass the 'tokenizer' folder that train-tokenizer wrote."
        )
    return TOKENIZER_KINDS[kind]


def load_tokenizer(
    directory: str | os.PathLike[str], map_location: str | torch.device = "cpu", revision: str | None = None
) -> Tokenizer:
    """Load any tokenizer (a folder or a Hub repo id), picking the class from its ``config.json`` kind; eval mode,
    on ``map_location``.

    >>> tok = load_tokenizer("runs/quickstart/tokenizer")   # doctest: +SKIP  (an ImageTokenizer)
    """
    folder = resolve_model(directory, revision)
    return get_modality(tokenizer_modality(folder)).tokenizer_class.from_pretrained(folder, map_location=map_location)


def stack_chunks(chunks: Iterator[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    """Concatenate each key's arrays over ``chunks`` (in order)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for chunk in chunks:
        for k in keys:
            parts[k].append(chunk[k])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# The rate verbs' types


@dataclass(frozen=True)
class RateTraits:
    """How a modality's rate–distortion figures are named, e.g. images: bits per pixel against PSNR and SSIM."""

    item: str  # what one item is ("image"): figures num_<item>s, bits_per_<item>
    unit: str  # what rates are per ("pixel"): bits_per_<unit>
    amount: str  # the figure that says how much data the items are ("pixels", "audio_seconds")
    metrics: tuple[tuple[str, str], ...]  # (figure, plot label) of each distortion measure, the main one first
    codecs: tuple[str, ...]  # the lossy codecs of codec_points, matched at each tokenizer's rate
    setting: str  # what codec_points sweeps ("quality")
    lossless: str | None = None  # a lossless codec among codec_points, drawn as a line


@dataclass
class CodingItems:
    """Items for the rate verbs, from a data split or from files, with what the verbs report of them."""

    data: Any  # the modality's own container: uint8 images (n, c, h, w); a SpeechSplit
    labels: list[int | None]  # each item's class label (None: none known)
    names: list[str] | None  # file names, when the items came from files
    stem: str  # a code file's default name: <data>_<split>, or the input's name
    amount: float  # how much data they are, in the unit of RateTraits.unit (pixels, seconds)
    header: dict[str, Any]  # what a code file keeps to describe them (e.g. image_shape; sample_rate)
    description: dict[str, Any]  # what `rd` reports they are (e.g. dataset, split, num_images)
    title: str  # one line for tables and plots

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ItemCodes:
    """Codes of ``n`` items as the rate verbs code them: one int64 CPU tensor per level.

    Grids (images): ``levels[l]`` is ``(n, *grid_l)``, e.g. ``[(64, 4, 4)]``. Sequences (speech): ``levels[l]`` is
    ``(n, T)``, item ``i``'s ``lengths[i]`` frames then the end code ``K`` up to ``T = max(lengths) + 1``, e.g.
    ``[(2, 52)]``; a residual tokenizer gives one such tensor per level.
    """

    levels: list[torch.Tensor]
    codebook_sizes: list[int]
    lengths: list[int] | None = None  # sequences: the frames of each item
    residual: bool = False  # the levels refine one another (the first d decode alone), not a hierarchy

    @property
    def end_code(self) -> int | None:
        """Sequences: the code after each item's last frame (``K``); None for grids."""
        return self.codebook_sizes[0] if self.lengths is not None else None


def input_files(path: str, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """The file ``path``, or every file of the folder ``path`` with one of ``suffixes`` (sorted)."""
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    elif source.is_file():
        files = [source]
    else:
        raise FileNotFoundError(f"{path} does not exist; pass an {kind} file or a folder of them.")
    if not files:
        raise ValueError(f"{path} holds no {kind} files ({', '.join(suffixes)}).")
    return files
