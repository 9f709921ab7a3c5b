"""Pictures of speech (PNG): phone confusion matrices, and log-mel spectrograms drawn with ``librosa.display``.

Dimension legend: ``t`` samples, ``m`` mel bands, ``f`` frames, ``C`` phones.

Spectrograms are drawn on :class:`matplotlib.figure.Figure` objects, whose PNGs come from the Agg
canvas, never through ``pyplot``'s figure manager: no display, no global figure state.

Phone labels may be in any script (IPA, Greek, Cyrillic, Thai, ...): each is drawn in the first font
that has all its characters, among :data:`LABEL_FONT_FAMILIES` and then every other font matplotlib's
font manager knows; a character no font has is written as its code point (``U+0E01``), never as a box.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from tokenizers_vq.io import atomic_path

TOP_DB = 80.0  # range of the colour scale: a bin 80 dB or more below the reference is drawn as silence
_DB_PER_NAT = 20.0 / math.log(10.0)  # a natural-log magnitude difference in dB


# Tried first, in this order: DejaVu Sans (shipped with matplotlib) covers Latin with accents, Greek, Cyrillic
# and IPA; the others, where installed, add scripts it lacks.
LABEL_FONT_FAMILIES = (
    "DejaVu Sans", "Noto Sans", "Noto Sans Symbols", "Noto Sans CJK JP", "Noto Sans Thai", "Noto Sans Devanagari",
    "Noto Sans Arabic", "FreeSans", "FreeSerif", "Arial Unicode MS", "Liberation Sans",
)  # fmt: skip


# Fonts that claim characters they do not draw as such: Last Resort has a placeholder box for every code
# point (the very thing to avoid), TeX's cm* and STIX's size and non-Unicode fonts put symbols on letters' codes.
_UNFIT_FONTS = ("Last Resort", "cm", "STIXNonUnicode", "STIXSize")


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    """The code points that the font file at ``path`` has glyphs for (empty when it cannot be read)."""
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _font_files(everything: bool) -> list[str]:
    """Font files for labels: those of :data:`LABEL_FONT_FAMILIES` found on this machine, then (``everything``)
    every other TrueType/OpenType font matplotlib's font manager knows, by name."""
    found = []
    for family in LABEL_FONT_FAMILIES:
        try:
            found.append(
                str(font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False))
            )
        except ValueError:  # not installed here
            continue
    if everything:
        others = sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname))
        found += [
            f.fname
            for f in others
            if f.fname.lower().endswith((".ttf", ".otf")) and not f.name.startswith(_UNFIT_FONTS)
        ]
    return list(dict.fromkeys(found))


def legible_label(text: str) -> tuple[str, str]:
    """``text`` as it can be drawn, and the font file to draw it in.

    The first font that has every character of ``text`` (see the module docstring); when none has
    them all, the one that has most, with each character it lacks written as ``U+XXXX``. E.g.
    ``"Ω"`` → ``("Ω", ".../DejaVuSans.ttf")``; a character no font here has, ``"\\U0010fffd"`` →
    ``("U+10FFFD", ...)``.
    """
    needed = {ord(ch) for ch in text if not ch.isspace()}
    preferred = _font_files(everything=False)
    fonts = preferred
    if not any(needed <= _charmap(path) for path in preferred):
        fonts = _font_files(everything=True)  # the preferred families lack a character: look at every font
    for path in fonts:
        if needed <= _charmap(path):
            return text, path
    if not fonts:
        raise RuntimeError("matplotlib's font manager knows no TrueType font to draw labels with.")
    best = max(fonts, key=lambda path: len(needed & _charmap(path)))  # the first of the best, by order
    have = _charmap(best)
    return "".join(ch if ch.isspace() or ord(ch) in have else f"U+{ord(ch):04X}" for ch in text), best


def _label_font(text: str, size: int) -> tuple[str, ImageFont.FreeTypeFont]:
    shown, path = legible_label(text)
    return shown, _truetype(path, size)


