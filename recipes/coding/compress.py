"""``vqtok compress``: items → codes → one entropy-coded file, its rate beside the entropy model's NLL of the codes.

The items are a split of the preset's data (``compress.split``, first ``compress.max_items``) or files
(``compress.input``: a file or a folder; images, or WAV/FLAC); the modality plug-in
(:mod:`modalities.base`) reads them and the tokenizer encodes them. Two entropy models code the codes
(:mod:`priors.code_file`):

- ``prior`` (``--prior DIR``, trained on this tokenizer's codes; another one is refused): its
  sequential pass gives each position's probabilities. A conditional prior's class labels (the data
  set's, or ``compress.label``) go into the payload. Speech codes become rows of the prior's length
  ``T``, each utterance followed by the end code ``K``; a longer utterance is refused.
- ``unigram`` (no prior): per-level code frequencies (add-one smoothed) of ``compress.fit_items``
  training items, which travel in the header; for speech the end code counts once per utterance.

The file (``--out``, default ``<tokenizer>/../<data>_<split>.vqc``) is a small header plus the payload.

Figures: ``file_bytes``, ``header_bytes``, ``payload_bytes``, ``payload_bits``; ``nll_bits`` (the model's
negative log-likelihood of the codes, teacher-forced for a prior, as ``evaluate`` computes it) plus
``label_bits`` (class labels, uniform) is what an ideal coder would spend; ``overhead_percent`` is how
far the payload lies above that; ``bits_per_item`` (whole file per item), ``payload_bits_per_code`` and
``nll_bits_per_code`` (a "code" is a coded position: every grid position; each frame and end code),
``rate_model``; and per unit of data (``bits_per_pixel`` or ``bits_per_second``: the whole file;
``payload_bits_per_<unit>``, ``nll_bits_per_<unit>`` with the labels, ``uniform_bits_per_<unit>`` at
``log2 K`` bits per code), how much data (``pixels``, ``audio_seconds``), speech's ``frames`` and
``padding_nll_bits`` (a prior's NLL of the end codes after each end code: in ``vqtok evaluate``'s
figure, not in the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from modalities.base import CodingItems, ItemCodes, Modality
from priors import CodePrior, load_prior
from priors.code_file import (
    UNIGRAM,
    CodedChunks,
    check_layout,
    code_streams,
    coded_positions,
    counts_digest,
    counts_record,
    encode_levels,
    encode_unigram,
    make_header,
    model_identity,
    resize_rows,
    unigram_counts,
)
from recipes.coding.config import FILE_SUFFIX
from recipes.engine.artifacts import open_tokenizer, prior_tokenizer
from recipes.engine.outputs import check_output_file, is_code_file
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode, setup_runtime
from tokenizers_vq.entropy import CodeFileHeader, write_code_file
from tokenizers_vq.hub import resolve_model
from tokenizers_vq.layout import CodeLayout
from tokenizers_vq.pretrained import matches_identity
from tokenizers_vq.tokenizer import Tokenizer


@dataclass
class RateResult:
    """A rate verb's result: what it wrote (under ``where``, e.g. ``out_dir`` or ``file``) and its figures."""

    where: ClassVar[str] = "out_dir"
    verb: ClassVar[str] = "compress"
    location: str
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {self.where: self.location, **self.figures}

    def format(self) -> str:
        return format_figures(self.to_dict(), title=self.verb)


class CompressResult(RateResult):
    """Where the file went and its size accounting."""

    where = "file"


def open_prior(cfg: Any, device: torch.device, tokenizer_dir: Path) -> tuple[CodePrior, Path]:
    """The prior ``cfg.prior`` in eval mode on ``device``; refused when it was trained on another tokenizer's codes.

    A prior that cannot say which tokenizer it belongs to is taken; the layout checks still apply.
    """
    directory = resolve_model(cfg.prior)  # a folder, or the cached snapshot of a Hub repo id
    if not directory.is_dir():
        raise FileNotFoundError(f"prior directory {cfg.prior} does not exist; train one with `vqtok train-prior`.")
    recorded = prior_tokenizer(directory)
    if recorded is not None and not matches_identity(recorded, tokenizer_dir):
        raise ValueError(
            f"the prior {cfg.prior} was trained on codes of a different tokenizer than {cfg.tokenizer}; pass the "
            "prior trained on this tokenizer's codes (vqtok train-prior on its corpus), or leave out --prior."
        )
    return load_prior(directory, map_location=device).eval(), directory


