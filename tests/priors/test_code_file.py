"""Code-file payloads: chunked prior coding and code-frequency coding round-trip, and their accounting holds."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from prior_factories import SEQ_LAYOUT, make_pixelcnn, random_codes, random_labels

from priors import CodeLayout
from priors.code_file import (
    code_streams,
    coded_positions,
    counts_digest,
    counts_record,
    decode_levels,
    decode_unigram,
    encode_levels,
    encode_unigram,
    make_header,
    resize_rows,
    unigram_counts,
)
from tokenizers_vq.entropy import CodeFileHeader, pack_code_file, unpack_code_file

TOKENIZER, MODEL = "ab" * 32, "cd" * 32  # hex SHA-256 names of the models, as a header holds them


def _rows(lengths: list[int], k: int, seed: int) -> torch.Tensor:
    """Rows ``(n, max + 1)``: ``lengths[i]`` random codes, then the end code ``k``."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), max(lengths) + 1), k, dtype=torch.long)
    for row, n in zip(rows, lengths, strict=True):
        row[:n] = torch.randint(0, k, (n,), generator=gen)
    return rows


def _through_a_file(header: CodeFileHeader, payload: bytes) -> tuple[CodeFileHeader, bytes]:
    return unpack_code_file(pack_code_file(header, payload))


def test_prior_coding_in_chunks_round_trips_through_a_file() -> None:
    layout = CodeLayout(shapes=[(4, 4)], codebook_sizes=[16], num_classes=3)
    prior = make_pixelcnn(layout).eval()
    levels, labels = random_codes(layout, 7, seed=0), random_labels(layout, 7, seed=0)
    coded = encode_levels(prior, levels, labels, chunk_size=3, end_code=None)
    assert coded.label_bits == pytest.approx(7 * math.log2(3))
    assert coded.coded_bits == pytest.approx(coded.nll_bits + coded.label_bits, rel=1e-5)
    header, payload = _through_a_file(make_header(TOKENIZER, MODEL, layout, levels, labels, 3, {}), coded.payload)
    back, back_labels = decode_levels(prior, header, payload)
    torch.testing.assert_close(back[0], levels[0], rtol=0, atol=0)
    torch.testing.assert_close(back_labels, labels, rtol=0, atol=0)


def test_prior_coding_of_rows_stores_nothing_after_the_end_code() -> None:
    prior = make_pixelcnn(SEQ_LAYOUT).eval()
    end = SEQ_LAYOUT.codebook_sizes[0] - 1  # the corpus convention: K codes, then the end code K
    rows = resize_rows(_rows([5, 20, 0, 11], end, seed=3), SEQ_LAYOUT.shapes[0][0], end)
    labels = random_labels(SEQ_LAYOUT, 4, seed=3)
    coded = encode_levels(prior, [rows], labels, chunk_size=3, end_code=end)
    assert coded.padding_nll_bits > 0  # the positions after each end code: scored by the prior, not coded
    header = make_header(TOKENIZER, MODEL, SEQ_LAYOUT, [rows], labels, 3, {}, end_code=end)
    (back,), back_labels = decode_levels(prior, *_through_a_file(header, coded.payload))
    torch.testing.assert_close(back, rows, rtol=0, atol=0)
    torch.testing.assert_close(back_labels, labels, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [1, 2])
def test_code_frequencies_round_trip_grids(levels: int) -> None:
    sizes = [8, 32][:levels]
    grids = [torch.randint(0, k, (5, 3 + i, 2)) for i, k in enumerate(sizes)]
    counts = unigram_counts(code_streams(grids, None), sizes)
    coded = encode_unigram(code_streams(grids, None), counts)
    layout = CodeLayout(shapes=[tuple(g.shape[1:]) for g in grids], codebook_sizes=sizes)
    extra = {"unigram_counts": counts_record(counts)}
    header, payload = _through_a_file(make_header(TOKENIZER, counts_digest(counts), layout, grids, None, 5, extra),
                                      coded.payload)  # fmt: skip
    for back, grid in zip(decode_unigram(header, payload), grids, strict=True):
        torch.testing.assert_close(back, grid, rtol=0, atol=0)
    assert coded.coded_bits <= 8 * len(coded.payload) <= coded.coded_bits + 64


def test_code_frequencies_round_trip_rows_and_store_nothing_after_the_end_code() -> None:
    k = 6
    rows = _rows([3, 0, 5], k, seed=1)
    streams = code_streams([rows], k)  # each row's frames and its end code
    assert [int(n) for n in streams[0].eq(k).nonzero().flatten()] == [3, 4, 10]
    assert coded_positions([rows], k) == 3 + 0 + 5 + 3
    counts = unigram_counts(streams, [k + 1])
    assert counts[0][k] == 3 + 1  # the end code once per item, plus one
    coded = encode_unigram(streams, counts)
    layout = CodeLayout(shapes=[(rows.shape[1],)], codebook_sizes=[k + 1])
    extra = {"unigram_counts": counts_record(counts)}  # one level: a flat list, as speech files hold it
    assert isinstance(extra["unigram_counts"][0], int)
    header = make_header(TOKENIZER, counts_digest(counts), layout, [rows], None, 3, extra, end_code=k)
    (back,) = decode_unigram(*_through_a_file(header, coded.payload))
    torch.testing.assert_close(back, rows, rtol=0, atol=0)
    without_end = code_streams([rows], k, with_end=False)[0]
    assert without_end.numel() == 8 and not without_end.eq(k).any()


def test_rows_are_resized_with_end_codes() -> None:
    rows = _rows([2, 4], 9, seed=2)  # (2, 5)
    longer = resize_rows(rows, 8, 9)
    assert longer.shape == (2, 8) and longer[:, 5:].eq(9).all()
    torch.testing.assert_close(resize_rows(longer, 5, 9), rows, rtol=0, atol=0)


def test_counts_digest_of_one_level_is_that_of_its_counts() -> None:
    counts = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    assert counts_digest([counts]) == hashlib.sha256(counts.astype("<i8").tobytes()).hexdigest()
