"""The rate verbs through ``vqtok`` (in-process): compress → decompress is exact; damage and wrong models are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from modalities.image import ImageTokenizer, load_image_dataset


def _models(m: dict, tokenizer: str = "tokenizer", prior: str = "prior") -> list[str]:
    return ["--config", "tiny", "--tokenizer", str(m[tokenizer]), "--prior", str(m[prior])]


@pytest.fixture(scope="module")
def compressed(coding_models, tmp_path_factory, vqtok_module):
    path = tmp_path_factory.mktemp("compress") / "digits.vqc"
    code, out, err = vqtok_module("compress", *_models(coding_models), "--out", path, "--max-items", "120",
                                  "compress.chunk_size=50", "--json")  # fmt: skip
    assert code == 0, err
    return path, json.loads(out)


def test_compress_accounts_for_every_byte(compressed) -> None:
    path, figures = compressed
    assert figures["file_bytes"] == path.stat().st_size
    assert figures["header_bytes"] + figures["payload_bytes"] == figures["file_bytes"]
    assert figures["header_bytes"] < 200
    ideal = figures["nll_bits"] + figures["label_bits"]
    assert figures["coded_information_bits"] == pytest.approx(ideal, rel=1e-5)
    assert ideal <= figures["payload_bits"] <= 1.01 * ideal + 64
    assert figures["label_bits"] == pytest.approx(120 * np.log2(10))


def test_decompress_gives_back_the_exact_codes(compressed, coding_models, vqtok, tmp_path) -> None:
    path, _ = compressed
    out = tmp_path / "back"
    r = vqtok("decompress", *_models(coding_models), "--input", path, "--out", out, "--json")
    assert r.code == 0, r.err
    assert r.json()["items"] == 120
    data = load_image_dataset("digits", "test")
    tokenizer = ImageTokenizer.from_pretrained(coding_models["tokenizer"])
    with torch.no_grad():
        codes = tokenizer.encode(data.images[:120])
        images = (tokenizer.decode(codes).clamp(0, 1) * 255).round().to(torch.uint8)
    np.testing.assert_array_equal(np.load(out / "codes_level0.npy"), codes.levels[0].numpy())
    np.testing.assert_array_equal(np.load(out / "labels.npy"), data.labels[:120].numpy())
    np.testing.assert_array_equal(np.load(out / "images.npy"), images.numpy())
    assert len(list(out.glob("*.png"))) == 120


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-3], "truncated"),
        (lambda d: d[:60], "truncated"),
        (lambda d: d[:-9] + bytes([d[-9] ^ 1]) + d[-8:], "payload is corrupted"),
        (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "header is corrupted"),
        (lambda d: b"GIF8" + d[4:], "not a tokenizers-vq code file"),
    ],
)
def test_damaged_files_are_refused(compressed, coding_models, vqtok, tmp_path, damage, message) -> None:
    path, _ = compressed
    bad = tmp_path / "bad.vqc"
    bad.write_bytes(damage(path.read_bytes()))
    r = vqtok("decompress", *_models(coding_models), "--input", bad, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("tokenizer", "prior", "message"), [
    ("other_tokenizer", "prior", "different tokenizer"),
    ("tokenizer", "other_prior", "different prior"),
])  # fmt: skip
def test_mismatched_models_are_refused(compressed, coding_models, vqtok, tmp_path, tokenizer, prior, message) -> None:
    path, _ = compressed
    r = vqtok("decompress", *_models(coding_models, tokenizer, prior), "--input", path, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err


def test_compress_refuses_a_prior_of_another_tokenizer(coding_models, vqtok, tmp_path) -> None:
    # the other tokenizer's codes have the same layout, so only the prior's record of its tokenizer tells them apart
    r = vqtok("compress", *_models(coding_models, "other_tokenizer"), "--max-items", "4", "--out", tmp_path / "x.vqc")
    assert r.code == 2 and "trained on codes of a different tokenizer" in r.err and "--prior" in r.err
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "x.vqc").exists()


def test_images_compress_with_code_frequencies_without_a_prior(coding_models, vqtok, tmp_path) -> None:
    tokenizer = ["--config", "tiny", "--tokenizer", str(coding_models["tokenizer"])]
    path = tmp_path / "f.vqc"
    r = vqtok("compress", *tokenizer, "--max-items", "30", "compress.fit_items=200", "--out", path, "--json")
    assert r.code == 0, r.err
    f = r.json()
    assert f["rate_model"] == "unigram" and f["label_bits"] == 0 and f["file_bytes"] == path.stat().st_size
    assert f["nll_bits"] <= f["payload_bits"] <= 1.01 * f["nll_bits"] + 64
    assert f["bits_per_pixel"] == pytest.approx(8 * f["file_bytes"] / f["pixels"])
    r = vqtok("decompress", *tokenizer, "--input", path, "--out", tmp_path / "back", "decompress.png=false", "--json")
    assert r.code == 0, r.err
    assert r.json()["rate_model"] == "unigram" and not list((tmp_path / "back").glob("*.png"))
    images = load_image_dataset("digits", "test").images[:30]
    with torch.no_grad():
        codes = ImageTokenizer.from_pretrained(coding_models["tokenizer"]).encode(images).levels[0]
    np.testing.assert_array_equal(np.load(tmp_path / "back" / "codes_level0.npy"), codes.numpy())
    r = vqtok("decompress", *_models(coding_models), "--input", path, "--out", tmp_path / "x")
    assert r.code == 2 and "drop --prior" in r.err


def test_image_files_round_trip_with_a_label(coding_models, vqtok, tmp_path) -> None:
    folder = tmp_path / "pngs"
    folder.mkdir()
    images = load_image_dataset("digits", "test").images[:3]
    for i, image in enumerate(images):
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    r = vqtok("compress", *_models(coding_models), "--input", folder, "--out", tmp_path / "f.vqc")
    assert r.code == 2 and "compress.label" in r.err
    r = vqtok("compress", *_models(coding_models), "--input", folder, "--out", tmp_path / "f.vqc", "compress.label=4")
    assert r.code == 0, r.err
    r = vqtok("decompress", *_models(coding_models), "--input", tmp_path / "f.vqc", "decompress.png=false")
    assert r.code == 0, r.err
    tokenizer = ImageTokenizer.from_pretrained(coding_models["tokenizer"])
    with torch.no_grad():
        codes = tokenizer.encode(images).levels[0].numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "f" / "codes_level0.npy"), codes)
    np.testing.assert_array_equal(np.load(tmp_path / "f" / "labels.npy"), [4, 4, 4])


def test_rd_writes_a_table_and_a_plot(coding_models, vqtok, tmp_path) -> None:
    tokenizers = f"rd.tokenizers=[{coding_models['tokenizer']},{coding_models['other_tokenizer']}]"
    r = vqtok("rd", "--config", "tiny", tokenizers, f"rd.priors=[{coding_models['prior']}]", "--out", tmp_path,
              "--max-items", "64", "rd.fit_items=128", "rd.jpeg_qualities=[5,50,95]", "rd.webp_qualities=[0,100]",
              "--json")  # fmt: skip
    assert r.code == 0, r.err
    figures = json.loads((tmp_path / "rd.json").read_text())
    assert figures == {k: v for k, v in r.json().items() if k != "out_dir"}
    assert [p["rate_model"] for p in figures["points"]] == ["prior", "unigram"]
    with_prior = figures["points"][0]
    ideal = with_prior["nll_bits_per_pixel"] + with_prior["label_bits_per_pixel"]
    assert ideal <= with_prior["bits_per_pixel"] <= 1.01 * ideal + 64 / (64 * 16 * 16)
    assert [(c["codec"], c["quality"]) for c in figures["codecs"]] == [
        ("png", None), ("jpeg", 5), ("jpeg", 50), ("jpeg", 95), ("webp", 0), ("webp", 100)
    ]  # fmt: skip
    assert figures["codecs"][0]["psnr"] == 100.0  # lossless
    assert len(figures["matched"]) == 2 and (tmp_path / "rd.png").stat().st_size > 10_000
    jpeg = sorted(c["bits_per_pixel"] for c in figures["codecs"] if c["codec"] == "jpeg")
    for row in figures["matched"]:
        inside = jpeg[0] <= row["bits_per_pixel"] <= jpeg[-1]
        assert (row["jpeg_psnr"] is not None) == inside and (row["jpeg_between"] is not None) == inside
    r = vqtok("rd", "--config", "tiny", f"rd.tokenizers=[{coding_models['other_tokenizer']}]",
              f"rd.priors=[{coding_models['prior']}]", "--out", tmp_path / "x")  # fmt: skip
    assert r.code == 2 and "not in rd.tokenizers" in r.err


def test_speech_rd_beside_libsndfile_codecs(vqtok, tmp_path) -> None:
    from modalities.speech import write_synthetic_corpus

    data = write_synthetic_corpus(tmp_path / "data")
    r = vqtok("train-tokenizer", "--config", "speech_tiny", "--out", tmp_path / "tok", f"data.root={data}")
    assert r.code == 0, r.err
    r = vqtok("rd", "--config", "speech_tiny", f"data.root={data}", f"rd.tokenizers=[{tmp_path / 'tok' / 'tokenizer'}]",
              "rd.codec_levels=[0.5,0.99]", "--out", tmp_path / "rd", "--json")  # fmt: skip
    assert r.code == 0, r.err
    figures = r.json()
    (point,) = figures["points"]
    assert point["rate_model"] == "unigram" and 0 < point["bits_per_second"] <= 1.05 * point["uniform_bits_per_second"]
    assert {(c["codec"], c["level"]) for c in figures["codecs"]} == {
        (name, level) for name in ("opus", "vorbis", "mp3") for level in (0.5, 0.99)
    }
    opus = sorted((c for c in figures["codecs"] if c["codec"] == "opus"), key=lambda c: c["level"])
    assert opus[0]["bits_per_second"] > opus[1]["bits_per_second"]  # a higher level is a smaller file
    assert point["opus_lowest_bits_per_second"] == opus[1]["bits_per_second"]
    assert (tmp_path / "rd" / "rd.json").is_file() and (tmp_path / "rd" / "rd.png").is_file()
