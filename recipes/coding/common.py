"""What the rate verbs share: model identities, opening a prior for a tokenizer, coding code arrays in chunks.

Dimension legend: ``n`` items, ``b`` items in a chunk, ``*grid_l`` level ``l``'s grid, ``K`` codebook size.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from priors import CodeLayout, CodePrior
from priors.coding import decode_codes, encode_codes, past_end_code
from recipes.priors.common import training_config
from tokenizers_vq.corpus import read_meta
from tokenizers_vq.entropy import CodeDecoder, CodeEncoder, CodeFileHeader, codes_digest
from tokenizers_vq.io import atomic_write_bytes, atomic_write_json, sha256_file

LN2 = math.log(2.0)
_IDENTITY_FILES = ("config.json", "model.safetensors")  # what a tokenizer or prior is: its config and weights


@dataclass
class RateResult:
    """A rate verb's result: what it wrote (under ``where``, e.g. ``out_dir`` or ``file``) and its figures."""

    where: ClassVar[str] = "out_dir"
    location: str
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {self.where: self.location, **self.figures}


def write_rd(out: Path, figures: dict[str, Any], plot: Callable[[dict[str, Any]], bytes] | None) -> Path:
    """``rd.json`` (and, with ``plot``, ``rd.png``) into the directory ``out``; returns it."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"rd writes rd.json and rd.png into a directory; {out} is a file.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "rd.json", figures)
    if plot is not None:
        atomic_write_bytes(out / "rd.png", plot(figures))
    return out


def model_digest(directory: str | Path) -> str:
    """Hex SHA-256 naming a model directory: the hashes of its ``config.json`` and ``model.safetensors``."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for name in _IDENTITY_FILES:
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a model directory: {name} is missing.")
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def prior_tokenizer_hash(prior_dir: Path) -> str:
    """SHA-256 of the tokenizer weights whose codes trained the prior (from its training corpus's meta.json)."""
    trained = training_config(prior_dir)
    if trained is None or trained.corpus is None:
        raise ValueError(
            f"cannot tell which tokenizer the prior {prior_dir} belongs to: its run's config.yaml (with the "
            "training corpus) is missing. Pass priors that `vqtok train-prior` wrote."
        )
    return str(read_meta(trained.corpus)["tokenizer"]["sha256"])


def check_layout(prior: CodePrior, shapes: list[tuple[int, ...]], sizes: list[int], what: str) -> None:
    """Raise ``ValueError`` unless ``prior`` models codes of these grid ``shapes`` and codebook ``sizes``."""
    layout = prior.layout
    if [tuple(s) for s in shapes] != layout.shapes or list(sizes) != layout.codebook_sizes:
        raise ValueError(
            f"the prior models codes of grids {layout.shapes} with codebooks {layout.codebook_sizes}, but {what} "
            f"has grids {[tuple(s) for s in shapes]} with codebooks {list(sizes)}. "
            "Pass the prior that was trained on this tokenizer's codes."
        )


@dataclass
class CodedChunks:
    """A payload and its accounting (bits over all items)."""

    payload: bytes
    coded_bits: float  # sum of -log2 p under the tables the coder used (sequential pass), labels included
    nll_bits: float  # the prior's NLL of the coded positions from its teacher-forced forward pass
    label_bits: float  # the class labels' share (log2 C per item for a conditional prior)
    seconds: float
    padding_nll_bits: float = 0.0  # sequences: the NLL of the positions after each end code, which are not stored


def chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def encode_levels(
    prior: CodePrior,
    levels: list[torch.Tensor],
    labels: torch.Tensor | None,
    chunk_size: int,
    end_code: int | None = None,
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
    """Decode every chunk of a code file's payload; checks the result against the codes digest in the header."""
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
    tokenizer_dir: Path,
    model_sha256: str,
    layout: CodeLayout,
    levels: list[torch.Tensor],
    labels: torch.Tensor | None,
    chunk_size: int,
    extra: dict,
    end_code: int | None = None,
) -> CodeFileHeader:
    """The header of a code file holding ``levels`` of ``layout``, coded by the entropy model ``model_sha256``."""
    return CodeFileHeader(
        tokenizer_sha256=model_digest(tokenizer_dir),
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


def unigram_counts(levels: list[np.ndarray | torch.Tensor], sizes: list[int]) -> list[np.ndarray]:
    """Per-level code counts plus one (add-one smoothing), int64: what :func:`unigram_tables` normalises."""
    counts = []
    for grid, k in zip(levels, sizes, strict=True):
        values = grid.numpy() if isinstance(grid, torch.Tensor) else np.asarray(grid)
        counts.append(np.bincount(values.reshape(-1).astype(np.int64), minlength=k) + 1)
    return counts


def unigram_tables(levels: list[np.ndarray | torch.Tensor], sizes: list[int]) -> list[np.ndarray]:
    """Per-level code frequencies with add-one smoothing: the entropy model of a tokenizer without a prior."""
    return [table_of(c) for c in unigram_counts(levels, sizes)]


def table_of(counts: np.ndarray | list[int]) -> np.ndarray:
    """Counts → a float64 probability table; the same counts give the same table in every bit (what decoding needs)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def encode_unigram(levels: list[torch.Tensor], tables: list[np.ndarray]) -> bytes:
    """Range-code codes (one ``(n, *grid_l)`` tensor per level) with fixed per-level tables: real bytes."""
    encoder = CodeEncoder()
    for grid, table in zip(levels, tables, strict=True):
        flat = grid.reshape(-1).numpy()
        encoder.encode(flat, np.broadcast_to(table, (flat.size, table.size)))
    return encoder.finish()