@functools.cache
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def confusion_png(
    confusion: np.ndarray, phones: Sequence[str], path: str | os.PathLike[str], title: str = "", cell: int = 14
) -> Path:
    """Draw row-normalised ``confusion`` ``(C, C)`` (rows: true phone, columns: mapped phone) as a PNG.

    Dark cells are frequent; each row sums to 1 (a row of a phone that never occurs stays white).
    Phones are written along both axes, each in a font that has its characters (:func:`legible_label`);
    the file is written atomically.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    c = len(phones)
    if confusion.shape != (c, c):
        raise ValueError(f"confusion must be ({c}, {c}) for {c} phones; got {confusion.shape}.")
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = max(8, cell - 4)
    labels = [_label_font(p, size) for p in phones]
    label_w = max(int(font.getlength(text)) for text, font in labels) + 8
    top = label_w + (18 if title else 4)
    size_w, size_h = label_w + c * cell + 8, top + c * cell + 8
    image = Image.new("RGB", (size_w, size_h), "white")
    draw = ImageDraw.Draw(image)
    if title:
        shown, font = _label_font(title, size)
        draw.text((4, 2), shown, fill="black", font=font)
    for i in range(c):
        for j in range(c):
            level = round(255 * (1.0 - share[i, j]))
            x0, y0 = label_w + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(level, level, 255 if i == j else level))
    for i, (phone, font) in enumerate(labels):
        draw.text((label_w - 4 - font.getlength(phone), top + i * cell), phone, fill="black", font=font)
        # column labels written vertically: render, rotate and paste
        text = Image.new("RGB", (label_w, cell), "white")
        ImageDraw.Draw(text).text((4, 0), phone, fill="black", font=font)
        image.paste(text.rotate(90, expand=True), (label_w + i * cell, top - label_w))
    draw.rectangle([label_w - 1, top - 1, label_w + c * cell, top + c * cell], outline="black")
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def log_mel_db(waveform: np.ndarray, sample_rate: int, n_mels: int = 64) -> tuple[np.ndarray, int]:
    """Log-mel power spectrogram ``(m, f)`` of a mono waveform ``(t,)`` in dB below its loudest bin, and its hop.

    Windows of about 32 ms (a power of two in samples) every quarter window, through librosa: e.g.
    1 s at 16 kHz → 512-sample windows every 128 samples, ``(64, 126)``. Silence is 0 dB throughout.
    """
    import librosa  # imported here: its first use loads scipy.signal, seconds that only spectrograms need

    n_fft = 2 ** max(6, round(math.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    y = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if y.size == 0:
        return np.zeros((n_mels, 1), dtype=np.float32), hop
    power = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    return librosa.power_to_db(power, ref=np.max, top_db=TOP_DB), hop


def draw_log_mel(
    ax: Any, db: np.ndarray, sample_rate: int, hop_length: int, title: str = "", fmin: float = 0.0,
    fmax: float | None = None,
) -> Any:  # fmt: skip
    """Draw ``db`` ``(m, f)`` (0 down to -:data:`TOP_DB`) on ``ax``: time across, mel-scaled frequency up."""
    from librosa.display import specshow  # imports pyplot; the figures here never go through it

    mesh = specshow(
        db, sr=sample_rate, hop_length=hop_length, x_axis="time", y_axis="mel", fmin=fmin, fmax=fmax, ax=ax,
        vmin=-TOP_DB, vmax=0.0, cmap="magma",
    )  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(4))  # specshow's own crowds a short utterance's axis
    ax.set_xlabel("s", fontsize=8)
    ax.set_ylabel("Hz", fontsize=8)
    ax.tick_params(labelsize=7)
    return mesh


def figure_png(fig: Figure, path: str | os.PathLike[str], dpi: int = 96) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def spectrogram_png(waveform: np.ndarray, sample_rate: int, path: str | os.PathLike[str], title: str = "") -> Path:
    """A small PNG of the log-mel spectrogram of ``waveform`` ``(t,)`` (see :func:`log_mel_db`)."""
    db, hop = log_mel_db(waveform, sample_rate)
    fig = Figure(figsize=(3.6, 2.0), layout="constrained")
    draw_log_mel(fig.add_subplot(), db, sample_rate, hop, title)
    return figure_png(fig, path)


def reconstruction_spectrograms_png(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | os.PathLike[str], sample_rate: int,
    hop_length: int, fmin: float = 0.0, fmax: float | None = None, per_row: int = 4,
) -> Path:  # fmt: skip
    """Originals above their reconstructions, as the image grid shows images: one column per utterance.

    ``pairs``: ``(name, original, reconstruction)`` with log-mel ``(m, f)`` in natural-log magnitudes (a
    tokenizer's front end, at ``sample_rate`` every ``hop_length`` samples, bands from ``fmin`` to
    ``fmax``). Both are drawn in dB below the original's loudest bin, so their colours compare;
    ``per_row`` utterances across, further utterances in further pairs of rows.
    """
    if not pairs:
        raise ValueError("reconstruction_spectrograms_png needs at least one (name, original, reconstruction).")
    cols = min(len(pairs), per_row)
    rows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(3.2 * cols, 4.0 * rows), layout="constrained")
    fig.suptitle("log-mel spectrograms (dB below the original's loudest bin): originals above reconstructions")
    for i, (name, original, reconstruction) in enumerate(pairs):
        top = np.max(original)
        row, col = divmod(i, cols)
        for j, (log_mel, what) in enumerate(((original, "original"), (reconstruction, "from codes"))):
            ax = fig.add_subplot(2 * rows, cols, (2 * row + j) * cols + col + 1)
            db = np.clip(_DB_PER_NAT * (np.asarray(log_mel, dtype=np.float64) - top), -TOP_DB, 0.0)
            draw_log_mel(ax, db, sample_rate, hop_length, f"{name}: {what}", fmin, fmax)
    return figure_png(fig, path)
