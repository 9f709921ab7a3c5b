"""Entropy coding of code arrays: a range coder driven by per-position probability tables, and the code-file format.

Dimension legend: ``b`` items coded together (one chunk), ``K`` the alphabet at one position.

The coder is constriction's range coder (``constriction.stream.queue``), first in first out, so a
decoder that computes each position's probabilities from the codes it has already decoded reads
the symbols in the order the encoder wrote them. Probabilities come in as float64 tables and are
quantized to integers by constriction's ``Categorical(perfect=False)`` family: deterministic for
equal input, and every symbol keeps a non-zero probability, so any code can be coded. Encoder and
decoder must therefore hand in bit-identical tables (see :mod:`priors.coding`).

A code file is a small binary header followed by the payload (the coder's 32-bit words, little
endian). All integers are little endian::

    magic "VQTC" | version u8 | body length u16 | body | CRC32 of everything before it u32 | payload

    body: tokenizer SHA-256 (32 bytes) | entropy-model SHA-256 (32 bytes) | items u32 | chunk u32
          | classes u32 | end code i32 (-1: none) | levels u8 | per level: ndim u8, sides u16 each,
          codebook size u32 | extra length u16, extra (compact JSON) | payload bytes u64
          | payload CRC32 u32 | codes digest (first 8 bytes of the SHA-256 of codes and labels)

Truncation, corruption (header or payload), a file of another kind or version, and codes that do
not decode to what was stored (a different model, or a machine whose arithmetic differs) each
raise a ``ValueError`` that says which.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import constriction
import numpy as np
import torch

from tokenizers_vq.io import atomic_write_bytes

MAGIC = b"VQTC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBH")  # magic, version, body length
_FIXED = struct.Struct("<32s32sIIIiB")  # tokenizer, model, items, chunk, classes, end code, levels
_TAIL = struct.Struct("<QI8s")  # payload bytes, payload CRC32, codes digest
_CRC = struct.Struct("<I")
_WORD = np.dtype("<u4")


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Logits ``(b, K)`` → float64 probability table ``(b, K)`` (softmax in float64, on the CPU)."""
    return torch.softmax(logits.detach().double(), dim=-1).cpu().numpy()


def _symbols(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.int32)


def _check_table(symbols: np.ndarray, table: np.ndarray) -> np.ndarray:
    table = np.ascontiguousarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != symbols.shape[0]:
        raise ValueError(f"probabilities must be (b, K) with b = {symbols.shape[0]}; got shape {table.shape}.")
    if not np.isfinite(table).all() or (table < 0).any():
        raise ValueError("probabilities must be finite and non-negative; check the model's logits for NaN or inf.")
    return table


class CodeEncoder:
    """Range-codes symbols position by position; also sums their ideal code length under the given tables.

    >>> enc = CodeEncoder()
    >>> enc.encode(np.array([2, 0]), np.array([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]]))
    >>> round(enc.information_bits, 3), len(enc.finish()) % 4
    (2.0, 0)
    """

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()
        self._family = constriction.stream.model.Categorical(perfect=False)
        self.information_bits = 0.0  # sum of -log2 p(symbol) under the (normalised) float tables
        self.symbols = 0

    def encode(self, symbols: np.ndarray | torch.Tensor, table: np.ndarray) -> None:
        """Append ``symbols`` ``(b,)`` (ints in ``[0, K)``), each with its row of ``table`` ``(b, K)``."""
        symbols = _symbols(symbols)
        if symbols.size == 0:
            return
        table = _check_table(symbols, table)
        if symbols.min() < 0 or symbols.max() >= table.shape[1]:
            raise ValueError(f"symbols must lie in [0, {table.shape[1] - 1}]; got {symbols.min()}..{symbols.max()}.")
        self._coder.encode(symbols, self._family, table)
        chosen = table[np.arange(symbols.size), symbols] / table.sum(axis=1)
        with np.errstate(divide="ignore"):  # a symbol of probability 0 is still coded (leaky); its ideal length is inf
            self.information_bits += float(-np.log2(chosen).sum())
        self.symbols += symbols.size

    def encode_uniform(self, symbols: np.ndarray | torch.Tensor, size: int) -> None:
        """Append ``symbols`` ``(b,)`` with every value of ``[0, size)`` equally likely (e.g. class labels)."""
        symbols = _symbols(symbols)
        if symbols.size == 0:
            return
        if symbols.min() < 0 or symbols.max() >= size:
            raise ValueError(f"symbols must lie in [0, {size - 1}]; got {symbols.min()}..{symbols.max()}.")
        self._coder.encode(symbols, constriction.stream.model.Uniform(size))
        self.information_bits += symbols.size * math.log2(size)
        self.symbols += symbols.size

    def finish(self) -> bytes:
        """The payload: the coder's 32-bit words, little endian (the encoder can keep going after this)."""
        return self._coder.get_compressed().astype(_WORD).tobytes()


