"""Artifacts describe themselves: a verb given only a tokenizer learns its modality and data set from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modalities.base import load_tokenizer
from modalities.image import ImageTokenizer
from modalities.speech import SpeechTokenizer


def test_load_tokenizer_picks_the_class_from_the_folder(tiny_run: Path, speech_corpora: dict[str, Path]) -> None:
    assert type(load_tokenizer(tiny_run / "tokenizer")) is ImageTokenizer
    assert type(load_tokenizer(speech_corpora["tokenizer"])) is SpeechTokenizer
    with pytest.raises(ValueError, match="not a tokenizer"):
        load_tokenizer(_prior_like(tiny_run.parent / "not_a_tokenizer", tiny_run / "tokenizer"))


def _prior_like(target: Path, source: Path) -> Path:
    shutil.copytree(source, target, dirs_exist_ok=True)
    meta = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**meta, "kind": "prior"}))
    return target


def test_a_copied_image_tokenizer_tokenizes_its_own_data_without_config(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "elsewhere" / "tok"
    shutil.copytree(tiny_run / "tokenizer", alone)  # no run folder around it: the data set comes from config.json
    res = vqtok("tokenize", "--tokenizer", alone, "--split", "test", "--out", tmp_path / "codes", "--json")
    assert res.code == 0, res.err
    assert (res.json()["dataset"], res.json()["split"]) == ("digits", "test")
    meta = json.loads((tmp_path / "codes" / "meta.json").read_text())
    assert (tmp_path / "codes" / meta["tokenizer"]["path"]).resolve() == alone.resolve()


def test_a_speech_tokenizer_without_config_runs_the_speech_recipe(vqtok, speech_corpora, tmp_path: Path) -> None:
    res = vqtok("tokenize", "--tokenizer", speech_corpora["tokenizer"], "--split", "eval", "--out", tmp_path / "c",
                "--json")  # fmt: skip
    assert res.code == 0, res.err
    assert res.json()["num_utterances"] > 0 and res.json()["frame_rate"] == 50.0
    printed = vqtok("evaluate", "--tokenizer", speech_corpora["tokenizer"], "--print-config")
    assert "modality: speech" in printed.out and str(speech_corpora["data"]) in printed.out


def test_a_tokenizer_of_another_modality_than_the_config_is_refused(vqtok, tiny_run: Path) -> None:
    res = vqtok("evaluate", "--config", "speech_tiny", "--tokenizer", tiny_run / "tokenizer")
    assert res.code == 2
    assert "holds an image tokenizer" in res.err and "leave out --config" in res.err


def test_a_copied_run_folder_samples_from_any_working_directory(
    vqtok, tiny_run: Path, tmp_path: Path, monkeypatch
) -> None:
    """prior → its sources.json → corpus → meta.json → tokenizer, every hop relative to the artifact itself."""
    work = tmp_path / "work"
    shutil.copytree(tiny_run / "tokenizer", work / "runs" / "tok" / "tokenizer")
    monkeypatch.chdir(work)  # relative paths on the command line, as users type them
    assert vqtok("tokenize", "--tokenizer", "runs/tok/tokenizer", "--split", "test", "--out", "runs/codes").code == 0
    trained = vqtok("train-prior", "--config", "prior_tiny", "--corpus", "runs/codes", "--out", "runs/prior_run")
    assert trained.code == 0, trained.err
    moved = tmp_path / "moved"
    shutil.copytree(work / "runs", moved / "runs")
    shutil.rmtree(work / "runs")  # nothing of the original is left to find by accident
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = vqtok("sample", "--prior", moved / "runs" / "prior_run" / "prior", "--out", "s", "--json",
                "sample.num_samples=2")  # fmt: skip
    assert res.code == 0, res.err
    assert all(Path(f).is_file() for f in res.json()["files"])


def test_a_format_1_corpus_still_opens_and_names_its_tokenizer(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    """Corpora written before format 2 recorded an absolute tokenizer path and the SHA-256 of the weights file."""
    from tokenizers_vq.corpus import open_corpus
    from tokenizers_vq.io import sha256_file
    from tokenizers_vq.pretrained import matches_identity

    out = tmp_path / "old"
    assert vqtok("tokenize", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", out).code == 0
    meta = json.loads((out / "meta.json").read_text())
    weights_hash = sha256_file(tiny_run / "tokenizer" / "model.safetensors")
    meta.update(format_version=1, tokenizer={"path": str((tiny_run / "tokenizer").resolve()), "sha256": weights_hash})
    (out / "meta.json").write_text(json.dumps(meta))
    corpus = open_corpus(out)
    assert corpus.tokenizer_dir == (tiny_run / "tokenizer").resolve()
    assert matches_identity(corpus.meta["tokenizer"]["sha256"], corpus.tokenizer_dir)
