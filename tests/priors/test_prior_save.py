"""Prior directories: save, load, and reject what does not fit; the layout is checked on every call."""

from __future__ import annotations

import json

import pytest
import torch
from prior_factories import GRID_LAYOUT, SEQ_LAYOUT, make_pixelcnn, make_transformer, random_codes, random_labels
from transformers import LlamaForCausalLM

from priors import CodeLayout, PixelCNNPrior, TransformerPrior, load_prior


@pytest.mark.parametrize("make", [make_pixelcnn, lambda: make_pixelcnn(SEQ_LAYOUT), make_transformer],
                         ids=["pixelcnn", "wavenet", "transformer"])  # fmt: skip
def test_round_trip_keeps_the_scores(tmp_path, make):
    prior = make()
    levels, labels = random_codes(prior.layout, 2), random_labels(prior.layout, 2)
    prior.save_pretrained(tmp_path / "prior")
    loaded = load_prior(tmp_path / "prior").double()
    assert type(loaded) is type(prior)
    assert loaded.layout == prior.layout
    with torch.no_grad():
        assert torch.allclose(loaded(levels, labels).nll, prior(levels, labels).nll)


def test_transformer_prior_is_a_plain_transformers_directory(tmp_path):
    make_transformer().save_pretrained(tmp_path / "prior")
    model = LlamaForCausalLM.from_pretrained(tmp_path / "prior", local_files_only=True)
    assert model.config.vocab_size == 3 + 1 + 7 + 5
    assert json.loads((tmp_path / "prior" / "config.json").read_text())["vqtok_prior"]["layout"]["shapes"] == [
        [3, 4],
        [6, 8],
    ]


def test_loading_wrong_things_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_prior(tmp_path)
    LlamaForCausalLM(make_transformer().model.config.__class__(vocab_size=8, hidden_size=8, intermediate_size=8,
                     num_hidden_layers=1, num_attention_heads=1)).save_pretrained(tmp_path / "plain")  # fmt: skip
    with pytest.raises(ValueError, match="not a code prior"):
        TransformerPrior.from_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="config"):
        PixelCNNPrior.from_pretrained(tmp_path / "plain")


@pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])
def test_codes_that_do_not_fit_the_layout_raise(kind):
    prior = make_pixelcnn() if kind == "pixelcnn" else make_transformer()
    levels, labels = random_codes(GRID_LAYOUT, 2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="shape"):
        prior([levels[0], levels[1][:, :3]], labels)
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        prior([levels[0] + 7, levels[1]], labels)
    with pytest.raises(ValueError, match="level"):
        prior(levels[:1], labels)
    with pytest.raises(ValueError, match="labels"):
        prior(levels, None)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        prior(levels, torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="list"):
        prior(levels[0], labels)


def test_layout_checks_itself():
    with pytest.raises(ValueError, match="one shape"):
        CodeLayout(shapes=[(2, 2)], codebook_sizes=[4, 4])
    with pytest.raises(ValueError, match="2-D"):
        CodeLayout(shapes=[(2, 2), (4,)], codebook_sizes=[4, 4])
    assert CodeLayout.from_dict(GRID_LAYOUT.to_dict()) == GRID_LAYOUT
