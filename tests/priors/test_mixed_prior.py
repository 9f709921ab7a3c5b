"""The mixed-stream grammar, the sequence LM helpers and the mixed prior: constrained samples, scores, HF loading."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from priors import SamplingConfig, TransformerConfig
from priors.grammar import SegmentGrammar
from priors.mixed import MixedPrior
from priors.sequence import build_causal_lm, pad_sequences, sequence_nll, token_nll
from tokenizers_vq.text import train_text_model
from tokenizers_vq.token_space import CodeSegment, TextSegment, TokenSpace

PROMPTS = ["an image of a sneaker", "an image of a bag", "the spoken word seven", "the spoken word two"]
LENGTHS = {"img": [(2, 2), (3, 3)], "aud": [(1, 5)]}
TINY = TransformerConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


@pytest.fixture(scope="module")
def space() -> TokenSpace:
    s = TokenSpace(train_text_model(PROMPTS * 10, vocab_size=40))
    s.add_stream("img", "image", [16, 8])  # two levels: 2 top codes, then 3 bottom codes
    s.add_stream("aud", "audio", [8])
    return s


def segments(space: TokenSpace):
    text = st.lists(st.integers(4, space.text_size - 1), max_size=6).map(TextSegment)
    img = st.tuples(
        st.lists(st.integers(0, 15), min_size=2, max_size=2), st.lists(st.integers(0, 7), min_size=3, max_size=3)
    ).map(lambda lv: CodeSegment("img", [list(lv[0]), list(lv[1])]))
    aud = st.lists(st.integers(0, 7), min_size=1, max_size=5).map(lambda c: CodeSegment("aud", [c]))
    return st.lists(st.one_of(text, img, aud), max_size=5)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_grammar_allows_every_stream_of_the_right_lengths(space, data):
    grammar = SegmentGrammar(space, LENGTHS)
    ids = space.serialize(data.draw(segments(space)))
    masks = grammar.masks(ids)
    assert masks.shape == (len(ids) - 1, space.vocab_size)
    assert all(bool(masks[t, ids[t + 1]]) for t in range(len(ids) - 1))


def test_grammar_rejects_wrong_lengths_and_orders(space):
    grammar = SegmentGrammar(space, LENGTHS)
    too_long = space.serialize([CodeSegment("aud", [[1] * 6])])
    with pytest.raises(ValueError, match="cannot follow"):
        grammar.masks(too_long)
    short_image = space.serialize([CodeSegment("img", [[1], [1, 2, 3]])])
    with pytest.raises(ValueError, match="cannot follow"):
        grammar.masks(short_image)
    # Inside an audio segment below its maximum: audio codes and </aud>, nothing else.
    allowed = grammar.allowed_after(space.serialize([CodeSegment("aud", [[3, 4]])], eos=False)[:-1])
    lo, hi = space.level_range("aud")
    assert set(allowed.nonzero().flatten().tolist()) == set(range(lo, hi)) | {space.streams["aud"].end}
    with pytest.raises(ValueError, match="missing"):
        SegmentGrammar(space, {"img": LENGTHS["img"]})
    with pytest.raises(ValueError, match="pairs"):
        SegmentGrammar(space, {**LENGTHS, "aud": [(3, 2)]})


def test_token_nll_matches_a_log_softmax_by_hand():
    torch.manual_seed(0)
    model = build_causal_lm(12, 8, TINY, bos=1, eos=2, pad=0).eval()
    ids, mask = pad_sequences([[1, 5, 6, 2], [1, 7, 2]], pad=0)
    with torch.no_grad():
        nll = token_nll(model, ids, mask)
        logp = model(input_ids=ids[1:2, :3]).logits.log_softmax(-1)
    assert nll[1, 2] == 0.0  # padding costs nothing
    assert nll[1, 0].item() == pytest.approx(-logp[0, 0, 7].item(), abs=1e-5)
    allowed = torch.zeros(2, 3, 12, dtype=torch.bool)
    allowed[..., 5:8] = True
    allowed[:, 2, 2] = True
    constrained = token_nll(model, ids, mask, allowed)
    assert (constrained[0] <= nll[0] + 1e-6).all()  # renormalising over fewer ids never costs more
    per_seq = sequence_nll(model, [[1, 5, 6, 2], [1, 7, 2]], pad=0, batch_size=1)
    assert [len(x) for x in per_seq] == [3, 2]
    assert per_seq[1][0] == pytest.approx(float(nll[1, 0]), abs=1e-5)


@pytest.fixture(scope="module")
def prior(space) -> MixedPrior:
    torch.manual_seed(0)
    return MixedPrior(space, LENGTHS, TINY).eval()


def test_samples_always_parse_with_the_grammar_lengths(prior):
    for prompt, stream in (("an image of a sneaker", None), ("the spoken word seven", "aud")):
        drawn, _ = prior.generate(prompt, 6, SamplingConfig(seed=1), stream=stream)
        assert len(drawn) == 6
        for seg in drawn:
            assert stream is None or seg.stream == stream
            if seg.stream == "img":
                assert [len(level) for level in seg.levels] == [2, 3]
            else:
                assert 1 <= len(seg.levels[0]) <= 5
    again, _ = prior.generate("the spoken word seven", 6, SamplingConfig(seed=1), stream="aud")
    assert again == prior.generate("the spoken word seven", 6, SamplingConfig(seed=1), stream="aud")[0]


def test_scores_are_normalised_over_the_grammar(prior, space):
    ids = space.serialize([space.text_segment("the spoken word two"), CodeSegment("aud", [[1, 2, 3, 4, 5]])])
    nll = prior.score([ids])[0]  # entry t predicts ids[t + 1]
    assert len(nll) == len(ids) - 1 and (nll >= 0).all()
    closing = ids.index(space.streams["aud"].end)
    assert nll[closing - 1] == pytest.approx(0.0, abs=1e-6)  # five codes is the maximum: </aud> is certain
    first_code = ids.index(space.streams["aud"].begin) + 1
    assert nll[first_code - 1] <= math.log(8) + 1.0  # eight codes and </aud> allowed, not the whole vocabulary


def test_saved_prior_loads_in_transformers_without_custom_code(prior, space, tmp_path):
    transformers = pytest.importorskip("transformers")
    prior.save_pretrained(tmp_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ids = space.serialize([space.text_segment("an image of a bag"), CodeSegment("img", [[3, 15], [0, 7, 1]])])
    text = space.to_string(ids)
    assert "<img0:15>" in text and "<img1:7>" in text
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    x = torch.tensor([ids])
    torch.testing.assert_close(model(x).logits, prior.model(x).logits)
    again = MixedPrior.from_pretrained(tmp_path)
    assert again.grammar.lengths == prior.grammar.lengths
    assert again.score([ids])[0].tolist() == pytest.approx(prior.score([ids])[0].tolist(), abs=1e-5)
