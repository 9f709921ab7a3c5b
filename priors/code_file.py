"""The payload and header of a code file: items' codes range-coded in chunks with a prior, or with code frequencies.

Dimension legend: ``n`` items, ``b`` items in a chunk, ``*grid_l`` level ``l``'s grid, ``T`` positions per
row (sequences), ``K`` a level's codebook size.

A ``.vqc`` file (format: :mod:`tokenizers_vq.entropy`) codes the codes of ``n`` items with one of two
entropy models:

- a prior: ``chunk_size`` items at a time, each chunk one sequential pass of the prior
  (:func:`priors.coding.encode_codes`), class labels of a conditional prior first;
- code frequencies ("unigram"): one fixed table per level, add-one smoothed counts of training codes,
  which travel in the header (``extra["unigram_counts"]``) so that decoding needs only the tokenizer.

Codes come as one int64 tensor per level: ``(n, *grid_l)`` grids (images), or for sequences (speech)
rows ``(n, T)``, each item's frames followed by the *end code* ``K`` (the code-corpus convention of
:mod:`tokenizers_vq.corpus`); nothing after an item's end code is stored.

The header names the tokenizer and the entropy model by :func:`model_digest` (the SHA-256 of their
``config.json`` and ``model.safetensors``) or, for code frequencies, :func:`counts_digest`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from priors.base import CodePrior
from priors.coding import decode_codes, encode_codes, past_end_code
from tokenizers_vq.entropy import CodeDecoder, CodeEncoder, CodeFileHeader, codes_digest
from tokenizers_vq.io import sha256_file
from tokenizers_vq.layout import CodeLayout

LN2 = math.log(2.0)
_IDENTITY_FILES = ("config.json", "model.safetensors")  # what a tokenizer or prior is: its config and weights
UNIGRAM = "unigram"  # extra["rate_model"] of a file coded with code frequencies; "prior" otherwise
MAX_SIDE = 65535  # a grid side (a row's length) is a u16 in the header
_SYMBOLS = 65536  # symbols handed to the coder at once with fixed tables (their (b, K) table is materialised)


@dataclass
class CodedChunks:
    """A payload and its accounting (bits over all items)."""

    payload: bytes
    coded_bits: float  # sum of -log2 p under the tables the coder used (sequential pass), labels included
    nll_bits: float  # the entropy model's NLL of the coded positions (a prior: its teacher-forced forward pass)
    label_bits: float  # the class labels' share (log2 C per item for a conditional prior)
    seconds: float
    padding_nll_bits: float = 0.0  # sequences: a prior's NLL of the positions after each end code (not stored)


def model_digest(directory: str | Path) -> str:
    """Hex SHA-256 naming a model directory in a code file: the hashes of its ``config.json`` and ``model.safetensors``."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for name in _IDENTITY_FILES:
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a model directory: {name} is missing.")
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def check_layout(prior: CodePrior, shapes: list[tuple[int, ...]], sizes: list[int], what: str) -> None:
    """Raise ``ValueError`` unless ``prior`` models codes of these grid ``shapes`` and codebook ``sizes``."""
    layout = prior.layout
    if [tuple(s) for s in shapes] != layout.shapes or list(sizes) != layout.codebook_sizes:
        raise ValueError(
            f"the prior models codes of grids {layout.shapes} with codebooks {layout.codebook_sizes}, but {what} "
            f"has grids {[tuple(s) for s in shapes]} with codebooks {list(sizes)}. "
            "Pass the prior that was trained on this tokenizer's codes."
        )


def chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def encode_levels(
    prior: CodePrior, levels: list[torch.Tensor], labels: torch.Tensor | None, chunk_size: int, end_code: int | None
) -> CodedChunks:
    """Range-code codes (one ``(n, *grid_l)`` tensor per level) with ``prior``, ``chunk_size`` items at a time."""
    encoder = CodeEncoder()
    nll = padding = 0.0
    start = time.perf_counter()
    for part in chunks(levels[0].shape[0], chunk_size):
        grids = [g[part] for g in levels]
        chunk_labels = None if labels is None else labels[part]
        encode_codes(prior, grids, chunk_labels, encoder, end_code)
        with torch.no_grad():
            bits = prior(grids, chunk_labels).nll.double().cpu().numpy() / LN2  # (b, n)
        skipped = past_end_code([g.flatten(1).cpu() for g in grids], end_code) if end_code is not None else False
        nll += float(np.where(skipped, 0.0, bits).sum())
        padding += float(np.where(skipped, bits, 0.0).sum())
    seconds = time.perf_counter() - start
    label_bits = 0.0 if labels is None else labels.numel() * math.log2(prior.layout.num_classes)
    return CodedChunks(encoder.finish(), encoder.information_bits, nll, label_bits, seconds, padding)


def decode_levels(
    prior: CodePrior, header: CodeFileHeader, payload: bytes
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Decode every chunk of a prior-coded payload; checks the result against the codes digest in the header."""
    decoder = CodeDecoder(payload)
    parts = [decode_codes(prior, part.stop - part.start, decoder, header.end_code)
             for part in chunks(header.num_items, header.chunk_size)]  # fmt: skip
    decoder.finish()
    levels = [torch.cat([p[0][lvl] for p in parts]) for lvl in range(len(header.shapes))]
    labels = torch.cat([p[1] for p in parts]) if prior.layout.num_classes else None
    check_digest(header, levels, labels, "the prior computed different probabilities here")
    return levels, labels


def check_digest(header: CodeFileHeader, levels: list[torch.Tensor], labels: torch.Tensor | None, why: str) -> None:
    """Raise ``ValueError`` unless the decoded codes are the ones the header's digest names."""
    if codes_digest(levels, labels) != header.codes_digest:
        raise ValueError(
            f"the decoded codes do not match the codes that were compressed (digest mismatch): {why} "
            "(another library version, device or thread count), or the file is damaged."
        )


def make_header(
    tokenizer_digest: str,
    model_sha256: str,
    layout: CodeLayout,
    levels: list[torch.Tensor],
    labels: torch.Tensor | None,
    chunk_size: int,
    extra: dict,
    end_code: int | None = None,
) -> CodeFileHeader:
    """The header of a code file holding ``levels`` of ``layout``, coded by the entropy model ``model_sha256``."""
    if any(side > MAX_SIDE for shape in layout.shapes for side in shape):
        raise ValueError(f"a code file holds grids (rows) of at most {MAX_SIDE} codes a side; got {layout.shapes}.")
    return CodeFileHeader(
        tokenizer_sha256=tokenizer_digest,
        model_sha256=model_sha256,
        shapes=list(layout.shapes),
        codebook_sizes=list(layout.codebook_sizes),
        num_items=int(levels[0].shape[0]),
        chunk_size=chunk_size,
        num_classes=layout.num_classes,
        end_code=end_code,
        extra=extra,
        codes_digest=codes_digest(levels, labels),
    )


# ---------------------------------------------------------------------------------------------
# Sequences: rows of frames, each followed by the end code


def resize_rows(rows: torch.Tensor, length: int, end_code: int) -> torch.Tensor:
    """Rows ``(n, T)`` cut or padded with ``end_code`` to ``(n, length)``; cutting drops only end codes."""
    if length <= rows.shape[1]:
        assert (rows[:, length:] == end_code).all(), "only end codes may be cut from a row"
        return rows[:, :length].contiguous()
    return torch.cat([rows, rows.new_full((rows.shape[0], length - rows.shape[1]), end_code)], dim=1)


def coded_positions(levels: list[torch.Tensor], end_code: int | None) -> int:
    """How many positions a file codes: every one of fixed grids; of rows, the frames and each end code in them."""
    if end_code is None:
        return sum(g[0].numel() * g.shape[0] for g in levels)
    return sum(int((g != end_code).sum()) + int((g == end_code).any(dim=1).sum()) for g in levels)


def code_streams(levels: list[torch.Tensor], end_code: int | None, with_end: bool = True) -> list[torch.Tensor]:
    """Per level, the codes a unigram model codes, in order: all of a grid; of each row, its frames and
    (``with_end``) its end code."""
    if end_code is None:
        return [g.reshape(-1) for g in levels]
    streams = []
    for rows in levels:
        parts = []
        for row in rows:
            frames = row[row != end_code]
            parts.append(torch.cat([frames, row.new_tensor([end_code])]) if with_end else frames)
        streams.append(torch.cat(parts) if parts else rows.new_zeros(0))
    return streams


# ---------------------------------------------------------------------------------------------
# Code frequencies


def unigram_counts(streams: list[torch.Tensor], sizes: list[int]) -> list[np.ndarray]:
    """Per-level code counts plus one (add-one smoothing), int64: what :func:`table_of` normalises."""
    return [np.bincount(s.numpy().astype(np.int64), minlength=k) + 1 for s, k in zip(streams, sizes, strict=True)]


def table_of(counts: np.ndarray | list[int]) -> np.ndarray:
    """Counts → a float64 probability table; the same counts give the same table in every bit (what decoding needs)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def counts_digest(counts: list[np.ndarray]) -> str:
    """Hex SHA-256 naming a code-frequency model: its counts as little-endian int64, level after level."""
    return hashlib.sha256(b"".join(np.ascontiguousarray(c, dtype="<i8").tobytes() for c in counts)).hexdigest()


def counts_record(counts: list[np.ndarray]) -> list:
    """``extra["unigram_counts"]``: one level's counts as a list (as speech files have always held them), or a list
    per level."""
    return counts[0].tolist() if len(counts) == 1 else [c.tolist() for c in counts]


def recorded_counts(header: CodeFileHeader) -> list[np.ndarray]:
    """The counts a unigram-coded file carries, one array per level (the inverse of :func:`counts_record`)."""
    counts = header.extra["unigram_counts"]
    per_level = [counts] if counts and not isinstance(counts[0], list) else counts
    return [np.asarray(c, dtype=np.int64) for c in per_level]


def encode_unigram(streams: list[torch.Tensor], counts: list[np.ndarray]) -> CodedChunks:
    """Range-code each level's stream with the fixed table of its ``counts``: real bytes and their ideal length."""
    start = time.perf_counter()
    encoder = CodeEncoder()
    for stream, table in zip(streams, map(table_of, counts), strict=True):
        for part in chunks(stream.numel(), _SYMBOLS):  # the coder takes a (b, K) table: bounded memory
            encoder.encode(stream[part].numpy(), np.broadcast_to(table, (part.stop - part.start, table.size)))
    bits = encoder.information_bits
    return CodedChunks(encoder.finish(), bits, bits, 0.0, time.perf_counter() - start)


def decode_unigram(header: CodeFileHeader, payload: bytes) -> list[torch.Tensor]:
    """The levels of a file coded with the code frequencies its header carries (see :func:`encode_unigram`)."""
    decoder = CodeDecoder(payload)
    levels = []
    for shape, counts in zip(header.shapes, recorded_counts(header), strict=True):
        table = table_of(counts)[None]  # (1, K)
        if header.end_code is None:
            size = header.num_items * math.prod(shape)
            flat = [decoder.decode(np.broadcast_to(table, (p.stop - p.start, table.shape[1])))
                    for p in chunks(size, _SYMBOLS)]  # fmt: skip
            codes = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int64)
            levels.append(torch.from_numpy(codes).reshape(header.num_items, *shape))
            continue
        (T,) = shape
        rows = torch.full((header.num_items, T), header.end_code, dtype=torch.long)
        for row in rows:
            for position in range(T + 1):
                code = int(decoder.decode(table)[0])
                if code == header.end_code:
                    break
                if position == T:
                    raise ValueError("the payload holds an item longer than the header allows: the file is damaged.")
                row[position] = code
        levels.append(rows)
    decoder.finish()
    check_digest(header, levels, None, "the code frequencies in the header are not those the file was coded with")
    return levels
