"""TokenSpace: disjoint id ranges, exact round trips, Hugging Face export; unit BPE inverse."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers_vq.text import UnitBPE, train_text_model
from tokenizers_vq.token_space import CodeSegment, TextSegment, TokenSpace

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SENTENCES = [f"an image of a {c}" for c in CLASSES] + [f"the spoken word {d}" for d in DIGITS]


@pytest.fixture(scope="module")
def space() -> TokenSpace:
    s = TokenSpace(train_text_model(SENTENCES * 5, vocab_size=60))
    s.add_stream("img", "image", [16, 32])  # a two-level image tokenizer
    s.add_stream("aud", "audio", [8])
    return s


def test_id_ranges_never_overlap(space):
    ranges = [(0, space.text_size), (space.text_begin, space.text_begin + 2)]
    for stream in space.streams.values():
        ranges.append((stream.begin, stream.begin + 2 + (stream.num_levels if stream.num_levels > 1 else 0)))
        ranges += [space.level_range(stream.name, lvl) for lvl in range(stream.num_levels)]
    ranges.sort()
    for (a0, a1), (b0, b1) in itertools.pairwise(ranges):
        assert a1 <= b0, f"[{a0}, {a1}) overlaps [{b0}, {b1})"
    assert ranges[-1][1] == space.vocab_size
    tokens = [space.id_to_token(i) for i in range(space.vocab_size)]
    assert len(set(tokens)) == len(tokens)
    assert space.id_to_token(space.level_range("img", 1)[0] + 5) == "<img1:5>"
    assert space.id_to_token(space.level_range("aud")[0] + 3) == "<aud:3>"


def segments_strategy(space: TokenSpace):
    text = st.lists(st.integers(4, space.text_size - 1), max_size=8).map(TextSegment)
    img = st.tuples(st.lists(st.integers(0, 15), max_size=6), st.lists(st.integers(0, 31), max_size=6)).map(
        lambda lv: CodeSegment("img", [list(lv[0]), list(lv[1])])
    )
    aud = st.lists(st.integers(0, 7), max_size=10).map(lambda c: CodeSegment("aud", [c]))
    return st.lists(st.one_of(text, img, aud), max_size=6)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_serialise_parse_round_trip_is_identity(space, data):
    segments = data.draw(segments_strategy(space))
    ids = space.serialize(segments)
    assert space.parse(ids) == segments
    assert all(0 <= i < space.vocab_size for i in ids)


def test_parse_rejects_malformed_streams(space):
    ids = space.serialize([CodeSegment("aud", [[1, 2]])])
    with pytest.raises(ValueError, match="never closed"):
        space.parse(ids[:-2])
    lo, _ = space.level_range("img", 0)
    with pytest.raises(ValueError, match="outside any segment"):
        space.parse([lo])
    with pytest.raises(ValueError, match="in \\[0, 7\\]"):
        space.serialize([CodeSegment("aud", [[8]])])
    with pytest.raises(ValueError, match="already"):
        space.add_stream("aud", "audio", [8])


def test_save_load_keeps_ids(space, tmp_path):
    space.save(tmp_path)
    again = TokenSpace.load(tmp_path)
    assert again.vocab_size == space.vocab_size
    seg = [space.text_segment("an image of a bag"), CodeSegment("img", [[1], [2, 3]])]
    assert again.serialize(seg) == space.serialize(seg)


def test_hugging_face_tokenizer_encodes_the_same_ids(space, tmp_path):
    transformers = pytest.importorskip("transformers")
    space.export_hf(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ids = space.serialize(
        [
            space.text_segment("an image of a sneaker"),
            CodeSegment("img", [[1, 15], [0, 31, 7]]),
            space.text_segment("the spoken word seven"),
            CodeSegment("aud", [[5, 7, 0]]),
        ]
    )
    text = space.to_string(ids)
    assert "<img0:15>" in text and "<aud:5>" in text
    assert hf(text, add_special_tokens=False)["input_ids"] == ids
    assert len(hf) == space.vocab_size


def test_text_only_and_codes_only_spaces(tmp_path):
    transformers = pytest.importorskip("transformers")
    codes_only = TokenSpace()
    codes_only.add_stream("aud", "audio", [4])
    ids = codes_only.serialize([CodeSegment("aud", [[0, 3, 3]])])
    codes_only.export_hf(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf(" ".join(codes_only.id_to_token(i) for i in ids), add_special_tokens=False)["input_ids"] == ids
    with pytest.raises(ValueError, match="no text model"):
        codes_only.text_segment("hello")


@settings(max_examples=60, deadline=None)
@given(codes=st.lists(st.integers(0, 31), max_size=80))
def test_unit_bpe_is_exactly_invertible(bpe, codes):
    assert bpe.decode(bpe.encode(codes)).tolist() == codes


MOTIFS = [np.random.default_rng(0).integers(0, 32, 4) for _ in range(12)]


def motif_stream(rng: np.random.Generator) -> np.ndarray:
    """Code runs like units of speech: a few recurring patterns in random order."""
    return np.concatenate([MOTIFS[i] for i in rng.integers(0, len(MOTIFS), 25)])


@pytest.fixture(scope="module")
def bpe() -> UnitBPE:
    rng = np.random.default_rng(0)
    return UnitBPE.train([motif_stream(rng) for _ in range(60)], vocab_size=80, codebook_size=32)


def test_unit_bpe_compresses_held_out_streams(bpe):
    held_out = [motif_stream(np.random.default_rng(100 + i)) for i in range(10)]
    assert bpe.codes_per_token(held_out) > 2.0
    with pytest.raises(ValueError, match="in \\[0, 31\\]"):
        bpe.encode([32])
