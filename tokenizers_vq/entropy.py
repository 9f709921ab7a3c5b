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

    body: tokenizer identity (32 bytes) | entropy-model identity (32 bytes) | items u32 | chunk u32
          | classes u32 | end code i32 (-1: none) | levels u8 | per level: ndim u8, sides u16 each,
          codebook size u32 | extra length u16, extra (compact JSON object) | payload bytes u64
          | payload CRC32 u32 | codes digest (first 8 bytes of the SHA-256 of codes and labels)

Version 2 names the tokenizer and a prior by their content identity
(:func:`tokenizers_vq.pretrained.content_identity`: config and tensors, the same for every save of the
same weights); version 1 named them by the SHA-256s of their files, and still reads
(:func:`tokenizers_vq.pretrained.matches_identity` knows both).

Truncation, corruption (header or payload), a file of another kind or version, and codes that do
not decode to what was stored (a different model, or a machine whose arithmetic differs) each
raise a ``ValueError`` that says which. A header is checked against its schema and bounds
(:data:`LIMITS`) before anything is sized by it, since a CRC is no defence against a crafted file:
a header that claims more codes than :data:`LIMITS` allows, levels of another shape than a grid or a
row, a sequence without an end code, ``chunk_size`` 0 or an ``extra`` that is not an object is refused.
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
FORMAT_VERSION = 2  # 2: the tokenizer and the prior by content identity; 1: by the SHA-256s of their files
READABLE_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<4sBH")  # magic, version, body length
_FIXED = struct.Struct("<32s32sIIIiB")  # tokenizer, model, items, chunk, classes, end code, levels
_TAIL = struct.Struct("<QI8s")  # payload bytes, payload CRC32, codes digest
_CRC = struct.Struct("<I")
_WORD = np.dtype("<u4")


@dataclass(frozen=True)
class HeaderLimits:
    """What a code-file header may claim: checked before anything is allocated or decoded from it."""

    max_levels: int = 8
    max_codebook_size: int = 1 << 24  # the coder quantises probabilities to 24 bits: no more symbols than that
    max_classes: int = 1 << 16
    max_items: int = 1 << 20
    max_codes: int = 1 << 25  # codes of all items over all levels (int64 when decoded: 256 MiB)
    max_chunk_codes: int = 1 << 22  # codes of one chunk of a prior-coded file (one sequential pass of the prior)


LIMITS = HeaderLimits()


def malformed(why: str) -> ValueError:
    """The error of a header (or its ``extra``) that breaks the schema: ``why`` says which field and what it holds."""
    return ValueError(f"the code file's header is malformed: {why}. The file is damaged or was not made by "
                      "`vqtok compress`.")  # fmt: skip


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
    version: int = FORMAT_VERSION  # how the identities are meant (see the module docstring)

    @property
    def codes_per_item(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def check(self, limits: HeaderLimits = LIMITS) -> None:
        """Raise ``ValueError`` unless the header is one this package writes, within ``limits``.

        Run on every header read (and before one is written), before anything is sized by its counts.
        """
        bad = malformed
        if not 1 <= len(self.shapes) <= limits.max_levels or len(self.codebook_sizes) != len(self.shapes):
            raise bad(f"{len(self.shapes)} levels (1 to {limits.max_levels}, each with a codebook size)")
        ndims = {len(shape) for shape in self.shapes}
        if not ndims <= {1, 2} or len(ndims) != 1:
            raise bad(f"levels of shapes {self.shapes}: all rows (1-D) or all grids (2-D)")
        if any(side < 1 for shape in self.shapes for side in shape):
            raise bad(f"a level of shape {self.shapes}: every side is at least 1")
        if any(not 1 <= k <= limits.max_codebook_size for k in self.codebook_sizes):
            raise bad(f"codebook sizes {self.codebook_sizes} (1 to {limits.max_codebook_size})")
        if not 1 <= self.num_items <= limits.max_items:
            raise bad(f"{self.num_items} items (1 to {limits.max_items})")
        if self.chunk_size < 1:
            raise bad(f"chunk_size {self.chunk_size} (at least 1)")
        if not 0 <= self.num_classes <= limits.max_classes:
            raise bad(f"{self.num_classes} classes (0 to {limits.max_classes})")
        per_item = self.codes_per_item
        if self.num_items * per_item > limits.max_codes:
            raise bad(
                f"{self.num_items} items of {per_item} codes, more than the {limits.max_codes} codes a file holds"
            )
        if ndims == {1}:  # rows: each item's frames, then the end code (the last symbol of the alphabet)
            if self.end_code is None:
                raise bad("rows (1-D levels) without an end code")
            if any(self.end_code != k - 1 for k in self.codebook_sizes):
                raise bad(f"end code {self.end_code} with codebooks {self.codebook_sizes} (the end code is K - 1)")
        elif self.end_code is not None:
            raise bad(f"an end code ({self.end_code}) with grids (2-D levels), which have none")
        if not isinstance(self.extra, dict):
            raise bad(f"'extra' is a JSON {type(self.extra).__name__}, not an object")
        if self.version not in READABLE_VERSIONS:
            raise bad(f"version {self.version}")

    def pack(self) -> bytes:
        """The header's bytes (magic to header CRC32)."""
        self.check()
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
        head = _PREFIX.pack(MAGIC, self.version, len(body)) + body
        return head + _CRC.pack(zlib.crc32(head))

    @classmethod
    def unpack(cls, data: bytes) -> tuple[CodeFileHeader, int]:
        """Parse and :meth:`check` the header at the start of ``data``; returns it and the offset of the payload."""
        if len(data) < _PREFIX.size or data[:4] != MAGIC:
            raise ValueError(
                f"not a tokenizers-vq code file: it does not start with {MAGIC!r}. Pass a file written by `vqtok compress`."
            )
        _, version, body_length = _PREFIX.unpack_from(data)
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"code file format version {version}; this version of tokenizers-vq reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}."
            )
        end = _PREFIX.size + body_length
        if len(data) < end + _CRC.size:
            raise ValueError(
                f"the code file is truncated: {len(data)} bytes, its header alone needs {end + _CRC.size}."
            )
        if zlib.crc32(data[:end]) != _CRC.unpack_from(data, end)[0]:
            raise ValueError("the code file's header is corrupted (CRC32 mismatch).")
        body = _Body(data[_PREFIX.size : end])
        tok, model, items, chunk, classes, end_code, num_levels = body.read(_FIXED)
        if not 1 <= num_levels <= LIMITS.max_levels:
            raise body.bad(f"{num_levels} levels (1 to {LIMITS.max_levels})")
        shapes, sizes = [], []
        for _ in range(num_levels):
            (ndim,) = body.read(struct.Struct("<B"))
            if not 1 <= ndim <= 2:
                raise body.bad(f"a level of {ndim} dimensions (1 or 2)")
            *sides, k = body.read(struct.Struct(f"<{ndim}HI"))
            shapes.append(tuple(sides))
            sizes.append(k)
        (extra_length,) = body.read(struct.Struct("<H"))
        try:
            extra = json.loads(body.take(extra_length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise body.bad(f"'extra' is not JSON ({err})") from err
        payload_bytes, payload_crc, digest = body.read(_TAIL)
        if body.left:
            raise body.bad(f"{body.left} bytes after its last field")
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
            version=version,
        )
        header.check()
        return header, end + _CRC.size


class _Body:
    """Reads a header body field by field, never past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    bad = staticmethod(malformed)

    def take(self, n: int) -> bytes:
        if n > self.left:
            raise self.bad(f"its body ends {n - self.left} bytes early")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def read(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))


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
