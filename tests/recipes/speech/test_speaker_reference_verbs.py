"""The speech verbs on a speaker the tokenizer never heard: train-tokenizer's evaluation, evaluate, reconstruct
and convert, with a table of speakers and with a reference-clip tokenizer (seconds on a CPU)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import soundfile as sf

from modalities.speech import write_synthetic_corpus
from recipes.cli import main

SEEN = "data.train.speakers=[spk0,spk1]"
UNSEEN = "data.eval.speakers=[spk2]"


def data_args(corpus: Path) -> list[str]:
    """speech_tiny on three synthetic speakers: utterances 1-3 of spk0 and spk1 train, 4-5 of all three held out."""
    return ["--config", "speech_tiny", f"data.root={corpus}", "data.train.max_index=3", SEEN,
            "data.eval.min_index=4", "data.eval.max_index=5"]  # fmt: skip


@pytest.fixture(scope="module")
def three_speakers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_corpus(
        tmp_path_factory.mktemp("speech3") / "corpus", num_speakers=3, utterances_per_speaker=5
    )


@pytest.fixture(scope="module")
def runs(three_speakers: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A table tokenizer and a reference-clip one trained on spk0 and spk1; their train-tokenizer logs."""
    root = tmp_path_factory.mktemp("speaker_runs")
    out: dict[str, Path] = {}
    for kind in ("table", "reference"):
        log = root / f"{kind}.log"
        args = ["train-tokenizer", *data_args(three_speakers), "--out", str(root / kind),
                f"model.speaker_conditioning={kind}", "train.eval_utterances=null"]  # fmt: skip
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VQTOK_PROGRESS_SECONDS", "0")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                assert main(args) == 0
        log.write_text(err.getvalue())
        out[kind], out[f"{kind}_log"] = root / kind / "tokenizer", log
    return out


def test_training_says_what_a_table_skips_and_prints_no_nan(runs: dict[str, Path]) -> None:
    table = [line for line in runs["table_log"].read_text().splitlines() if line.startswith("eval @")]
    assert table and all("nan" not in line for line in table)
    assert all("no mel loss for 2 held-out utterances of spk2" in line for line in table), table
    reference = [line for line in runs["reference_log"].read_text().splitlines() if line.startswith("eval @")]
    assert reference and all("unseen speakers" in line and "nan" not in line for line in reference), reference


def test_evaluate_an_unseen_speaker(three_speakers: Path, runs: dict[str, Path], vqtok) -> None:
    args = [*data_args(three_speakers), UNSEEN, "--json"]
    refused = vqtok("evaluate", *args, "--tokenizer", runs["table"])
    assert refused.code == 2 and len(refused.err.strip().splitlines()) == 1
    assert "model.speaker_conditioning=reference" in refused.err and "spk0" in refused.err
    result = vqtok("evaluate", *args, "--tokenizer", runs["reference"])
    assert result.code == 0, result.err
    figures = result.json()
    assert figures["unseen_speakers"]["num_utterances"] == 2 and "seen_speakers" not in figures
    assert math.isfinite(figures["stoi"]) and figures["self_references"] == 0
    assert figures["reference_clip"] == "another utterance of the same speaker"


def test_evaluate_with_a_table_counts_what_it_skips(three_speakers: Path, runs: dict[str, Path], vqtok) -> None:
    result = vqtok("evaluate", *data_args(three_speakers), "eval.max_utterances=null", "--tokenizer", runs["table"],
                   "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["skipped_unknown_speakers"] == 2 and result.json()["num_utterances"] == 4


def test_reconstruct_an_unseen_speaker(three_speakers: Path, runs: dict[str, Path], tmp_path: Path, vqtok) -> None:
    result = vqtok("reconstruct", *data_args(three_speakers), UNSEEN, "--tokenizer", runs["reference"],
                   "--out", tmp_path / "wav", "reconstruct.num_utterances=2", "--json")  # fmt: skip
    assert result.code == 0, result.err
    rows = result.json()["utterances"]
    assert {r["speaker"] for r in rows} == {"spk2"} and {r["reference"] for r in rows} == {"u004", "u005"}
    assert all(r["reference"] != r["utterance"] for r in rows)


@pytest.fixture
def odd_input(three_speakers: Path, tmp_path: Path) -> Path:
    """An unseen speaker's utterance cut to a length that is no whole number of frames, alone in its folder."""
    wave, rate = sf.read(str(three_speakers / "spk2" / "u004.wav"))
    folder = tmp_path / "inputs"
    folder.mkdir()
    path = folder / "talk.wav"
    sf.write(str(path), wave[: 160 * 37 + 68], rate)
    return path


def test_convert_to_a_reference_clip_keeps_the_length_and_the_input_folder(
    three_speakers: Path, runs: dict[str, Path], odd_input: Path, tmp_path: Path, vqtok, monkeypatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    clip = three_speakers / "spk0" / "u001.wav"
    result = vqtok("convert", "--tokenizer", runs["reference"], "--input", odd_input, "--reference", clip, "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["output"])
    assert (work / out).resolve() == (work / "converted" / "talk_as_u001.wav").resolve()
    assert sf.info(str(work / out)).frames == sf.info(str(odd_input)).frames == 160 * 37 + 68
    assert sorted(p.name for p in odd_input.parent.iterdir()) == ["talk.wav"]  # nothing beside the input
    again = vqtok("convert", "--tokenizer", runs["reference"], "--input", odd_input, "--reference", clip)
    assert again.code == 2 and "already exists" in again.err
    into = vqtok("convert", "--tokenizer", runs["reference"], "--input", odd_input, "--reference", clip,
                 "--out", odd_input, "--overwrite")  # fmt: skip
    assert into.code == 2 and "is the input file" in into.err
    assert sf.info(str(odd_input)).frames == 160 * 37 + 68
    named = vqtok("convert", "--tokenizer", runs["reference"], "--input", odd_input, "--speaker", "spk0")
    assert named.code == 2 and "--reference CLIP" in named.err


def test_convert_with_a_table(runs: dict[str, Path], odd_input: Path, tmp_path: Path, vqtok) -> None:
    result = vqtok("convert", "--tokenizer", runs["table"], "--input", odd_input, "--speaker", "spk1",
                   "--out", tmp_path / "voices", "--json")  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["output"] == str(tmp_path / "voices" / "talk_as_spk1.wav")
    assert sf.info(str(tmp_path / "voices" / "talk_as_spk1.wav")).frames == 160 * 37 + 68
    refused = vqtok("convert", "--tokenizer", runs["table"], "--input", odd_input, "--reference", odd_input)
    assert refused.code == 2 and "model.speaker_conditioning=reference" in refused.err
