"""Bad input files given to ``vqtok``: each is read right, or refused in one line that names the file (exit 2).

Each test runs the verb as a user would and states what they get: the exit status and the key words of
the one line on standard error, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from modalities.image import ImageTokenizer, ImageTokenizerConfig

RAMP = np.arange(256, dtype=np.uint8).reshape(16, 16)


def _error(r, verb: str) -> str:
    """The one error line of a refused run (notes about the config may come before it)."""
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err, r.err
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"vqtok {verb}: error: "), r.err
    return last


# ---- images ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spread_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grey image tokenizer whose codebook was set by k-means on noise, so different images get different codes
    (the tiny trained run uses one code for almost everything)."""
    torch.manual_seed(0)
    config = ImageTokenizerConfig(in_channels=1, codebook_size=16, hidden_channels=16, res_channels=8,
                                  num_res_blocks=1, code_dim=8)  # fmt: skip
    model = ImageTokenizer(config).train()
    model(model.preprocess(torch.randint(0, 256, (32, 1, 16, 16), generator=torch.Generator().manual_seed(0),
                                         dtype=torch.uint8)))  # fmt: skip
    folder = tmp_path_factory.mktemp("spread") / "tokenizer"
    model.save_pretrained(folder)
    return folder


def test_compress_codes_a_16_bit_png_as_its_8_bit_copy(vqtok, spread_tokenizer: Path, tmp_path: Path) -> None:
    for name, pixels in (("deep", RAMP.astype(np.uint16) * 257), ("flat", RAMP), ("clipped", np.full_like(RAMP, 255))):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "img.png")
        r = vqtok("compress", "--tokenizer", spread_tokenizer, "--input", tmp_path / name / "img.png",
                  "--out", tmp_path / f"{name}.vqc")  # fmt: skip
        assert r.code == 0, r.err
    coded = {name: (tmp_path / f"{name}.vqc").read_bytes() for name in ("deep", "flat", "clipped")}
    assert coded["deep"] == coded["flat"]  # the same codes: was coded as the near-white picture it was clipped to
    assert coded["clipped"] != coded["flat"]  # (this tokenizer tells the two apart)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("truncated.jpg", None),  # said "Truncated File Read" without naming the file
        ("empty.png", b""),
        ("notes.png", b"not an image at all"),
    ],
)
def test_compress_names_an_image_file_it_cannot_decode(vqtok, tiny_run, tmp_path, name, content) -> None:
    path = tmp_path / name
    if content is None:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path, quality=90)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    r = vqtok("compress", "--tokenizer", tiny_run / "tokenizer", "--input", path, "--out", tmp_path / "x.vqc")
    assert f"cannot read {path} as an image" in _error(r, "compress")
    assert not (tmp_path / "x.vqc").exists()


def test_compress_refuses_float_pixels_naming_the_file(vqtok, tiny_run, tmp_path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(RAMP.astype(np.float32)).save(path)
    r = vqtok("compress", "--tokenizer", tiny_run / "tokenizer", "--input", path, "--out", tmp_path / "x.vqc")
    assert f"{path} holds floating-point pixels" in _error(r, "compress")


def test_compress_names_images_whose_size_the_tokenizer_cannot_take(vqtok, tiny_run, tmp_path) -> None:
    Image.fromarray(np.zeros((17, 17), np.uint8)).save(tmp_path / "odd.png")
    r = vqtok(
        "compress", "--tokenizer", tiny_run / "tokenizer", "--input", tmp_path / "odd.png", "--out", tmp_path / "x.vqc"
    )
    line = _error(r, "compress")  # said "data set 'files' has 17×17 images ... choose a smaller model.downsample"
    assert f"{tmp_path / 'odd.png'} holds 17×17 images" in line and "crop or pad them to multiples of 4" in line


def test_tokenize_takes_an_imagefolder_of_16_bit_grey_pngs_as_grey(vqtok, tiny_run, tmp_path) -> None:
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        Image.fromarray(RAMP.astype(np.uint16) * 257).save(tmp_path / "data" / label / "x.png")
    r = vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "data.name=imagefolder",
              f"data.root={tmp_path / 'data'}", "--split", "train", "--out", tmp_path / "codes", "--json")  # fmt: skip
    assert r.code == 0, r.err  # was: "data set 'imagefolder' has 3-channel images but model.in_channels=1"
    assert r.json()["num_images"] == 2


def test_tokenize_names_a_damaged_image_in_an_imagefolder(vqtok, tiny_run, tmp_path) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    Image.fromarray(RAMP).save(tmp_path / "data" / "a" / "good.png")
    (tmp_path / "data" / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    r = vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "data.name=imagefolder",
              f"data.root={tmp_path / 'data'}", "--split", "train", "--out", tmp_path / "codes")  # fmt: skip
    assert f"cannot read {tmp_path / 'data' / 'a' / 'bad.png'} as an image" in _error(r, "tokenize")