class CodeDecoder:
    """Reads back what a :class:`CodeEncoder` wrote, given the very same tables in the same order."""

    def __init__(self, payload: bytes) -> None:
        if len(payload) % 4:
            raise ValueError(f"a payload is a whole number of 32-bit words; got {len(payload)} bytes (truncated?).")
        words = np.frombuffer(payload, dtype=_WORD).astype(np.uint32)
        self._coder = constriction.stream.queue.RangeDecoder(words)
        self._family = constriction.stream.model.Categorical(perfect=False)

    def decode(self, table: np.ndarray) -> np.ndarray:
        """One symbol per row of ``table`` ``(b, K)`` → int64 ``(b,)``."""
        table = np.ascontiguousarray(table, dtype=np.float64)
        if table.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        table = _check_table(np.zeros(table.shape[0]), table)
        return np.asarray(self._coder.decode(self._family, table), dtype=np.int64)

    def decode_uniform(self, count: int, size: int) -> np.ndarray:
        """``count`` symbols coded by :meth:`CodeEncoder.encode_uniform` with the same ``size``."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._coder.decode(constriction.stream.model.Uniform(size), count), dtype=np.int64)

    def finish(self) -> None:
        """Raise ``ValueError`` unless the whole payload was read (left-over data means a damaged or foreign file)."""
        if not self._coder.maybe_exhausted():
            raise ValueError("the payload holds more data than its codes need: the file is damaged or not ours.")


def codes_digest(levels: Sequence[np.ndarray | torch.Tensor], labels: np.ndarray | torch.Tensor | None) -> bytes:
    """First 8 bytes of the SHA-256 of the codes (int64, level by level) and labels: checks a decode end to end."""
    digest = hashlib.sha256()
    for part in [*levels, *([] if labels is None else [labels])]:
        array = part.detach().cpu().numpy() if isinstance(part, torch.Tensor) else np.asarray(part)
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.digest()[:8]


@dataclass
class CodeFileHeader:
    """What a code file says about itself (see the module docstring for the byte layout).

    ``tokenizer_sha256`` and ``model_sha256`` (hex) name the tokenizer that made the codes and the
    entropy model (a prior) whose probabilities coded them. ``shapes``/``codebook_sizes`` are the
    layout per item, top level first; ``chunk_size`` items are coded together (the decoder must
    use the same chunks); ``num_classes > 0`` means each item's class label is in the payload;
    ``end_code`` (sequences) marks the end of an item, after which nothing is stored; ``extra`` holds
    what the modality needs to rebuild the data (e.g. ``{"modality": "image", "image_shape": [1, 28, 28]}``).
    """

    tokenizer_sha256: str
    model_sha256: str
    shapes: list[tuple[int, ...]]
    codebook_sizes: list[int]
    num_items: int
    chunk_size: int
    num_classes: int = 0
    end_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    payload_bytes: int = 0
    payload_crc32: int = 0
    codes_digest: bytes = b"\0" * 8

    def check_identity(self, tokenizer_sha256: str, model_sha256: str) -> None:
        """Raise ``ValueError`` naming the tokenizer or model that differs from the ones this file was made with."""
        for what, stored, given in (
            ("tokenizer", self.tokenizer_sha256, tokenizer_sha256),
            ("prior (entropy model)", self.model_sha256, model_sha256),
        ):
            if stored != given:
                raise ValueError(
                    f"this file was compressed with a different {what}: the file names sha256 {stored[:16]}…, "
                    f"the one given has sha256 {given[:16]}…. Pass the {what.split()[0]} it was compressed with."
                )

    def pack(self) -> bytes:
        """The header's bytes (magic to header CRC32)."""
        levels = b"".join(
            struct.pack(f"<B{len(s)}HI", len(s), *s, k) for s, k in zip(self.shapes, self.codebook_sizes, strict=True)
        )
        extra = json.dumps(self.extra, separators=(",", ":"), sort_keys=True).encode("utf-8")
        body = (
            _FIXED.pack(
                bytes.fromhex(self.tokenizer_sha256),
                bytes.fromhex(self.model_sha256),
                self.num_items,
                self.chunk_size,
                self.num_classes,
                -1 if self.end_code is None else self.end_code,
                len(self.shapes),
            )
            + levels
            + struct.pack("<H", len(extra))
            + extra
            + _TAIL.pack(self.payload_bytes, self.payload_crc32, self.codes_digest)
        )
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)) + body
        return head + _CRC.pack(zlib.crc32(head))

    @classmethod
    def unpack(cls, data: bytes) -> tuple[CodeFileHeader, int]:
        """Parse the header at the start of ``data``; returns it and the offset of the payload."""
        if len(data) < _PREFIX.size or data[:4] != MAGIC:
            raise ValueError(
                f"not a tokenizers-vq code file: it does not start with {MAGIC!r}. Pass a file written by `vqtok compress`."
            )
        _, version, body_length = _PREFIX.unpack_from(data)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"code file format version {version}; this version of tokenizers-vq reads version {FORMAT_VERSION}."
            )
        end = _PREFIX.size + body_length
        if len(data) < end + _CRC.size:
            raise ValueError(
                f"the code file is truncated: {len(data)} bytes, its header alone needs {end + _CRC.size}."
            )
        if zlib.crc32(data[:end]) != _CRC.unpack_from(data, end)[0]:
            raise ValueError("the code file's header is corrupted (CRC32 mismatch).")
        tok, model, items, chunk, classes, end_code, num_levels = _FIXED.unpack_from(data, _PREFIX.size)
        pos = _PREFIX.size + _FIXED.size
        shapes, sizes = [], []
        for _ in range(num_levels):
            (ndim,) = struct.unpack_from("<B", data, pos)
            *sides, k = struct.unpack_from(f"<{ndim}HI", data, pos + 1)
            pos += 1 + 2 * ndim + 4
            shapes.append(tuple(sides))
            sizes.append(k)
        (extra_length,) = struct.unpack_from("<H", data, pos)
        extra = json.loads(data[pos + 2 : pos + 2 + extra_length].decode("utf-8"))
        payload_bytes, payload_crc, digest = _TAIL.unpack_from(data, pos + 2 + extra_length)
        header = cls(
            tokenizer_sha256=tok.hex(),
            model_sha256=model.hex(),
            shapes=shapes,
            codebook_sizes=sizes,
            num_items=items,
            chunk_size=chunk,
            num_classes=classes,
            end_code=None if end_code < 0 else end_code,
            extra=extra,
            payload_bytes=payload_bytes,
            payload_crc32=payload_crc,
            codes_digest=digest,
        )
        return header, end + _CRC.size


