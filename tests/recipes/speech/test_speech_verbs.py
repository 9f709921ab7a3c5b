"""Smoke tests of every speech verb through ``vqtok``, on a tiny synthetic corpus (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from modalities.speech import write_synthetic_corpus
from recipes.cli import main


@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("speech") / "corpus", utterances_per_speaker=5)


def data_args(corpus: Path) -> list[str]:
    """The tiny preset on the synthetic corpus: utterances 1-3 train, 4-5 held out."""
    return [
        "--config",
        "speech_tiny",
        f"data.root={corpus}",
        "data.train.max_index=3",
        "data.eval.min_index=4",
        "data.eval.max_index=5",
    ]


@pytest.fixture(scope="session")
def speech_run(speech_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speech_run") / "run"
    assert main(["train-tokenizer", *data_args(speech_corpus), "--out", str(root)]) == 0
    return root


def test_train_tokenizer_writes_a_run(speech_run: Path) -> None:
    meta = json.loads((speech_run / "tokenizer" / "config.json").read_text())
    assert meta["kind"] == "speech-tokenizer" and meta["config"]["speakers"] == ["spk0", "spk1"]
    rows = [json.loads(line) for line in (speech_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"reconstruction_loss", "usage", "perplexity", "mapping_accuracy", "pnmi"} <= set(evals[-1])
    assert (speech_run / "checkpoint" / "state.pt").is_file() and (speech_run / "config.yaml").is_file()


def test_resumed_run_matches_an_uninterrupted_one(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    out = tmp_path / "run"
    assert vqtok("train-tokenizer", *data_args(speech_corpus), "--out", out, "train.steps=2").code == 0
    again = vqtok("train-tokenizer", *data_args(speech_corpus), "--out", out, "--resume", "--json")
    assert again.code == 0 and again.json()["resumed_from"] == 2 and again.json()["step"] == 4
    a = load_file(str(out / "tokenizer" / "model.safetensors"))
    b = load_file(str(speech_run / "tokenizer" / "model.safetensors"))
    for key in b:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"
    refused = vqtok("train-tokenizer", *data_args(speech_corpus), "--out", out)
    assert refused.code == 2 and "--resume" in refused.err


def test_evaluate(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    result = vqtok("evaluate", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--json",
                   "--out", tmp_path / "figures.json")  # fmt: skip
    assert result.code == 0, result.err
    figures = result.json()
    for key in ("log_mel_distance", "log_mel_distance_vocoder", "stoi", "stoi_vocoder", "bitrate", "usage"):
        assert np.isfinite(figures[key]), key
    assert figures["bitrate"] == 200.0 and figures["num_utterances"] == 2  # eval.max_utterances of the preset
    assert json.loads((tmp_path / "figures.json").read_text())["stoi"] == figures["stoi"]
    table = vqtok("evaluate", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer")
    assert "stoi_vocoder" in table.out


def test_reconstruct_writes_listening_samples(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    result = vqtok("reconstruct", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer",
                   "--out", tmp_path / "wav", "--json")  # fmt: skip
    assert result.code == 0, result.err
    files = sorted(Path(f).name for f in result.json()["files"])
    assert len(files) == 4 and any(f.endswith("_original.wav") for f in files)
    assert any("_as_spk" in f for f in files)
    info = sf.info(str(tmp_path / "wav" / files[0]))
    assert info.samplerate == 16000 and info.frames > 0
    assert (tmp_path / "wav" / "figures.json").is_file()
    # The spectrograms, originals above reconstructions, as the image grid shows images.
    assert result.json()["grid"] == str(tmp_path / "wav" / "reconstructions.png")
    assert (tmp_path / "wav" / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tokenize_writes_a_corpus(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    out = tmp_path / "codes"
    result = vqtok(
        "tokenize", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--out", out, "--json"
    )
    assert result.code == 0, result.err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["modality"] == "speech" and meta["frame_rate"] == 50.0 and meta["count"] == 6
    codes = np.load(out / "codes_level0.npy", mmap_mode="r")
    offsets = np.load(out / "offsets.npy")
    phones = np.load(out / "phones.npy")
    assert codes.dtype == np.int16 and offsets[0] == 0 and offsets[-1] == len(codes) == len(phones)
    assert (phones >= 0).mean() > 0.9 and set(meta["phones"]) == {"aa", "iy", "m", "pau", "s", "uw"}
    assert np.load(out / "speakers.npy").tolist() == [0, 0, 0, 1, 1, 1]


def test_phones_reports_codes_and_baselines(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    result = vqtok(
        "phones", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--out", tmp_path, "--json"
    )
    assert result.code == 0, result.err
    figures = result.json()
    assert 0.0 <= figures["mapping_accuracy"] <= 1.0 and 0.0 <= figures["pnmi"] <= 1.0
    assert set(figures["baselines"]) == {"kmeans_mfcc", "kmeans_mfcc_raw", "random"}
    assert figures["baselines"]["random"]["chance_accuracy"] == figures["chance_accuracy"]  # same frames
    assert figures["baselines"]["random"]["score_frames"] == figures["score_frames"]
    assert (tmp_path / "confusion.png").is_file() and (tmp_path / "figures.json").is_file()
    table = vqtok("phones", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--out", tmp_path)
    assert "kmeans_mfcc" in table.out and "mapping_accuracy" in table.out


def test_phones_with_a_duration_penalty(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    args = [*data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--out", tmp_path, "--json"]
    plain = vqtok("phones", *args, "phones.plot=false")
    smooth = vqtok("phones", *args, "phones.plot=false", "duration_penalty=4")
    assert plain.code == 0 and smooth.code == 0, smooth.err
    assert plain.json()["duration_penalty"] == 0.0 and smooth.json()["duration_penalty"] == 4.0
    assert "kmeans_mfcc_penalized" not in plain.json()["baselines"]
    assert smooth.json()["mean_run_frames"] > plain.json()["mean_run_frames"] >= 1.0  # longer runs of one code
    penalized = smooth.json()["baselines"]["kmeans_mfcc_penalized"]
    assert penalized["score_frames"] == smooth.json()["score_frames"]
    bad = vqtok("phones", *args, "duration_penalty=-1")
    assert bad.code == 2 and "duration_penalty" in bad.err


def test_tokenize_with_a_duration_penalty(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    runs = []
    for penalty in ("0", "4"):
        out = tmp_path / f"codes{penalty}"
        args = ["--tokenizer", speech_run / "tokenizer", "--out", out, f"duration_penalty={penalty}"]
        assert vqtok("tokenize", *data_args(speech_corpus), *args).code == 0
        codes = np.load(out / "codes_level0.npy")
        runs.append(int((codes[1:] != codes[:-1]).sum()))
        meta = json.loads((out / "meta.json").read_text())
        assert meta["tokenizer"]["config"]["duration_penalty"] == float(penalty)
    assert runs[1] < runs[0]


def test_phones_needs_labels(speech_run: Path, tmp_path: Path, vqtok) -> None:
    folder = tmp_path / "nolabels" / "spk0"
    folder.mkdir(parents=True)
    sf.write(folder / "u001.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 16000)
    result = vqtok("phones", "--config", "speech_tiny", f"data.root={tmp_path / 'nolabels'}", "data.train.max_index=null",
                   "data.eval.min_index=null", "data.eval.max_index=null", "--tokenizer", speech_run / "tokenizer")  # fmt: skip
    assert result.code == 2 and "phone labels" in result.err


def test_convert(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    source = speech_corpus / "spk0" / "u001.wav"
    out = tmp_path / "converted.wav"
    result = vqtok("convert", "--config", "speech_tiny", "--tokenizer", speech_run / "tokenizer", "--input", source,
                   "--speaker", "spk1", "--out", out, "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["speaker"] == "spk1" and sf.info(str(out)).samplerate == 16000
    bad = vqtok("convert", "--config", "speech_tiny", "--tokenizer", speech_run / "tokenizer", "--input", source,
                "--speaker", "nobody")  # fmt: skip
    assert bad.code == 2 and "unknown speaker 'nobody'" in bad.err


def test_tokenize_in_shards_equals_one_run(speech_corpus: Path, speech_run: Path, tmp_path: Path, vqtok) -> None:
    def tokenize(out: Path, *extra: str):
        return vqtok("tokenize", *data_args(speech_corpus), "--tokenizer", speech_run / "tokenizer", "--out", out,
                     "tokenize.chunk_size=2", *extra, "--json")  # fmt: skip

    assert tokenize(tmp_path / "whole").code == 0
    first = tokenize(tmp_path / "sharded", "--shard", "1/2").json()
    assert first["shards"]["merged"] is False and first["num_frames"] is None
    last = tokenize(tmp_path / "sharded", "--shard", "0/2").json()
    assert last["shards"]["merged"] is True and last["shards"]["chunks"] == 3
    whole = json.loads((tmp_path / "whole" / "meta.json").read_text())
    assert json.loads((tmp_path / "sharded" / "meta.json").read_text()) == whole and whole["count"] == 6
    for name in ("codes_level0.npy", "offsets.npy", "speakers.npy", "labels.npy", "phones.npy"):
        assert np.array_equal(np.load(tmp_path / "whole" / name), np.load(tmp_path / "sharded" / name)), name
    assert (tmp_path / "whole" / "utterances.jsonl").read_text() == (
        tmp_path / "sharded" / "utterances.jsonl"
    ).read_text()


def test_mean_run_frames() -> None:
    from recipes.speech.phones import mean_run_frames

    assert mean_run_frames([np.array([1, 1, 2, 2, 2, 3]), np.array([4])]) == pytest.approx(7 / 4)
    assert mean_run_frames([np.arange(5)]) == 1.0 and mean_run_frames([np.zeros(0, int)]) == 0.0
