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

The header names the tokenizer and a prior by their content identity
(:func:`tokenizers_vq.pretrained.directory_identity`), code frequencies by :func:`counts_digest`;
:func:`check_models` refuses other models (files of format version 1, which named models by the hashes
of their files, included). :func:`read_code_file` also checks what the header's ``extra`` holds
(:func:`check_extra`) before anything is decoded.
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
from tokenizers_vq import entropy
from tokenizers_vq.entropy import CodeDecoder, CodeEncoder, CodeFileHeader, codes_digest, malformed
from tokenizers_vq.layout import CodeLayout
from tokenizers_vq.pretrained import directory_identity, matches_identity
from tokenizers_vq.progress import progress

LN2 = math.log(2.0)
UNIGRAM = "unigram"  # extra["rate_model"] of a file coded with code frequencies; "prior" otherwise
MAX_SIDE = 65535  # a grid side (a row's length) is a u16 in the header
_TABLE_ENTRIES = 1 << 22  # probabilities handed to the coder at once with fixed tables ((b, K) is materialised)


def _symbols_per_call(table: np.ndarray) -> int:
    """Symbols coded per call with one fixed table: their (b, K) table stays within ``_TABLE_ENTRIES``."""
    return max(1, _TABLE_ENTRIES // table.shape[-1])


@dataclass
class CodedChunks:
    """A payload and its accounting (bits over all items)."""

    payload: bytes
    coded_bits: float  # sum of -log2 p under the tables the coder used (sequential pass), labels included
    nll_bits: float  # the entropy model's NLL of the coded positions (a prior: its teacher-forced forward pass)
    label_bits: float  # the class labels' share (log2 C per item for a conditional prior)
    seconds: float
    padding_nll_bits: float = 0.0  # sequences: a prior's NLL of the positions after each end code (not stored)


def model_identity(directory: str | Path) -> str:
    """Hex identity naming a tokenizer or prior directory in a code file: its content identity."""
    return directory_identity(directory)


def check_models(header: CodeFileHeader, tokenizer_dir: Path, prior_dir: Path | None) -> None:
    """Raise ``ValueError`` naming the tokenizer or entropy model (``prior_dir``; None for code frequencies) that is
    not the one the file was made with."""
    stated = [("tokenizer", header.tokenizer_sha256, tokenizer_dir)]
    if header.extra.get("rate_model") == UNIGRAM:
        if counts_digest(recorded_counts(header)) != header.model_sha256:
            raise ValueError("the code file's code frequencies are not those it was coded with: the file is damaged.")
    else:
        assert prior_dir is not None, "a prior-coded file is checked against its prior"
        stated.append(("prior (entropy model)", header.model_sha256, prior_dir))
    for what, recorded, directory in stated:
        if not matches_identity(recorded, directory):
            raise ValueError(
                f"this file was compressed with a different {what}: the file names {recorded[:16]}…, {directory} is "
                f"{model_identity(directory)[:16]}…. Pass the {what.split()[0]} it was compressed with."
            )


def check_codebooks(header: CodeFileHeader, sizes: list[int]) -> None:
    """Raise ``ValueError`` unless the header's codebooks are a tokenizer's ``sizes`` (rows: each one more, for the
    end code), so no decoded code falls outside the tokenizer's codebook."""
    expected = [k + 1 for k in sizes] if header.end_code is not None else list(sizes)
    if header.codebook_sizes != expected:
        raise malformed(f"codebooks {header.codebook_sizes}, where the tokenizer's make {expected}")


def check_extra(header: CodeFileHeader, payload_bytes: int) -> None:
    """Raise ``ValueError`` unless the header's ``extra`` holds what the decoder reads, within bounds: a known
    ``rate_model``; for code frequencies, one count of at least 1 per symbol of each level and no more symbols than
    ``payload_bytes`` can hold at those frequencies; a conditional prior's labels that fit too; ``names`` (one
    string per item), ``modality`` (a string) and ``image_shape`` (three sides) when present."""
    extra, n = header.extra, header.num_items
    rate_model = extra.get("rate_model", "prior")
    if rate_model not in ("prior", UNIGRAM):
        raise malformed(f"rate_model {rate_model!r} (prior or {UNIGRAM})")
    if not isinstance(extra.get("modality", ""), str):
        raise malformed("'modality' is not a string")
    names = extra.get("names")
    if names is not None and (
        not isinstance(names, list) or len(names) != n or not all(isinstance(x, str) for x in names)
    ):
        raise malformed(f"'names' is not a list of {n} strings (one per item)")
    shape = extra.get("image_shape")
    if shape is not None and (not isinstance(shape, list) or len(shape) != 3
                              or not all(type(x) is int and 1 <= x <= MAX_SIDE for x in shape)):  # fmt: skip
        raise malformed(f"image_shape {shape!r} (channels, height, width)")
    budget = 8 * payload_bytes + 64  # bits: a range coder never writes less than the information it codes
    if rate_model == UNIGRAM:
        if header.num_classes:
            raise malformed("class labels in a file coded with code frequencies")
        counts = recorded_counts(header)
        # Fewest symbols each level codes: every position of a grid; of rows, at least each item's end code.
        symbols = [n * math.prod(shape) if header.end_code is None else n for shape in header.shapes]
        if sum(m * _least_bits(c) for m, c in zip(symbols, counts, strict=True)) > budget:
            raise malformed(f"{n} items in a payload of {payload_bytes} bytes, too small for them at these frequencies")
    else:
        chunk_codes, most = min(header.chunk_size, n) * header.codes_per_item, entropy.LIMITS.max_chunk_codes
        if chunk_codes > most:
            raise malformed(f"chunks of {header.chunk_size} items of {header.codes_per_item} codes, more than {most}")
        if header.num_classes > 1 and n * math.log2(header.num_classes) > budget:
            raise malformed(f"{n} class labels in a payload of {payload_bytes} bytes, too small to hold them")


def _least_bits(counts: np.ndarray) -> float:
    """A lower bound on the bits of any one symbol coded with the table of ``counts`` (as the coder quantises it:
    24-bit probabilities, each symbol keeping at least one unit)."""
    k, unit = counts.size, 2.0**-24
    top = min(1.0 - (k - 1) * unit, float(counts.max()) / float(counts.sum()) + k * unit)
    return -math.log2(top)


def read_code_file(path: str | Path) -> tuple[CodeFileHeader, bytes]:
    """:func:`tokenizers_vq.entropy.read_code_file` with the header's ``extra`` checked (:func:`check_extra`)."""
    header, payload = entropy.read_code_file(path)
    check_extra(header, len(payload))
    return header, payload


def check_layout(
    prior: CodePrior, shapes: list[tuple[int, ...]], sizes: list[int], what: str, num_classes: int | None = None
) -> None:
    """Raise ``ValueError`` unless ``prior`` models codes of these grid ``shapes`` and codebook ``sizes`` (and, when
    given, ``num_classes`` classes)."""
    layout = prior.layout
    if [tuple(s) for s in shapes] != layout.shapes or list(sizes) != layout.codebook_sizes:
        raise ValueError(
            f"the prior models codes of grids {layout.shapes} with codebooks {layout.codebook_sizes}, but {what} "
            f"has grids {[tuple(s) for s in shapes]} with codebooks {list(sizes)}. "
            "Pass the prior that was trained on this tokenizer's codes."
        )
    if num_classes is not None and num_classes != layout.num_classes:
        raise ValueError(
            f"the prior models {layout.num_classes} classes, but {what} has {num_classes}. Pass the prior it was "
            "coded with."
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
    parts = chunks(levels[0].shape[0], chunk_size)
    for part in progress(parts, total=len(parts), desc="entropy coding", unit="chunk"):
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
             for part in progress(chunks(header.num_items, header.chunk_size), desc="entropy decoding", unit="chunk")]  # fmt: skip
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
    n, per_item, limits = int(levels[0].shape[0]), sum(math.prod(s) for s in layout.shapes), entropy.LIMITS
    if n * per_item > limits.max_codes or n > limits.max_items:
        raise ValueError(
            f"{n} items of {per_item} codes are more than one code file holds ({limits.max_codes} codes, "
            f"{limits.max_items} items); compress fewer items at a time (--max-items) into several files."
        )
    if extra.get("rate_model") != UNIGRAM and min(chunk_size, n) * per_item > limits.max_chunk_codes:
        raise ValueError(
            f"chunk_size={chunk_size} items of {per_item} codes is more than {limits.max_chunk_codes} codes a chunk; "
            "lower compress.chunk_size."
        )
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
    """The counts a unigram-coded file carries, one array per level (the inverse of :func:`counts_record`); a
    ``ValueError`` unless there is one count of at least 1 per symbol of each level."""
    counts = header.extra.get("unigram_counts")
    per_level = [counts] if isinstance(counts, list) and counts and not isinstance(counts[0], list) else counts
    sizes = header.codebook_sizes
    if (not isinstance(per_level, list) or len(per_level) != len(sizes)
            or not all(isinstance(c, list) and len(c) == k for c, k in zip(per_level, sizes, strict=True))):  # fmt: skip
        raise malformed(f"'unigram_counts' is not one list of counts per level, as long as its codebook {sizes}")
    if not all(type(x) is int and 1 <= x < 2**53 for c in per_level for x in c):
        raise malformed("'unigram_counts' holds a count that is not a whole number from 1 to 2**53")
    return [np.asarray(c, dtype=np.int64) for c in per_level]


def encode_unigram(streams: list[torch.Tensor], counts: list[np.ndarray]) -> CodedChunks:
    """Range-code each level's stream with the fixed table of its ``counts``: real bytes and their ideal length."""
    start = time.perf_counter()
    encoder = CodeEncoder()
    for stream, table in zip(streams, map(table_of, counts), strict=True):
        for part in chunks(stream.numel(), _symbols_per_call(table)):  # the coder takes a (b, K) table
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
                    for p in chunks(size, _symbols_per_call(table))]  # fmt: skip
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