def class_labels(items: CodingItems, num_classes: int, label: int | None) -> torch.Tensor | None:
    """The labels ``(n,)`` a conditional prior codes (``label`` for all, else each item's own); None if unconditional."""
    if not num_classes:
        return None
    labels = [label if label is not None else own for own in items.labels]
    for i, value in enumerate(labels):
        name = items.names[i] if items.names else f"item {i}"
        if value is None:
            raise ValueError(
                f"the prior is class-conditional ({num_classes} classes) but {name} has no label; pass compress.label=N."
            )
        if not 0 <= value < num_classes:
            raise ValueError(f"the label of {name} is {value}; this prior knows classes 0..{num_classes - 1}.")
    return torch.tensor(labels, dtype=torch.long)


@dataclass
class Coded:
    """Codes coded by one entropy model: the payload and its accounting, what was coded, and the header's part."""

    chunks: CodedChunks
    levels: list[torch.Tensor]  # as coded (sequences: rows as long as the prior's)
    layout: CodeLayout
    model_sha256: str
    chunk_size: int
    extra: dict[str, Any]  # rate_model, and the unigram counts


def with_prior(
    prior: CodePrior,
    prior_dir: Path,
    codes: ItemCodes,
    labels: torch.Tensor | None,
    chunk_size: int,
    items: CodingItems,
) -> Coded:
    """``codes`` of ``items`` range-coded with ``prior``, after checking that it models them (sequences: fitted to
    its rows)."""
    levels, end = codes.levels, codes.end_code
    if end is None:
        check_layout(prior, [tuple(g.shape[1:]) for g in levels], codes.codebook_sizes, "the tokenizer on these items")
    else:
        if prior.layout.ndim != 1:
            raise ValueError(f"sequences need a 1-D prior; this one models grids {prior.layout.shapes}.")
        T = prior.layout.shapes[0][0]
        check_layout(prior, [(T,)] * len(levels), [k + 1 for k in codes.codebook_sizes],
                     f"the tokenizer (K = {end} codes and an end code)")  # fmt: skip
        names = items.names or [f"item {i}" for i in range(len(items))]
        for name, length in zip(names, codes.lengths or [], strict=True):
            if length > T:
                raise ValueError(
                    f"{name} has {length} code frames; the prior models at most {T} per item (the longest of its "
                    "training corpus, plus the end code). Compress it without --prior (code frequencies), or train "
                    "a prior on a corpus with longer items."
                )
        levels = [resize_rows(rows, T, end) for rows in levels]
    coded = encode_levels(prior, levels, labels, chunk_size, end)
    return Coded(coded, levels, prior.layout, model_identity(prior_dir), chunk_size, {"rate_model": "prior"})


def with_frequencies(codes: ItemCodes, fit: ItemCodes, with_end: bool = True) -> Coded:
    """``codes`` range-coded with the per-level code frequencies of ``fit`` (add-one smoothed); sequences with the
    end code as one more symbol, counted once per item (``with_end``), or without it (``rd``'s rate of the frames)."""
    end = codes.end_code if with_end else None
    sizes = [k + 1 for k in codes.codebook_sizes] if end is not None else codes.codebook_sizes
    counts = unigram_counts(code_streams(fit.levels, fit.end_code, with_end), sizes)
    coded = encode_unigram(code_streams(codes.levels, codes.end_code, with_end), counts)
    layout = CodeLayout(shapes=[tuple(g.shape[1:]) for g in codes.levels], codebook_sizes=sizes)
    extra = {"rate_model": UNIGRAM, "unigram_counts": counts_record(counts)}
    return Coded(coded, codes.levels, layout, counts_digest(counts), len(codes.levels[0]), extra)


def header_of(
    tokenizer_dir: Path, coded: Coded, codes: ItemCodes, labels: torch.Tensor | None, extra: dict
) -> CodeFileHeader:
    """The header of a file of ``coded`` codes made with the tokenizer at ``tokenizer_dir``."""
    return make_header(model_identity(tokenizer_dir), coded.model_sha256, coded.layout, coded.levels, labels,
                       coded.chunk_size, {**extra, **coded.extra}, codes.end_code)  # fmt: skip