def pack_code_file(header: CodeFileHeader, payload: bytes) -> bytes:
    """Header (with the payload's length and CRC32 filled in) followed by ``payload``."""
    header.payload_bytes, header.payload_crc32 = len(payload), zlib.crc32(payload)
    return header.pack() + payload


def unpack_code_file(data: bytes) -> tuple[CodeFileHeader, bytes]:
    """Split a code file into its header and payload, checking length and both checksums."""
    header, start = CodeFileHeader.unpack(data)
    payload = data[start:]
    if len(payload) < header.payload_bytes:
        raise ValueError(f"the code file is truncated: its payload has {len(payload)} of {header.payload_bytes} bytes.")
    if len(payload) > header.payload_bytes:
        raise ValueError(
            f"the code file has {len(payload) - header.payload_bytes} bytes after its payload; it is damaged."
        )
    if zlib.crc32(payload) != header.payload_crc32:
        raise ValueError("the code file's payload is corrupted (CRC32 mismatch).")
    return header, payload


def write_code_file(path: str | os.PathLike[str], header: CodeFileHeader, payload: bytes) -> int:
    """Write a code file atomically; returns its size in bytes."""
    data = pack_code_file(header, payload)
    atomic_write_bytes(path, data)
    return len(data)


def read_code_file(path: str | os.PathLike[str]) -> tuple[CodeFileHeader, bytes]:
    """Read and check a code file written by :func:`write_code_file`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no code file at {path}; make one with `vqtok compress`.")
    return unpack_code_file(path.read_bytes())
