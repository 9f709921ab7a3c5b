"""Speech from a Hugging Face datasets folder (data.name=hf): a saved DatasetDict of FSDD recordings and a local
audio folder, read with Audio(decode=False) and soundfile (no TorchCodec), offline."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch

from modalities.speech import load_audio, write_synthetic_corpus
from modalities.speech.data import Selection, find_utterances, load_split


def _fsdd_dataset(shared: Path, folder: Path) -> tuple[Path, list[Path]]:
    """Digits 0-2 of george and jackson, recordings 0-2 (train) and 3 (test), as a saved DatasetDict."""
    recordings = shared / "fsdd" / "recordings"
    splits, files = {}, []
    for split, takes in (("train", (0, 1, 2)), ("test", (3,))):
        chosen = [recordings / f"{d}_{s}_{i}.flac" for s in ("george", "jackson") for d in range(3) for i in takes]
        files += chosen
        features = datasets.Features({"audio": datasets.Value("string"), "speaker": datasets.Value("string"),
                                      "digit": datasets.ClassLabel(names=["0", "1", "2"])})  # fmt: skip
        rows = {"audio": [str(p) for p in chosen], "digit": [int(p.name[0]) for p in chosen],
                "speaker": [p.stem.split("_")[1] for p in chosen]}  # fmt: skip
        # Paths cast to Audio: encoding rows as Audio directly would need TorchCodec.
        splits[split] = datasets.Dataset.from_dict(rows, features=features).cast_column("audio", datasets.Audio())
    datasets.DatasetDict(splits).save_to_disk(str(folder))  # embeds the files' bytes
    return folder, files


def _data(root: Path, **columns: str | None) -> SimpleNamespace:
    return SimpleNamespace(name="hf", root=str(root), layout="auto", audio_column=columns.get("audio"),
                           label_column=columns.get("label"), speaker_column=columns.get("speaker"))  # fmt: skip


def test_a_saved_dataset_gives_the_recordings(shared_data: Path, tmp_path: Path) -> None:
    folder, files = _fsdd_dataset(shared_data, tmp_path / "fsdd_hf")
    utterances = find_utterances(_data(folder), Selection())
    assert [u.index for u in utterances] == list(range(len(files)))  # row positions, splits end to end
    assert [u.id for u in utterances] == [p.stem for p in files]
    assert [u.speaker for u in utterances] == [p.stem.split("_")[1] for p in files]
    assert [u.label for u in utterances] == [p.name[0] for p in files]
    assert all(u.audio is not None for u in utterances)  # the saved bytes, not the original files
    split = load_split(_data(folder), Selection(speakers=["jackson"], min_index=18), 16000)
    assert [u.id for u in split.utterances] == ["0_jackson_3", "1_jackson_3", "2_jackson_3"]
    want, _ = load_audio(files[-1], 16000)
    assert torch.equal(split.waveforms[-1], want)
    with pytest.raises(ValueError, match=r"data\.audio_column='wave' is not a column"):
        find_utterances(_data(folder, audio="wave"), Selection())
    with pytest.raises(ValueError, match="labels must be whole numbers"):
        find_utterances(_data(folder, label="speaker"), Selection())


def test_train_tokenizer_and_tokenize_read_a_datasets_folder(shared_data: Path, tmp_path: Path) -> None:
    from recipes.cli import main as vqtok_cli

    folder, files = _fsdd_dataset(shared_data, tmp_path / "fsdd_hf")
    data = ["data.name=hf", f"data.root={folder}", "data.train.max_index=17", "data.eval.min_index=18"]
    run = tmp_path / "run"
    assert vqtok_cli(["train-tokenizer", "--config", "speech_tiny", "--out", str(run), "train.steps=2", *data]) == 0
    out = tmp_path / "codes"
    assert vqtok_cli(["tokenize", "--tokenizer", str(run / "tokenizer"), "--split", "eval", "--out", str(out)]) == 0
    assert np.load(out / "offsets.npy").shape == (7,)  # the 6 test rows, from the data set recorded with the tokenizer
    assert np.load(out / "labels.npy").tolist() == [int(p.name[0]) for p in files[18:]]


def test_a_local_audiofolder(tmp_path: Path) -> None:
    synthetic = write_synthetic_corpus(tmp_path / "synthetic", num_speakers=2, utterances_per_speaker=2)
    folder = tmp_path / "voices"
    rows = ["file_name,speaker,label"]
    for i, wav in enumerate(sorted(synthetic.glob("*/*.wav"))):
        (folder / "train").mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, folder / "train" / f"{wav.parent.name}_{wav.name}")
        rows.append(f"{wav.parent.name}_{wav.name},{wav.parent.name},{i % 2}")
    (folder / "train" / "metadata.csv").write_text("\n".join(rows) + "\n")
    utterances = find_utterances(_data(folder, label="label"), Selection(speakers=["spk1"]))
    assert [(u.speaker, u.label, u.audio) for u in utterances] == [("spk1", "0", None), ("spk1", "1", None)]
    assert utterances[0].path == folder / "train" / "spk1_u001.wav"  # the file itself, read from disk
    (folder / "train" / "metadata.csv").unlink()  # without metadata: the folder names are the labels, one speaker
    assert {u.speaker for u in find_utterances(_data(folder), Selection())} == {"unknown"}
