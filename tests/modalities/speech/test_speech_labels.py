"""Phone label readers (.phn, TextGrid), the TIMIT folding, frame alignment, and data set listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from modalities.speech import (
    TIMIT_61_TO_39,
    PhoneSegment,
    Selection,
    apply_phone_map,
    find_data_folder,
    frame_labels,
    list_utterances,
    read_phn,
    read_textgrid,
    select,
)

# A Praat TextGrid in its long text format: the header, then per tier an item and its intervals.
TEXTGRID_HEAD = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = {xmax}
tiers? <exists>
size = {size}
item []:
"""
TEXTGRID_TIER = """    item [{i}]:
        class = "IntervalTier"
        name = "{name}"
        xmin = 0
        xmax = {xmax}
        intervals: size = {size}
"""
TEXTGRID_INTERVAL = """        intervals [{j}]:
            xmin = {start}
            xmax = {end}
            text = "{text}"
"""


def long_textgrid(tiers: dict[str, list[tuple[float, float, str]]], xmax: float) -> str:
    """The text of a TextGrid with one interval tier per entry of ``tiers`` (name: (start, end, text) intervals)."""
    text = TEXTGRID_HEAD.format(xmax=xmax, size=len(tiers))
    for i, (name, intervals) in enumerate(tiers.items(), 1):
        text += TEXTGRID_TIER.format(i=i, name=name, xmax=xmax, size=len(intervals))
        for j, (start, end, label) in enumerate(intervals, 1):
            text += TEXTGRID_INTERVAL.format(j=j, start=start, end=end, text=label)
    return text


# Words and phones of "hi", the last phone interval empty (a pause), as an aligner writes them.
TEXTGRID = long_textgrid(
    {"words": [(0, 0.3, "hi")], "phones": [(0, 0.1, "hh"), (0.1, 0.25, "ay"), (0.25, 0.3, "")]}, 0.3
)


def test_read_phn_converts_samples_to_seconds(tmp_path: Path) -> None:
    path = tmp_path / "a.phn"
    path.write_text("0 1600 h#\n1600 4000 ae\n\n4000 4800 q\n")
    segments = read_phn(path, 16000)
    assert segments == [PhoneSegment(0.0, 0.1, "h#"), PhoneSegment(0.1, 0.25, "ae"), PhoneSegment(0.25, 0.3, "q")]


@pytest.mark.parametrize(
    ("text", "message"), [("0 10\n", "expected"), ("0 x ae\n", "integers"), ("10 5 ae\n", "start")]
)
def test_read_phn_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.phn"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_phn(path, 16000)
    assert "bad.phn:1" in str(err.value)


def test_read_textgrid_picks_the_phone_tier(tmp_path: Path) -> None:
    path = tmp_path / "a.TextGrid"
    path.write_text(TEXTGRID)
    assert read_textgrid(path) == [PhoneSegment(0.0, 0.1, "hh"), PhoneSegment(0.1, 0.25, "ay")]
    assert read_textgrid(path, tier="words") == [PhoneSegment(0.0, 0.3, "hi")]
    with pytest.raises(ValueError, match="no interval tier 'syllables'"):
        read_textgrid(path, tier="syllables")
    broken = tmp_path / "broken.TextGrid"
    broken.write_text("this is not a textgrid")
    with pytest.raises(ValueError, match=r"broken\.TextGrid"):
        read_textgrid(broken)


def test_timit_folding_has_39_classes_and_drops_q() -> None:
    assert len(TIMIT_61_TO_39) == 61
    assert len({v for v in TIMIT_61_TO_39.values() if v is not None}) == 39
    folded = apply_phone_map(
        [PhoneSegment(0, 1, "ao"), PhoneSegment(1, 2, "q"), PhoneSegment(2, 3, "bcl"), PhoneSegment(3, 4, "ix")],
        TIMIT_61_TO_39,
    )
    assert [s.phone for s in folded] == ["aa", "sil", "ih"]
    with pytest.raises(ValueError, match="not in the phone map"):
        apply_phone_map([PhoneSegment(0, 1, "xyz")], TIMIT_61_TO_39)


def test_frame_labels_use_frame_centres() -> None:
    segments = [PhoneSegment(0.0, 0.1, "a"), PhoneSegment(0.1, 0.3, "b")]
    assert frame_labels(segments, 6, 20.0) == ["a", "a", "b", "b", "b", "b"]
    # past the end, and in a gap, there is no phone
    assert frame_labels(segments, 8, 20.0)[-2:] == [None, None]
    gap = [PhoneSegment(0.0, 0.05, "a"), PhoneSegment(0.1, 0.2, "b")]
    assert frame_labels(gap, 4, 20.0) == ["a", None, "b", "b"]
    # frames whose first centre sits at t = 0 (centred STFT frames)
    assert frame_labels(segments, 3, 10.0, first_frame_time=0.0) == ["a", "b", "b"]


def _touch_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(80, 0.1, np.float32), 8000)


def test_fsdd_and_folder_layouts(tmp_path: Path) -> None:
    for name in ("7_jackson_32", "0_george_0", "3_george_12"):
        _touch_wav(tmp_path / "fsdd" / f"{name}.wav")
    utts = list_utterances(tmp_path / "fsdd")
    assert [(u.speaker, u.index, u.label) for u in utts] == [
        ("george", 0, "0"),
        ("george", 12, "3"),
        ("jackson", 32, "7"),
    ]
    assert [u.id for u in select(utts, Selection(max_index=4))] == ["0_george_0"]
    assert [u.id for u in select(utts, Selection(speakers=["jackson"]))] == ["7_jackson_32"]

    _touch_wav(tmp_path / "voices" / "kal" / "h012.wav")
    (tmp_path / "voices" / "kal" / "h012.phn").write_text("0 80 pau\n")
    _touch_wav(tmp_path / "voices" / "slt" / "h003.flac")
    utts = list_utterances(tmp_path / "voices")
    assert [(u.speaker, u.id, u.index) for u in utts] == [("kal", "h012", 12), ("slt", "h003", 3)]
    assert utts[0].phones() == [PhoneSegment(0.0, 0.01, "pau")]
    with pytest.raises(ValueError, match="no phone labels"):
        utts[1].phones()
    with pytest.raises(ValueError, match="min_index <= max_index"):
        Selection(min_index=5, max_index=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio"):
        list_utterances(tmp_path / "empty")
    with pytest.raises(ValueError, match="FSDD naming"):
        list_utterances(tmp_path / "voices", layout="fsdd")


def test_find_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fsdd").mkdir()
    monkeypatch.setenv("VQTOK_DATA", str(tmp_path))
    assert find_data_folder("fsdd") == tmp_path / "fsdd"
    assert find_data_folder("anything", root=tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="VQTOK_DATA"):
        find_data_folder("nowhere-such-data")


def test_festival_phones_are_read_exactly(shared_data: Path) -> None:
    folder = shared_data / "festival-phones"
    if not folder.is_dir():
        pytest.skip("festival-phones is not in the shared data folder")
    utts = select(list_utterances(folder, "folders"), Selection(speakers=["kal_diphone"], max_index=1))
    assert [u.id for u in utts] == ["h001"]
    segments = utts[0].phones()
    info = sf.info(str(utts[0].path))
    assert segments[0].phone == "pau" and segments[0].start == 0.0
    assert abs(segments[-1].end - info.frames / info.samplerate) < 1e-9
