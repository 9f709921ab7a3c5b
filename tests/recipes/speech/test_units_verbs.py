"""A speech units tokenizer through ``vqtok``: staged training, a resume that matches an uninterrupted run, and the
speech verbs on it, on a tiny synthetic corpus (seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modalities.speech import write_synthetic_corpus
from recipes.cli import main
from recipes.engine.config import load_config
from recipes.tokenizer import train
from recipes.tokenizer.config import SpeechUnitsRecipeConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("units") / "corpus", utterances_per_speaker=5)


def data_args(corpus: Path) -> list[str]:
    """The tiny units preset on the synthetic corpus: utterances 1-3 train, 4-5 held out."""
    return ["--config", "speech_units_tiny", f"data.root={corpus}", "data.train.max_index=3", "data.eval.min_index=4",
            "data.eval.max_index=5"]  # fmt: skip


@pytest.fixture(scope="module")
def units_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("units_run") / "run"
    assert main(["train-tokenizer", *data_args(corpus), "--out", str(root)]) == 0
    return root


def test_train_tokenizer_runs_every_stage(units_run: Path) -> None:
    meta = json.loads((units_run / "tokenizer" / "config.json").read_text())
    assert meta["kind"] == "speech-units-tokenizer" and meta["config"]["speakers"] == ["spk0", "spk1"]
    rows = [json.loads(line) for line in (units_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [(r["step"], r["stage"]) for r in evals] == [(2, 1), (4, 2), (6, 3)]  # iteration 1, iteration 2, decoder
    assert {"mapping_accuracy", "pnmi", "usage"} <= set(evals[0])
    assert {"reconstruction_loss", "mapping_accuracy", "pnmi"} <= set(evals[-1])
    trains = [r for r in rows if r["kind"] == "train"]
    assert trains[0]["masked_accuracy"] >= 0 and trains[-1]["reconstruction_loss"] > 0
    assert (units_run / "checkpoint" / "units_targets_2.pt").is_file()
    weights = load_file(str(units_run / "tokenizer" / "model.safetensors"))
    assert int(weights["trained_steps"]) == 6 and bool(weights["quantizer.initialized"])


def test_a_run_killed_in_iteration_2_resumes_to_the_same_weights(corpus: Path, units_run: Path, tmp_path: Path) -> None:
    overrides = [*data_args(corpus)[2:], f"out={tmp_path / 'run'}"]
    cfg = load_config(SpeechUnitsRecipeConfig, "speech_units_tiny", overrides)

    def kill(step: int) -> None:
        if step == 3:  # after the checkpoint of step 2, inside masked-prediction iteration 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.run(cfg, on_step=kill)
    cfg = load_config(SpeechUnitsRecipeConfig, "speech_units_tiny", overrides)
    result = train.run(cfg, resume=True)
    assert result.resumed_from == 2 and result.step == 6
    a = load_file(str(tmp_path / "run" / "tokenizer" / "model.safetensors"))
    b = load_file(str(units_run / "tokenizer" / "model.safetensors"))
    for key in b:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"


def test_speech_verbs_take_a_units_tokenizer(corpus: Path, units_run: Path, tmp_path: Path, vqtok) -> None:
    tokenizer = units_run / "tokenizer"
    phones = vqtok("phones", *data_args(corpus), "--tokenizer", tokenizer, "--out", tmp_path / "phones", "--json",
                   "duration_penalty=2", "phones.abx=false")  # fmt: skip
    assert phones.code == 0, phones.err
    figures = phones.json()
    assert 0.0 <= figures["mapping_accuracy"] <= 1.0 and figures["duration_penalty"] == 2
    assert {"kmeans_mfcc", "kmeans_mfcc_penalized"} <= set(figures["baselines"])
    wav = vqtok("reconstruct", *data_args(corpus), "--tokenizer", tokenizer, "--out", tmp_path / "wav", "--json")
    assert wav.code == 0, wav.err and any(f.endswith("_codes.wav") for f in wav.json()["files"])
    corpus_out = vqtok("tokenize", *data_args(corpus), "--tokenizer", tokenizer, "--out", tmp_path / "codes", "--json")
    assert corpus_out.code == 0, corpus_out.err
    assert corpus_out.json()["codebook_size"] == 16 and corpus_out.json()["frame_rate"] == 50.0
    source = next(p for p in corpus.rglob("*.wav"))
    converted = vqtok("convert", *data_args(corpus), "--tokenizer", tokenizer, "--input", source, "--speaker", "spk1",
                      "--out", tmp_path / "as_spk1.wav")  # fmt: skip
    assert converted.code == 0, converted.err and (tmp_path / "as_spk1.wav").is_file()
    packed = vqtok("compress", *data_args(corpus), "--tokenizer", tokenizer, "--out", tmp_path / "eval.vqc", "--json")
    assert packed.code == 0, packed.err
    unpacked = vqtok("decompress", *data_args(corpus), "--tokenizer", tokenizer, "--input", tmp_path / "eval.vqc",
                     "--out", tmp_path / "back", "--speaker", "spk0", "--json")  # fmt: skip
    assert unpacked.code == 0, unpacked.err
    assert unpacked.json()["wav_files"] == 4


@pytest.mark.parametrize("features", ["[mfcc]", "[logmel]", "[logmel,mfcc]"])
def test_the_first_iterations_targets_cluster_the_chosen_features(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, features: str
) -> None:
    """model.target_features: iteration 1's k-means sees MFCC+deltas (39 wide) and/or the standardised log-mel
    averaged two frames per unit frame (n_mels wide), one row per unit frame of each training utterance."""
    from modalities.speech.units import training as units_training

    seen = []
    original = units_training.kmeans_codes

    def recording(fit, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([f.clone() for f in fit])
        return original(fit, *args, **kwargs)

    monkeypatch.setattr(units_training, "kmeans_codes", recording)
    overrides = [*data_args(corpus)[2:], f"out={tmp_path / 'run'}", f"model.target_features={features}",
                 "train.iteration_steps=[1]", "train.decoder_steps=1", "model.target_clusters=[8]"]  # fmt: skip
    cfg = load_config(SpeechUnitsRecipeConfig, "speech_units_tiny", overrides)
    assert train.run(cfg).step == 2
    names = features.strip("[]").split(",")
    width = {"mfcc": 39, "logmel": cfg.model.frontend.n_mels}
    assert len(seen) == len(names)  # one k-means per set (the codebook's is not a kmeans_codes call)
    for name, fit in zip(names, seen, strict=True):
        assert {f.shape[1] for f in fit} == {width[name]} and len(fit) == 6  # u001-u003 of both speakers
        assert all(torch.isfinite(f).all() for f in fit)
    assert [f.shape[0] for f in seen[0]] == [f.shape[0] for f in seen[-1]]  # the same unit frames in every set
    tokenizer_config = json.loads((tmp_path / "run" / "tokenizer" / "config.json").read_text())["config"]
    assert tokenizer_config["target_features"] == names
