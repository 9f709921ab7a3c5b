"""Range coding of probability-driven code streams and the code-file format: round trips, sizes, damage."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
import torch

from tokenizers_vq.entropy import (
    MAGIC,
    CodeDecoder,
    CodeEncoder,
    CodeFileHeader,
    codes_digest,
    pack_code_file,
    probabilities,
    read_code_file,
    unpack_code_file,
    write_code_file,
)


def _tables(rng: np.random.Generator, n: int, k: int, concentration: float = 0.3) -> np.ndarray:
    return rng.dirichlet(np.full(k, concentration), size=n)


def test_round_trip_of_random_symbols_in_chunks() -> None:
    rng = np.random.default_rng(0)
    tables = _tables(rng, 600, 37)
    symbols = np.array([rng.choice(37, p=p) for p in tables])
    encoder = CodeEncoder()
    for start in range(0, 600, 7):
        encoder.encode(symbols[start : start + 7], tables[start : start + 7])
    encoder.encode_uniform(np.array([9, 0, 4]), 10)
    decoder = CodeDecoder(encoder.finish())
    back = np.concatenate([decoder.decode(tables[start : start + 7]) for start in range(0, 600, 7)])
    np.testing.assert_array_equal(back, symbols)
    np.testing.assert_array_equal(decoder.decode_uniform(3, 10), [9, 0, 4])
    decoder.finish()


def test_symbols_of_zero_probability_are_still_codable() -> None:
    table = np.array([[1.0, 0.0, 0.0, 0.0]] * 4)
    symbols = np.array([3, 1, 0, 2])
    encoder = CodeEncoder()
    encoder.encode(symbols, table)
    np.testing.assert_array_equal(CodeDecoder(encoder.finish()).decode(table), symbols)


def test_payload_is_within_one_percent_of_the_information_content() -> None:
    rng = np.random.default_rng(1)
    tables = _tables(rng, 20_000, 64, concentration=0.5)
    symbols = np.array([rng.choice(64, p=p) for p in tables])
    encoder = CodeEncoder()
    encoder.encode(symbols, tables)
    payload_bits = 8 * len(encoder.finish())
    ideal = float(-np.log2(tables[np.arange(len(symbols)), symbols]).sum())
    assert encoder.information_bits == pytest.approx(ideal, rel=1e-12)
    assert ideal <= payload_bits <= 1.01 * ideal + 64


def test_probabilities_are_a_float64_softmax() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float32)
    table = probabilities(logits)
    assert table.dtype == np.float64
    np.testing.assert_allclose(table, [[0.25, 0.75]], rtol=1e-6)


def test_bad_symbols_and_tables_raise() -> None:
    encoder = CodeEncoder()
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        encoder.encode(np.array([2]), np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="finite"):
        encoder.encode(np.array([0]), np.array([[np.nan, 0.5]]))
    with pytest.raises(ValueError, match=r"\(b, K\)"):
        encoder.encode(np.array([0, 1]), np.array([[0.5, 0.5]]))


def _header(**changes) -> CodeFileHeader:
    values = dict(
        tokenizer_sha256="ab" * 32, model_sha256="cd" * 32, shapes=[(3, 4), (6, 8)], codebook_sizes=[7, 300],
        num_items=5, chunk_size=2, num_classes=10, end_code=None, extra={"modality": "image", "image_shape": [1, 8, 8]},
        codes_digest=b"12345678",
    )  # fmt: skip
    values.update(changes)
    return CodeFileHeader(**values)


def test_header_round_trip() -> None:
    header = _header(shapes=[(12,)], codebook_sizes=[300], end_code=299)
    data = pack_code_file(header, b"\x01\x02\x03\x04" * 3)
    back, payload = unpack_code_file(data)
    assert payload == b"\x01\x02\x03\x04" * 3
    assert back == header
    assert len(data) - len(payload) < 200  # a small header


def test_file_round_trip_is_atomic_and_exact(tmp_path) -> None:
    path = tmp_path / "x.vqc"
    size = write_code_file(path, _header(), b"\0" * 8)
    assert path.stat().st_size == size
    assert read_code_file(path)[1] == b"\0" * 8
    assert [p.name for p in tmp_path.iterdir()] == ["x.vqc"]


def test_every_truncation_is_detected() -> None:
    data = pack_code_file(_header(), bytes(range(40)))
    for cut in range(len(data)):
        with pytest.raises(ValueError, match=r"truncated|not a tokenizers-vq code file|corrupted"):
            unpack_code_file(data[:cut])


def test_every_corrupted_byte_is_detected() -> None:
    data = pack_code_file(_header(), bytes(range(40)))
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        with pytest.raises(ValueError, match=r"corrupted|truncated|not a tokenizers-vq|version|after its payload"):
            unpack_code_file(bytes(damaged))


def test_trailing_bytes_and_other_versions_are_refused() -> None:
    data = pack_code_file(_header(), b"\0" * 4)
    with pytest.raises(ValueError, match="after its payload"):
        unpack_code_file(data + b"\0")
    head = struct.pack("<4sBH", MAGIC, 9, 0)
    with pytest.raises(ValueError, match="version 9"):
        unpack_code_file(head + struct.pack("<I", zlib.crc32(head)))
    with pytest.raises(ValueError, match="does not start with"):
        unpack_code_file(b"PK\x03\x04" + data[4:])


def test_codes_digest_sees_codes_and_labels() -> None:
    codes = [torch.zeros(2, 3, 3, dtype=torch.long)]
    base = codes_digest(codes, torch.tensor([1, 2]))
    assert codes_digest([c.numpy().astype(np.int16) for c in codes], np.array([1, 2])) == base
    assert codes_digest(codes, torch.tensor([1, 3])) != base
    changed = [codes[0].clone()]
    changed[0][1, 2, 2] = 1
    assert codes_digest(changed, torch.tensor([1, 2])) != base
