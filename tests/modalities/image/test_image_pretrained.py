"""Saving and loading image tokenizers: exact round trips and clear errors for damaged directories."""

from __future__ import annotations

import json

import pytest
import torch

from modalities.image import ImageTokenizer

IMAGES = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def _trained(make_tokenizer, steps: int = 3, **overrides) -> ImageTokenizer:
    """A tokenizer whose codebooks went through k-means initialisation and a few EMA updates."""
    tok = make_tokenizer(in_channels=3, **overrides).train()
    opt = torch.optim.Adam(tok.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        tok(tok.preprocess(IMAGES)).loss.backward()
        opt.step()
    return tok


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_round_trip_is_exact(make_tokenizer, architecture, update, tmp_path):
    tok = _trained(make_tokenizer, update=update, **architecture)
    tok.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")

    assert loaded.config == tok.config
    assert not loaded.training
    state, loaded_state = tok.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for key in state:
        assert state[key].dtype == loaded_state[key].dtype, key
        assert torch.equal(state[key], loaded_state[key]), key
    assert all(bool(q.initialized) for q in loaded.quantizers)
    assert loaded.encode(IMAGES).equal(tok.encode(IMAGES))
    assert torch.equal(loaded.reconstruct(IMAGES), tok.reconstruct(IMAGES))


def test_training_resumes_without_reinitialising_codebooks(make_tokenizer, tmp_path):
    # If loading reset the k-means "initialized" flag, the next training pass would re-run k-means
    # and the two models would part ways; they must take exactly the same step.
    tok = _trained(make_tokenizer, kind="vqvae2", num_levels=2, downsample=2)
    tok.save_pretrained(tmp_path)
    loaded = ImageTokenizer.from_pretrained(tmp_path).train()
    with torch.no_grad():
        tok(tok.preprocess(IMAGES))
        loaded(loaded.preprocess(IMAGES))
    for key, value in tok.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_directory_layout(make_tokenizer, tmp_path):
    tok = make_tokenizer()
    out = tok.save_pretrained(tmp_path / "a" / "b")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temporary files left
    meta = json.loads((out / "config.json").read_text())
    assert meta["format_version"] == 1
    assert meta["kind"] == "image-tokenizer"
    assert meta["config"] == tok.config.to_dict()
    tok.save_pretrained(out)  # saving over an existing directory replaces it
    assert ImageTokenizer.from_pretrained(out).config == tok.config


def _edit_config(directory, change) -> None:
    path = directory / "config.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_loading_errors(make_tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        ImageTokenizer.from_pretrained(tmp_path)

    tok = make_tokenizer()
    good = tok.save_pretrained(tmp_path / "good")

    def saved(name):
        return tok.save_pretrained(tmp_path / name)

    d = saved("no-weights")
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing"):
        ImageTokenizer.from_pretrained(d)

    d = saved("version")
    _edit_config(d, lambda m: m.update(format_version=2))
    with pytest.raises(ValueError, match="format_version 2"):
        ImageTokenizer.from_pretrained(d)

    d = saved("kind")
    _edit_config(d, lambda m: m.update(kind="speech-tokenizer"))
    with pytest.raises(ValueError, match="speech-tokenizer"):
        ImageTokenizer.from_pretrained(d)

    d = saved("bad-json")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ImageTokenizer.from_pretrained(d)

    d = saved("mismatch")
    _edit_config(d, lambda m: m["config"].update(codebook_size=32))
    with pytest.raises(ValueError, match="do not match"):
        ImageTokenizer.from_pretrained(d)

    d = saved("bad-field")
    _edit_config(d, lambda m: m["config"].update(downsample=3))
    with pytest.raises(ValueError, match="power of two"):
        ImageTokenizer.from_pretrained(d)

    d = saved("truncated")
    (d / "model.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="safetensors"):
        ImageTokenizer.from_pretrained(d)

    with pytest.raises(ValueError, match="not a directory"):
        tok.save_pretrained(good / "config.json")