# ---- speech -------------------------------------------------------------------------------------------
def _with_file(data: Path, tmp_path: Path, name: str, write) -> Path:
    """A copy of the synthetic speech folder in which ``spk0/<name>`` is replaced by what ``write`` puts there."""
    copy = tmp_path / "data"
    for wav in data.rglob("*"):
        if wav.is_file():
            (copy / wav.relative_to(data)).parent.mkdir(parents=True, exist_ok=True)
            (copy / wav.relative_to(data)).write_bytes(wav.read_bytes())
    write(copy / "spk0" / name)
    return copy


def test_convert_refuses_a_one_sample_wav_naming_it(vqtok, speech_corpora, tmp_path) -> None:
    sf.write(tmp_path / "one.wav", np.array([0.5], np.float32), 16000)
    r = vqtok("convert", "--tokenizer", speech_corpora["tokenizer"], "--input", tmp_path / "one.wav",
              "--speaker", "spk0", "--out", tmp_path / "out.wav")  # fmt: skip
    line = _error(r, "convert")  # was a traceback from Griffin-Lim's padding
    assert f"{tmp_path / 'one.wav'} is too short: 1 sample at 16000 Hz" in line and "20.0 ms" in line
    assert not (tmp_path / "out.wav").exists()


def test_phones_refuses_a_one_sample_wav_in_the_data_naming_it(vqtok, speech_corpora, tmp_path) -> None:
    data = _with_file(speech_corpora["data"], tmp_path, "u004.wav", lambda p: sf.write(p, np.array([0.5]), 16000))
    r = vqtok("phones", "--config", "speech_tiny", "--tokenizer", speech_corpora["tokenizer"], f"data.root={data}",
              "--out", tmp_path / "phones")  # fmt: skip
    assert f"{data / 'spk0' / 'u004.wav'} is too short" in _error(r, "phones")  # was a traceback from the MFCCs


def test_tokenize_names_a_non_audio_wav_that_has_phone_labels(vqtok, speech_corpora, tmp_path) -> None:
    data = _with_file(speech_corpora["data"], tmp_path, "u004.wav", lambda p: p.write_text("not audio"))
    assert (data / "spk0" / "u004.phn").is_file()
    r = vqtok("tokenize", "--config", "speech_tiny", "--tokenizer", speech_corpora["tokenizer"], f"data.root={data}",
              "--split", "eval", "--out", tmp_path / "codes")  # fmt: skip
    assert f"cannot read {data / 'spk0' / 'u004.wav'} as audio" in _error(r, "tokenize")  # was a soundfile traceback


def test_tokenize_names_phone_labels_that_are_not_utf8(vqtok, speech_corpora, tmp_path) -> None:
    data = _with_file(speech_corpora["data"], tmp_path, "u004.phn", lambda p: p.write_bytes(b"0 800 \xe9\n"))
    r = vqtok("tokenize", "--config", "speech_tiny", "--tokenizer", speech_corpora["tokenizer"], f"data.root={data}",
              "--split", "eval", "--out", tmp_path / "codes")  # fmt: skip
    assert f"{data / 'spk0' / 'u004.phn'} is not a UTF-8 text file" in _error(r, "tokenize")


# ---- configs ------------------------------------------------------------------------------------------
def test_a_yaml_config_that_is_not_utf8_is_named(vqtok, tmp_path) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes(b"defaults: [tiny]\nname: caf\xe9\n")
    r = vqtok("train-tokenizer", "--config", config, "--out", tmp_path / "run")
    line = _error(r, "train-tokenizer")  # said only "'utf-8' codec can't decode byte 0xe9"
    assert f"config file '{config}' is not UTF-8 text" in line and "save it as UTF-8" in line


def test_warm_up_as_long_as_the_run_is_refused(vqtok, tmp_path) -> None:
    r = vqtok("train-tokenizer", "--config", "tiny", "--out", tmp_path / "run", "train.schedule=cosine",
              "train.steps=200", "train.warmup_steps=200")  # fmt: skip
    line = _error(r, "train-tokenizer")  # the rate peaked at 26% of train.lr, without a word
    assert "train.warmup_steps (200) must be fewer than train.steps (200)" in line
    assert not (tmp_path / "run").exists()


def test_a_folder_with_an_image_suffix_is_skipped(vqtok, tiny_run, tmp_path) -> None:
    (tmp_path / "in" / "sub.png").mkdir(parents=True)
    Image.fromarray(RAMP).save(tmp_path / "in" / "a.png")
    r = vqtok("compress", "--tokenizer", tiny_run / "tokenizer", "--input", tmp_path / "in",
              "--out", tmp_path / "x.vqc", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert json.loads(r.out)["items"] == 1
