"""Phone labels in any script are drawn legibly in the confusion matrix: a font that has their glyphs, or the
code point written out, never an empty box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont

from modalities.speech.plots import confusion_png, legible_label

GREEK_AND_ACCENTED = ["Á", "Έ", "Ώ", "Ε", "Ω", "ʃ", "ŋ", "ж", "é"]
NO_FONT_HAS = "\U0010fffd"  # a private-use code point: no font draws it


def _ink(text: str, font_path: str, size: int = 24) -> np.ndarray:
    """The pixels of ``text`` drawn black on white in the font at ``font_path``."""
    image = Image.new("L", (4 * size, 2 * size), 255)
    ImageDraw.Draw(image).text((4, 4), text, fill=0, font=ImageFont.truetype(font_path, size))
    return np.asarray(image) < 128


@pytest.mark.parametrize("phone", GREEK_AND_ACCENTED)
def test_each_label_gets_a_font_that_has_its_glyphs(phone: str) -> None:
    shown, font = legible_label(phone)
    assert shown == phone
    assert all(ord(ch) in FT2Font(font).get_charmap() for ch in phone), font
    assert "LastResort" not in font  # matplotlib's placeholder font draws every character as a box


def test_labels_are_drawn_as_their_own_glyphs_not_boxes() -> None:
    # Boxes all look alike; real glyphs differ from one another and from the font's missing-glyph box.
    drawings = {phone: _ink(*legible_label(phone)) for phone in GREEK_AND_ACCENTED}
    box = _ink(NO_FONT_HAS, legible_label("Ω")[1])
    for phone, ink in drawings.items():
        assert ink.any(), phone
        assert not np.array_equal(ink, box), f"{phone} is drawn as the missing-glyph box"
    assert len({ink.tobytes() for ink in drawings.values()}) == len(drawings)


def test_a_character_no_font_has_is_written_as_its_code_point() -> None:
    shown, font = legible_label(f"a{NO_FONT_HAS}")
    assert shown == "aU+10FFFD"
    assert all(ord(ch) in FT2Font(font).get_charmap() for ch in shown)


def test_confusion_png_with_labels_in_other_scripts(tmp_path: Path) -> None:
    phones = [*GREEK_AND_ACCENTED, NO_FONT_HAS]
    path = confusion_png(np.eye(len(phones)) + 0.1, phones, tmp_path / "c.png", title="Ω and U+10FFFD")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > len(phones) * 14
