"""Speech data in the layouts users have: alignment formats (segment files, HTK, CTM), unlabelled stretches,
segments out of order, speakers from file names, symbolic links, and what an empty selection says."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from modalities.speech.data import Selection, find_utterances, list_utterances
from modalities.speech.labels import (
    ALIGNMENT_FORMATS,
    PhoneSegment,
    ctm_segments,
    find_alignment,
    read_ctm,
    read_phn,
    read_segments,
    reads_as_segments,
)
from modalities.speech.layouts import FSDD_PATTERN
from modalities.speech.phones import align
from recipes.tokenizer.config import SpeechDataConfig

A_B = [PhoneSegment(0.0, 0.05, "a"), PhoneSegment(0.1, 0.2, "b")]  # a gap from 0.05 to 0.1 s


def _wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(int(seconds * rate), 0.1, np.float32), rate)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- alignment formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a 0.0 0.05\nb 0.1 0.2\n",  # phone start end
        "0.0 0.05 a\n\n0.1 0.2 b\n",  # start end phone (WaveSurfer .lab)
        "0.0\t0.05\ta\n\\\t100.0\t2000.0\n0.05\t0.1\t\n0.1\t0.2\tb\n",  # Audacity: frequency line, a label without text
        "0 500000 a\n1000000 2000000 b\n",  # HTK: 100 ns units
    ],
)
def test_segment_files_in_either_order_and_unit(tmp_path: Path, text: str) -> None:
    segments = read_segments(_write(tmp_path / "u.lab", text))
    assert [s.phone for s in segments] == ["a", "b"]
    assert np.allclose([(s.start, s.end) for s in segments], [(s.start, s.end) for s in A_B])


def test_audacity_labels_keep_their_spaces(tmp_path: Path) -> None:
    segments = read_segments(_write(tmp_path / "Labels.txt", "0.5\t0.75\tlong vowel\n"))
    assert segments == [PhoneSegment(0.5, 0.75, "long vowel")]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a 0.0 0.1\n0.1 0.2 b\n", 2, "'phone start end'"),  # the order changes on line 2
        ("a 0.0 0.1\nb 0.1\n", 2, "expected"),
        ("a 0.2 0.3\nb 0.1 0.2\n", 2, "time order"),
        ("a 0.0 0.3\nb 0.2 0.4\n", 2, r"overlaps the one on line 1 \(0\.\.0\.3 s\)"),
        ("a 0.3 0.2\n", 1, "start <= end"),
    ],
)
def test_segment_file_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path / "bad.lab", text)
    with pytest.raises(ValueError, match=message) as err:
        read_segments(path)
    assert f"bad.lab:{line}:" in str(err.value) and "\n" not in str(err.value)


def test_three_numbers_per_line_are_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        read_segments(_write(tmp_path / "u.lab", "1 0.0 0.1\n2 0.1 0.2\n"))


def test_phn_out_of_order_or_overlapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"u\.phn:2: .*time order"):
        read_phn(_write(tmp_path / "u.phn", "800 1600 b\n0 800 a\n"), 16000)
    with pytest.raises(ValueError, match=r"u\.phn:2: .*overlaps"):
        read_phn(_write(tmp_path / "u.phn", "0 900 a\n800 1600 b\n"), 16000)
    # a gap is an unlabelled stretch, not an error
    assert [s.phone for s in read_phn(_write(tmp_path / "u.phn", "0 400 a\n800 1600 b\n"), 16000)] == ["a", "b"]


CTM = """;; utterance channel start duration phone confidence
spk0-u001 1 0.00 0.05 a 0.9
spk0-u002 1 0.10 0.10 c
spk0-u001 1 0.10 0.10 b 1.0
"""


def test_ctm_holds_many_utterances(tmp_path: Path) -> None:
    path = _write(tmp_path / "all.ctm", CTM)
    table = read_ctm(path)
    assert list(table) == ["spk0-u001", "spk0-u002"]
    assert np.allclose([(s.start, s.end) for s in table["spk0-u001"]], [(0.0, 0.05), (0.1, 0.2)])
    assert ctm_segments(path, "spk0-u002") == [PhoneSegment(0.1, 0.2, "c")]
    with pytest.raises(ValueError, match="holds utterances spk0-u001, spk0-u002 but not 'u003'"):
        ctm_segments(path, "u003")
    rounded = _write(tmp_path / "rounded.ctm", "u 1 0.0000 0.2513 a\nu 1 0.2512 0.0781 b\n")  # start + duration
    assert [s.phone for s in read_ctm(rounded)["u"]] == ["a", "b"]  # overshoots by a rounding unit: not an overlap
    one = _write(tmp_path / "u003.ctm", "whatever-id A 0.0 0.1 a\n")
    assert ctm_segments(one, "u003") == [PhoneSegment(0.0, 0.1, "a")]  # one utterance, beside its audio


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("u 1 0.0 0.1\n", 1, "expected 'utterance channel start duration phone"),
        ("u 1 0.0 zero a\n", 1, "expected"),
        ("u 1 0.2 0.1 a\nv 1 0.0 0.1 x\nu 1 0.1 0.1 b\n", 3, "time order"),  # v's lines are its own
        ("u 1 0.0 0.2 a\nu 1 0.1 0.1 b\n", 2, "overlaps"),
    ],
)
def test_ctm_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        read_ctm(_write(tmp_path / "bad.ctm", text))
    assert f"bad.ctm:{line}:" in str(err.value)


def test_unlabelled_stretches_are_left_out_of_scoring() -> None:
    # head (0-0.05 s), gap (0.15-0.25 s) and tail (past 0.35 s) carry no phone: 10 frames at 20/s, 4 labelled
    segments = [PhoneSegment(0.05, 0.15, "a"), PhoneSegment(0.25, 0.35, "b")]
    frames = align([np.arange(10)], [segments], 20.0, 0.025, ["a", "b"])
    assert frames.codes.tolist() == [1, 2, 5, 6] and frames.labels.tolist() == [0, 0, 1, 1]


# ---- which alignment file, and a corpus CTM --------------------------------------------------------------


def test_alignment_precedence_beside_the_audio(tmp_path: Path) -> None:
    audio = _wav(tmp_path / "u1.wav")
    _write(tmp_path / "u1.txt", "The birch canoe slid on the smooth planks.\n")  # a transcript, not an alignment
    assert find_alignment(audio, {p.name for p in tmp_path.iterdir()}) is None
    order = [("u1.txt", "0 0.1 a\n"), ("u1.lab", "a 0 0.1\n"), ("u1.ctm", "u1 1 0 0.1 a\n"),
             ("u1.TextGrid", "not read here\n"), ("u1.phn", "0 800 a\n")]  # fmt: skip
    for name, text in order:
        _write(tmp_path / name, text)
        assert find_alignment(audio, {p.name for p in tmp_path.iterdir()}) == tmp_path / name
    assert not reads_as_segments(tmp_path / "u1.TextGrid")
    assert ".ctm" in ALIGNMENT_FORMATS and ".lab" in ALIGNMENT_FORMATS and "data.ctm" in ALIGNMENT_FORMATS


def test_each_format_reads_through_the_listing(tmp_path: Path) -> None:
    for i, (suffix, text) in enumerate([(".phn", "0 400 a\n800 1600 b\n"), (".ctm", "u1 1 0 0.05 a\nu1 1 0.1 0.1 b\n"),
                                        (".lab", "0 0.05 a\n0.1 0.2 b\n"), (".txt", "a\t0\t0.05\nb\t0.1\t0.2\n")]):  # fmt: skip
        _wav(tmp_path / f"s{i}" / "u1.wav")
        _write(tmp_path / f"s{i}" / f"u1{suffix}", text)
    utterances = list_utterances(tmp_path)
    assert [u.phones_path.suffix for u in utterances] == [".phn", ".ctm", ".lab", ".txt"]
    for u in utterances:
        assert np.allclose([(s.start, s.end) for s in u.phones()], [(s.start, s.end) for s in A_B]), u.phones_path


def test_a_corpus_ctm_matches_utterances_by_stem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "corpus"
    for speaker in ("spk0", "spk1"):
        _wav(root / speaker / "u001.wav")
        _wav(root / speaker / f"{speaker}_only.wav")
    _write(root / "spk0" / "u001.phn", "0 1600 z\n")  # beside the audio: the corpus CTM comes first
    _write(root / "align" / "all.ctm", CTM + "spk1_only 1 0.0 0.1 d\n")
    utterances = {(u.speaker, u.id): u for u in list_utterances(root, ctm="align/all.ctm")}
    assert [s.phone for s in utterances["spk0", "u001"].phones()] == ["a", "b"]  # by speaker-stem
    assert utterances["spk1", "spk1_only"].phones() == [PhoneSegment(0.0, 0.1, "d")]  # by stem
    assert utterances["spk1", "u001"].phones_path is None  # not in the CTM, nothing beside it
    assert utterances["spk0", "u001"].phones_path == root / "align" / "all.ctm"
    monkeypatch.chdir(tmp_path)  # a relative path not below the root is taken from the working directory
    assert len(list_utterances(root, ctm="corpus/align/all.ctm")) == 4
    with pytest.raises(FileNotFoundError, match=r"data\.ctm 'missing\.ctm' not found"):
        list_utterances(root, ctm="missing.ctm")
    _write(root / "shared.ctm", "u001 1 0 0.1 a\n")  # spk0/u001 or spk1/u001?
    with pytest.raises(ValueError, match=r"2 files below the data folder have that stem; .* spk0-u001"):
        list_utterances(root, ctm="shared.ctm")
    _write(root / "other.ctm", "x 1 0 0.1 a\n")
    with pytest.raises(ValueError, match="must be the files' stems"):
        list_utterances(root, ctm="other.ctm")


def test_data_ctm_through_the_config(tmp_path: Path) -> None:
    _wav(tmp_path / "spk0" / "u001.wav")
    _write(tmp_path / "all.ctm", "u001 1 0 0.05 a\nu001 1 0.1 0.1 b\n")
    data = SpeechDataConfig(root=str(tmp_path), ctm="all.ctm")
    (utterance,) = find_utterances(data, data.train)
    assert [s.phone for s in utterance.phones()] == ["a", "b"]


# ---- speakers from file names ----------------------------------------------------------------------------


def test_speaker_from_a_prefix_or_a_regex(tmp_path: Path) -> None:
    for name in ("george_0_12", "george_1_3", "nicolas_2_5"):
        _wav(tmp_path / "flat" / f"{name}.wav")
    by_prefix = list_utterances(tmp_path / "flat", speaker_from="prefix")
    assert [(u.speaker, u.index) for u in by_prefix] == [("george", 3), ("george", 12), ("nicolas", 5)]
    by_regex = list_utterances(
        tmp_path / "flat", speaker_from="regex", speaker_pattern=r"^(?P<speaker>[a-z]+)_(?P<label>\d)_(?P<index>\d+)$"
    )
    assert [(u.speaker, u.label, u.index) for u in by_regex] == [("george", "1", 3), ("george", "0", 12),
                                                                 ("nicolas", "2", 5)]  # fmt: skip
    assert {u.speaker for u in list_utterances(tmp_path / "flat", speaker_from="folder")} == {"flat"}
    for name in ("ann_x-01", "bob-02"):
        _wav(tmp_path / "dashed" / f"{name}.wav")
    by_dash = list_utterances(tmp_path / "dashed", speaker_from="prefix", speaker_pattern="-")
    assert [(u.speaker, u.index) for u in by_dash] == [("ann_x", 1), ("bob", 2)]
    _wav(tmp_path / "flat" / "stray.wav")
    with pytest.raises(ValueError, match=r"stray\.wav does not match the speaker pattern"):
        list_utterances(tmp_path / "flat", speaker_from="prefix")


def test_fsdd_naming_is_a_speaker_regex(tmp_path: Path) -> None:
    for name in ("7_jackson_32", "0_george_0", "3_george_12"):
        _wav(tmp_path / "recordings" / f"{name}.wav")
    as_fsdd = list_utterances(tmp_path, "fsdd")
    as_regex = list_utterances(tmp_path, "folders", speaker_from="regex", speaker_pattern=FSDD_PATTERN)
    assert as_fsdd == as_regex == list_utterances(tmp_path)  # auto picks fsdd
    assert [(u.speaker, u.index, u.label) for u in as_fsdd] == [("george", 0, "0"), ("george", 12, "3"),
                                                                ("jackson", 32, "7")]  # fmt: skip
    # the folder overrides FSDD's speaker field, and nothing else
    assert {(u.speaker, u.label) for u in list_utterances(tmp_path, "fsdd", speaker_from="folder")} == {
        ("recordings", "7"), ("recordings", "0"), ("recordings", "3")}  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"speaker_from": "name"}, "data.speaker_from must be one of"),
        ({"speaker_from": "regex"}, "needs data.speaker_pattern"),
        ({"speaker_from": "regex", "speaker_pattern": "(?P<who>x)"}, r"\(\?P<speaker>"),
        ({"speaker_from": "regex", "speaker_pattern": "(x"}, "not a regular expression"),
        ({"speaker_pattern": "_"}, "only with data.speaker_from=prefix or regex"),
        ({"name": "hf", "speaker_from": "prefix"}, "speaker_column"),
    ],
)
def test_speaker_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpeechDataConfig(**settings)


def test_fsdd_itself_still_reads(shared_data: Path) -> None:
    folder = shared_data / "fsdd"
    if not folder.is_dir():
        pytest.skip("fsdd is not in the shared data folder")
    utterances = list_utterances(folder)
    by_speaker = {s: sorted(u.index for u in utterances if u.speaker == s) for s in {u.speaker for u in utterances}}
    assert len(utterances) == 2500 and len(by_speaker) == 5
    assert all(indices == sorted(list(range(50)) * 10) for indices in by_speaker.values())
    assert {u.label for u in utterances} == {str(d) for d in range(10)}
    assert utterances == list_utterances(folder, "folders", speaker_from="regex", speaker_pattern=FSDD_PATTERN)


# ---- symbolic links --------------------------------------------------------------------------------------


def test_symlinked_folders_and_files_are_followed_once(tmp_path: Path) -> None:
    _wav(tmp_path / "store" / "voice_a" / "u1.wav")
    _write(tmp_path / "store" / "voice_a" / "u1.lab", "0 0.1 a\n")
    _wav(tmp_path / "store" / "loose" / "u7.wav")
    root = tmp_path / "corpus"
    (root / "voice_b").mkdir(parents=True)
    os.symlink(tmp_path / "store" / "voice_a", root / "spk_a")  # a folder
    os.symlink(tmp_path / "store" / "loose" / "u7.wav", root / "voice_b" / "u7.wav")  # a file
    os.symlink(root, root / "voice_b" / "loop")  # a link back up the tree
    os.symlink(tmp_path / "nowhere.wav", root / "voice_b" / "u8.wav")  # broken: left out
    utterances = list_utterances(root)
    assert [(u.speaker, u.id) for u in utterances] == [("spk_a", "u1"), ("voice_b", "u7")]
    assert utterances[0].phones() == [PhoneSegment(0.0, 0.1, "a")]


# ---- an empty selection ----------------------------------------------------------------------------------


def test_an_empty_selection_says_what_there_is(tmp_path: Path) -> None:
    for speaker, indices in (("kal", (1, 2, 299)), ("slt", (5, 7))):
        for i in indices:
            _wav(tmp_path / speaker / f"h{i:03d}.wav")
    data = SimpleNamespace(name="corpus", root=str(tmp_path), layout="auto", train=Selection(min_index=300),
                           eval=Selection(speakers=["theo"]))  # fmt: skip
    with pytest.raises(ValueError) as err:
        find_utterances(data, data.train)
    message = str(err.value)
    assert "fits data.train" in message and "kal 1..299, slt 5..7" in message and "data.train.min_index" in message
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"fits data\.eval .*\(no speaker theo there\).*data\.eval\.speakers"):
        find_utterances(data, data.eval)
    with pytest.raises(ValueError, match=r"fits phones\.fit .*phones\.fit\.max_index"):
        find_utterances(data, Selection(max_index=0), setting="phones.fit")
