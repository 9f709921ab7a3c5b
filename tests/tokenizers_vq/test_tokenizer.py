"""The tokenizer base: Codes, save/load written once, content identity, the data source kept with the weights."""

from __future__ import annotations

import json

import pytest
import torch

from modalities.image import ImageCodes, ImageTokenizer, ImageTokenizerConfig
from modalities.speech import SpeechCodes, SpeechTokenizer, SpeechTokenizerConfig
from tokenizers_vq.pretrained import content_identity, directory_identity, matches_identity
from tokenizers_vq.tokenizer import Codes, Tokenizer


def _image_tokenizer(seed: int = 0) -> ImageTokenizer:
    torch.manual_seed(seed)
    cfg = ImageTokenizerConfig(in_channels=1, hidden_channels=8, res_channels=4, codebook_size=16, code_dim=4)
    return ImageTokenizer(cfg).eval()


def test_codes_check_their_levels():
    with pytest.raises(TypeError, match="non-empty list"):
        Codes(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer codes"):
        Codes([torch.zeros(2, 3)])
    with pytest.raises(ValueError, match="same batch size"):
        Codes([torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"\(b, h, w\)"):
        ImageCodes([torch.zeros(2, 3, dtype=torch.long)])


def test_speech_codes_are_codes_with_levels_and_timing():
    residual = SpeechCodes(torch.arange(24).reshape(2, 4, 3), frame_rate=50.0, first_frame_time=0.01)
    assert isinstance(residual, Codes) and residual.num_levels == 3
    assert torch.equal(residual.levels[1], residual.codes[..., 1])
    one = residual[1]
    assert isinstance(one, SpeechCodes) and one.codes.shape == (1, 4, 3) and one.frame_rate == 50.0
    assert one.first_frame_time == 0.01
    flat = SpeechCodes(torch.zeros(1, 5, dtype=torch.long), 50.0)
    assert flat.levels[0].shape == (1, 5) and flat[0].codes.ndim == 2


def test_every_tokenizer_is_a_tokenizer_and_decodes_generic_codes():
    image = _image_tokenizer()
    speech = SpeechTokenizer(SpeechTokenizerConfig(hidden_channels=8, num_res_blocks=1, codebook_size=16, code_dim=4))
    assert isinstance(image, Tokenizer) and isinstance(speech, Tokenizer)
    assert (image.modality, speech.modality) == ("image", "speech")
    codes = speech.eval().encode(0.1 * torch.randn(4000), sample_rate=16000)
    generic = Codes(codes.levels, codes.frame_rate, codes.first_frame_time)
    assert torch.equal(speech.decode(generic), speech.decode(codes))
    with pytest.raises(ValueError, match="frames/s"):
        speech.decode(Codes(codes.levels, frame_rate=25.0))


def test_identity_is_stable_across_saves_and_sees_the_config(tmp_path):
    model = _image_tokenizer()
    model.save_pretrained(tmp_path / "a")
    ImageTokenizer.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    assert directory_identity(tmp_path / "a") == directory_identity(tmp_path / "b") == model.content_id()
    assert matches_identity(model.content_id(), tmp_path / "b")
    assert model.content_id() != _image_tokenizer(seed=1).content_id()
    config = model.config.to_dict()
    edited = {**config, "activation": "silu" if config.get("activation") != "silu" else "relu"}
    assert content_identity(edited, model.state_dict()) != model.content_id()


def test_data_source_travels_with_the_weights(tmp_path):
    model = _image_tokenizer()
    model.data_source = {"name": "digits", "root": None}
    model.save_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["data"]["name"] == "digits"
    assert ImageTokenizer.from_pretrained(tmp_path / "tok").data_source == {"name": "digits", "root": None}