def uniform_bits(codes: ItemCodes) -> float:
    """The fixed-length size of ``codes``: ``log2 K`` bits per code (sequences: per frame)."""
    end = codes.end_code
    return sum((g.numel() if end is None else int((g != end).sum())) * math.log2(k)
               for g, k in zip(codes.levels, codes.codebook_sizes, strict=True))  # fmt: skip


def rate_figures(
    modality: Modality, items: CodingItems, codes: ItemCodes, coded: Coded, file_bytes: int
) -> dict[str, Any]:
    """The size accounting of a code file of ``file_bytes`` bytes (see the module docstring)."""
    chunks, unit, amount = coded.chunks, modality.rate.unit, items.amount
    payload_bits = 8 * len(chunks.payload)
    ideal = chunks.nll_bits + chunks.label_bits
    positions = coded_positions(coded.levels, codes.end_code)
    figures = {
        "items": len(items),
        "rate_model": coded.extra["rate_model"],
        "file_bytes": file_bytes,
        "header_bytes": file_bytes - len(chunks.payload),
        "payload_bytes": len(chunks.payload),
        "payload_bits": payload_bits,
        "nll_bits": chunks.nll_bits,
        "label_bits": chunks.label_bits,
        "coded_information_bits": chunks.coded_bits,
        "overhead_percent": 100.0 * (payload_bits - ideal) / ideal if ideal > 0 else 0.0,
        "bits_per_item": 8 * file_bytes / len(items),
        "payload_bits_per_code": payload_bits / positions,
        "nll_bits_per_code": chunks.nll_bits / positions,
        "seconds": chunks.seconds,
        modality.rate.amount: amount,
        f"bits_per_{unit}": 8 * file_bytes / amount,
        f"payload_bits_per_{unit}": payload_bits / amount,
        f"nll_bits_per_{unit}": ideal / amount,
        f"uniform_bits_per_{unit}": uniform_bits(codes) / amount,
        "padding_nll_bits": chunks.padding_nll_bits,
    }
    if codes.lengths is not None:
        figures["frames"] = sum(codes.lengths)
    return figures


def fit_codes(modality: Modality, model: Tokenizer, cfg: Any, limit: int | None) -> tuple[ItemCodes, int]:
    """Codes of the first ``limit`` training items (images: a seeded random subset) and how many there are."""
    fit = modality.load_items(model, cfg.data, modality.split_of(cfg.data, "train"), limit, seed=cfg.seed)
    return modality.item_codes(model, fit), len(fit)


def check_out(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing file, unless ``overwrite`` and it is a code file (:mod:`recipes.engine.outputs`)."""
    check_output_file(path, "compress", overwrite=overwrite, recognise=is_code_file, what="a code file (.vqc)")


def run(cfg: Any, *, overwrite: bool = False) -> CompressResult:
    """Compress the configured items with the tokenizer ``cfg.tokenizer`` and the prior ``cfg.prior`` (or code
    frequencies); ``overwrite`` replaces an existing code file at the output path, and nothing else."""
    c = cfg.compress
    if cfg.out:
        check_out(Path(cfg.out).expanduser(), overwrite)
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "compress")
    prior, prior_dir = open_prior(cfg, device, tokenizer_dir) if cfg.prior is not None else (None, None)
    with evaluation_mode(model):
        if c.input is not None:
            items = modality.read_files(model, c.input)
        else:
            items = modality.load_items(model, cfg.data, c.split or modality.split_of(cfg.data, "eval"), c.max_items)
        labels = class_labels(items, prior.layout.num_classes, c.label) if prior is not None else None
        codes = modality.item_codes(model, items)
        if len(codes.levels) > 1 and codes.residual:
            raise ValueError(
                f"compress codes one codebook per position; this tokenizer has {len(codes.levels)} residual levels. "
                "Use a single-codebook tokenizer (model.quantizer=vq)."
            )
        if prior is not None:
            coded = with_prior(prior, prior_dir, codes, labels, c.chunk_size, items)
        else:
            coded = with_frequencies(codes, fit_codes(modality, model, cfg, c.fit_items)[0])
    extra = {"modality": modality.name, **items.header, **({"names": items.names} if items.names else {})}
    header = header_of(tokenizer_dir, coded, codes, labels, extra)
    out = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.resolve().parent / f"{items.stem}{FILE_SUFFIX}"
    check_out(out, overwrite)
    file_bytes = write_code_file(out, header, coded.chunks.payload)
    return CompressResult(str(out), rate_figures(modality, items, codes, coded, file_bytes))
