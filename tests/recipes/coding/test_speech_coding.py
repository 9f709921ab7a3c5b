"""Speech through the rate verbs: utterances → a code file → the exact codes (and WAVs); wrong models and damage refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from modalities.speech import load_audio


def _args(m: dict, tokenizer: str = "tokenizer", prior: str | None = "prior") -> list[str]:
    args = ["--config", "speech_tiny", f"data.root={m['data']}", "--tokenizer", str(m[tokenizer])]
    return args + (["--prior", str(m[prior])] if prior else [])


@pytest.fixture(scope="module")
def speech_files(speech_coding_models, tmp_path_factory, vqtok_module):
    """The eval split compressed with the prior and with code frequencies: {rate model: (path, figures)}."""
    folder = tmp_path_factory.mktemp("speech_compress")
    out = {}
    for rate_model, prior in (("prior", "prior"), ("unigram", None)):
        path = folder / f"{rate_model}.vqc"
        code, text, err = vqtok_module("compress", *_args(speech_coding_models, prior=prior), "--out", path, "--json")
        assert code == 0, err
        out[rate_model] = (path, json.loads(text))
    return out


def _corpus_codes(corpus) -> tuple[np.ndarray, np.ndarray]:
    return np.load(corpus / "codes_level0.npy").astype(np.int64), np.load(corpus / "offsets.npy")


@pytest.mark.parametrize("rate_model", ["prior", "unigram"])
def test_size_is_the_nll_of_the_codes(speech_files, rate_model) -> None:
    path, f = speech_files[rate_model]
    assert f["rate_model"] == rate_model and f["items"] == 2
    assert f["file_bytes"] == path.stat().st_size == f["header_bytes"] + f["payload_bytes"]
    ideal = f["nll_bits"] + f["label_bits"]
    assert f["coded_information_bits"] == pytest.approx(ideal, rel=1e-5)
    assert ideal <= f["payload_bits"] <= 1.01 * ideal + 64
    assert f["payload_bits_per_second"] == pytest.approx(f["payload_bits"] / f["audio_seconds"])
    assert f["uniform_bits_per_second"] == pytest.approx(f["frames"] * 4 / f["audio_seconds"])  # K = 16


@pytest.mark.parametrize("rate_model", ["prior", "unigram"])
def test_decompress_gives_back_the_exact_codes(speech_files, speech_coding_models, vqtok, tmp_path, rate_model) -> None:
    path, _ = speech_files[rate_model]
    prior = "prior" if rate_model == "prior" else None
    r = vqtok("decompress", *_args(speech_coding_models, prior=prior), "--input", path, "--out", tmp_path / "back",
              "--json")  # fmt: skip
    assert r.code == 0, r.err
    codes, offsets = _corpus_codes(speech_coding_models["eval_corpus"])  # what `vqtok tokenize` wrote
    np.testing.assert_array_equal(np.load(tmp_path / "back" / "codes_level0.npy"), codes)
    np.testing.assert_array_equal(np.load(tmp_path / "back" / "offsets.npy"), offsets)
    assert r.json()["frames"] == len(codes) and r.json()["wav_files"] == 0


def test_audio_files_round_trip_to_wavs(speech_coding_models, vqtok, tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted((speech_coding_models["data"] / "spk1").glob("*.wav"))[:2]
    for source in sources:
        wave, rate = sf.read(source)
        sf.write(folder / source.name.replace(".wav", ".flac"), wave, rate)
    r = vqtok("compress", *_args(speech_coding_models), "--input", folder, "--out", tmp_path / "f.vqc")
    assert r.code == 0, r.err
    args = _args(speech_coding_models), "--input", tmp_path / "f.vqc", "--out", tmp_path / "f"
    r = vqtok("decompress", *args[0], *args[1:], "decompress.wav=true")
    assert r.code == 2 and "--speaker NAME" in r.err and "spk0" in r.err
    r = vqtok("decompress", *args[0], *args[1:], "--speaker", "spk0", "--json")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "f").glob("*.wav")) == [s.name for s in sources]
    wave, rate = load_audio(tmp_path / "f" / sources[0].name)
    assert rate == 16000 and wave.abs().max() > 0
    rows = [json.loads(line) for line in (tmp_path / "f" / "utterances.jsonl").read_text().splitlines()]
    assert [row["name"] for row in rows] == [s.name.replace(".wav", ".flac") for s in sources]


def test_an_utterance_longer_than_the_prior_is_refused(speech_coding_models, vqtok, tmp_path) -> None:
    waves = [sf.read(p)[0] for p in sorted((speech_coding_models["data"] / "spk0").glob("*.wav"))]
    sf.write(tmp_path / "long.wav", np.concatenate(waves * 3), 16000)
    r = vqtok("compress", *_args(speech_coding_models), "--input", tmp_path / "long.wav", "--out", tmp_path / "l.vqc")
    assert r.code == 2 and "long.wav has" in r.err and "without --prior" in r.err
    r = vqtok("compress", *_args(speech_coding_models, prior=None), "--input", tmp_path / "long.wav",
              "--out", tmp_path / "l.vqc")  # fmt: skip
    assert r.code == 0, r.err


@pytest.mark.parametrize(("tokenizer", "prior", "message"), [
    ("other_tokenizer", "prior", "different tokenizer"),
    ("tokenizer", "other_prior", "different prior"),
    ("tokenizer", None, "pass --prior DIR"),
])  # fmt: skip
def test_mismatched_models_are_refused(speech_files, speech_coding_models, vqtok, tmp_path, tokenizer, prior, message):
    path, _ = speech_files["prior"]
    args = _args(speech_coding_models, tokenizer, prior)
    r = vqtok("decompress", *args, "--input", path, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err, r.err
    assert not (tmp_path / "out").exists()


def test_wrong_models_are_refused_when_compressing_too(speech_files, speech_coding_models, vqtok, tmp_path) -> None:
    r = vqtok("compress", *_args(speech_coding_models, "other_tokenizer"), "--out", tmp_path / "x.vqc")
    assert r.code == 2 and "trained on codes of a different tokenizer" in r.err
    r = vqtok(
        "decompress", *_args(speech_coding_models), "--input", speech_files["unigram"][0], "--out", tmp_path / "x"
    )
    assert r.code == 2 and "drop --prior" in r.err
    r = vqtok("decompress", *_args(speech_coding_models, "other_tokenizer", None), "--input",
              speech_files["unigram"][0], "--out", tmp_path / "x")  # fmt: skip
    assert r.code == 2 and "different tokenizer" in r.err


@pytest.mark.parametrize("rate_model", ["prior", "unigram"])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-4], "truncated"),
        (lambda d: d[:50], "truncated"),
        (lambda d: d[:-5] + bytes([d[-5] ^ 4]) + d[-4:], "payload is corrupted"),
    ],
)
def test_damaged_files_are_refused(speech_files, speech_coding_models, vqtok, tmp_path, rate_model, damage, message):
    path, _ = speech_files[rate_model]
    bad = tmp_path / "bad.vqc"
    bad.write_bytes(damage(path.read_bytes()))
    args = _args(speech_coding_models, prior="prior" if rate_model == "prior" else None)
    r = vqtok("decompress", *args, "--input", bad, "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err
    assert not (tmp_path / "out").exists()


def test_an_image_preset_refuses_a_speech_file(speech_files, coding_models, vqtok, tmp_path) -> None:
    path, _ = speech_files["prior"]
    r = vqtok("decompress", "--config", "tiny", "--tokenizer", coding_models["tokenizer"], "--prior",
              coding_models["prior"], "--input", path, "--out", tmp_path / "out")  # fmt: skip
    assert r.code == 2 and "speech preset" in r.err
