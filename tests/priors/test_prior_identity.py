"""A prior folder knows its tensors: damaged weights are refused, the identity survives saving again, and a
transformer prior stays a plain transformers directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from prior_factories import make_pixelcnn, make_transformer
from transformers import AutoModelForCausalLM

from priors import load_prior
from tokenizers_vq.pretrained import DIGEST_KEY, directory_identity


def _flip_last_tensor_byte(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x04
    weights.write_bytes(bytes(data))


@pytest.mark.parametrize("make", [make_pixelcnn, make_transformer], ids=["pixelcnn", "transformer"])
def test_damaged_prior_weights_are_refused(tmp_path: Path, make) -> None:
    make().save_pretrained(tmp_path / "prior")
    _flip_last_tensor_byte(tmp_path / "prior" / "model.safetensors")
    with pytest.raises(ValueError, match=r"model\.safetensors is damaged: its tensors do not match the tensors_sha256"):
        load_prior(tmp_path / "prior")


@pytest.mark.parametrize("make", [make_pixelcnn, make_transformer], ids=["pixelcnn", "transformer"])
def test_a_prior_saved_again_keeps_its_identity(tmp_path: Path, make) -> None:
    make().float().save_pretrained(tmp_path / "a")  # float32, as priors are trained and loaded
    load_prior(tmp_path / "a").save_pretrained(tmp_path / "b")
    assert directory_identity(tmp_path / "a") == directory_identity(tmp_path / "b")
    assert directory_identity(tmp_path / "a") != directory_identity(_other(make, tmp_path / "c"))


def _other(make, directory: Path) -> Path:
    model = make().float()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(directory)
    return directory


def test_a_transformer_prior_with_its_digest_is_still_a_plain_transformers_directory(tmp_path: Path) -> None:
    make_transformer().save_pretrained(tmp_path / "prior")
    assert DIGEST_KEY in json.loads((tmp_path / "prior" / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "prior", local_files_only=True)
    assert getattr(model.config, DIGEST_KEY) == json.loads((tmp_path / "prior" / "config.json").read_text())[DIGEST_KEY]


def test_a_transformer_prior_saved_before_the_digest_still_loads(tmp_path: Path) -> None:
    make_transformer().save_pretrained(tmp_path / "prior")
    config = tmp_path / "prior" / "config.json"
    meta = json.loads(config.read_text())
    del meta[DIGEST_KEY]
    config.write_text(json.dumps(meta))
    assert load_prior(tmp_path / "prior").layout.shapes == [(3, 4), (6, 8)]
