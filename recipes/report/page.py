"""The page of ``vqtok report`` while it is built: its sections, its style, and the files it shows.

Every file the page shows is written or copied into the report folder and named relative to it: PNGs
beside ``index.html``, WAVs in ``audio/`` and their spectrograms in ``spectrograms/``.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modalities.speech.plots import spectrogram_png
from recipes.report.audio import LEGEND, AudioGroup, describe, group_wavs, read_wave
from recipes.report.contents import Output, relative_name
from recipes.report.tables import esc, figures_html

PIXEL_ART_WIDTH = 600  # a copied PNG narrower than this (an image grid) is scaled up without smoothing


def none_html(text: str) -> str:
    return f'<p class="none">{esc(text)}</p>'


def img_html(name: str, caption: str, pixels: bool = False) -> str:
    """A figure of the PNG ``name`` (relative to the page); ``pixels``: a small image grid, scaled up unsmoothed."""
    css = ' class="pixels"' if pixels else ""
    return f'<figure><img src="{esc(name)}"{css} alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def _png_width(data: bytes) -> int | None:
    """The width of a PNG from its header (IHDR follows the 8-byte signature), None for another file."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return struct.unpack(">I", data[16:20])[0]


def section_key(title: str) -> str:
    """A section's key in the result and its anchor on the page: ``Codebook usage`` → ``codebook_usage``."""
    return re.sub(r"[^a-z]+", "_", title.lower()).strip("_")


# Tables scroll sideways inside their box (.table) when wider than the page; long words wrap, numbers do not.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { font-size: 1.05em; }
nav { line-height: 1.8; } nav a { margin-right: 1em; } nav a.empty { color: #999; }
.table { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td { max-width: 40em; overflow-wrap: break-word; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; } img.pixels { image-rendering: pixelated; }
figure { margin: 0.5em 0 1.5em; } figcaption, .none, .facts { color: #666; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; white-space: pre-wrap; }
.utterance { border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.4em 0.8em; margin: 0.8em 0; }
.utterance h4 { margin: 0.2em 0 0.5em; } .facts { font-weight: normal; margin-left: 0.5em; }
.players { display: flex; flex-wrap: wrap; gap: 0.8em; } .players figure { margin: 0; width: 265px; max-width: 100%; }
.players audio { width: 100%; } details { margin: 0.5em 0 1em; } summary { cursor: pointer; }
"""


class Page:
    """The report being built in ``tmp`` (published to ``out`` when done): its sections and the files they show.

    Every file the page shows is written or copied into the folder and named relative to it, so the
    folder stands alone. Sections are rendered for ``base``, the main run directory: paths relative to it.
    """

    def __init__(self, tmp: Path, out: Path, roots: Sequence[Path], max_audio: int) -> None:
        self.tmp, self.out, self.roots, self.max_audio = tmp, out, list(roots), max_audio
        self.base = roots[0]
        self.sections: list[tuple[str, str, bool]] = []  # (title, body, has data)
        self.found: dict[str, bool] = {}  # snake_case section key → has data
        self.images: list[str] = []  # PNGs, relative to the folder
        self._names: set[str] = set()  # every file of the report, relative to the folder

    def add(self, title: str, parts: Sequence[str], missing: str) -> None:
        """A section: its parts, or when there are none the ``missing`` note; recorded in ``found``."""
        self.sections.append((title, "".join(parts) if parts else none_html(missing), bool(parts)))
        self.found[section_key(title)] = bool(parts)

    def new_file(self, stem: str, suffix: str, folder: str = "") -> str:
        """A new file name in the report, ``folder/stem{suffix}`` made safe and unique, relative to the folder.

        PNGs are listed in ``images``; the folder is made in the staging directory.
        """
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_.") or "file"
        prefix = f"{folder}/" if folder else ""
        candidate, i = f"{prefix}{name}{suffix}", 1
        while candidate in self._names:
            i += 1
            candidate = f"{prefix}{name}_{i}{suffix}"
        self._names.add(candidate)
        if suffix == ".png":
            self.images.append(candidate)
        (self.tmp / candidate).parent.mkdir(parents=True, exist_ok=True)
        return candidate

    def new_png(self, stem: str, folder: str = "") -> str:
        return self.new_file(stem, ".png", folder)

    def copy_in(self, source: Path, folder: str = "") -> str:
        """Copy ``source`` into the report (named after its place among the paths searched); its name there."""
        stem = relative_name(source, self.roots).removesuffix(source.suffix)
        name = self.new_file(stem, source.suffix.lower(), folder)
        shutil.copyfile(source, self.tmp / name)
        return name

    def copy_png(self, source: Path, caption: str) -> str:
        name = self.copy_in(source)
        width = _png_width((self.tmp / name).read_bytes()[:24])
        return img_html(name, caption, pixels=width is not None and width < PIXEL_ART_WIDTH)

    def label(self, path: Path) -> str:
        return relative_name(path, self.roots)

    def audio(self, wavs: Sequence[Path], rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """One block per utterance (:func:`group_wavs`); past ``max_audio`` of them the rest are collapsed."""
        groups = group_wavs(wavs, rows)
        blocks = [self.audio_group(g) for g in groups]
        utterances = any(len(g.files) > 1 for g in groups)
        legend = [f"<p>{esc(LEGEND)}</p>"] if utterances else []
        if len(blocks) <= self.max_audio:
            return legend + blocks
        rest = len(blocks) - self.max_audio
        what = "utterance" if utterances else "WAV file"
        more = f"<details><summary>{rest} more {what}{'s' if rest > 1 else ''}</summary>"
        return [*legend, *blocks[: self.max_audio], more + "".join(blocks[self.max_audio :]) + "</details>"]

    def audio_group(self, group: AudioGroup) -> str:
        """The files of one utterance side by side: each its label, a player and its log-mel spectrogram."""
        cells = []
        for label, wav in group.files:
            name = self.copy_in(wav, "audio")
            caption = label or wav.name
            cells.append(
                f"<figure><figcaption>{esc(caption)}</figcaption>"
                f'<audio controls preload="none" src="{esc(name)}"></audio>{self.spectrogram(name, caption)}</figure>'
            )
        facts = describe(group)
        facts_html = f'<span class="facts">{esc(facts)}</span>' if facts else ""
        return (
            f'<div class="utterance"><h4>{esc(group.name)}{facts_html}</h4>'
            f'<div class="players">{"".join(cells)}</div></div>'
        )

    def spectrogram(self, wav: str, caption: str) -> str:
        """The log-mel spectrogram PNG of the report's WAV ``wav``, as an ``<img>``."""
        wave = read_wave(self.tmp / wav)
        if wave is None:
            return none_html("not readable as audio, so no spectrogram")
        name = self.new_png(Path(wav).stem, "spectrograms")
        spectrogram_png(wave[0], wave[1], self.tmp / name)
        return f'<img src="{esc(name)}" alt="log-mel spectrogram: {esc(caption)}" loading="lazy">'

    def outputs(self, outputs: Sequence[Output]) -> list[str]:
        """A section's files: each PNG, the WAVs per utterance, then each JSON as tables."""
        pngs, jsons = [], []
        rows: list[Mapping[str, Any]] = []  # the utterances' figures, for the WAVs' headings
        for o in outputs:
            if o.kind == "png":
                pngs.append(self.copy_png(o.path, self.label(o.path)))
            elif o.kind == "json" and (figures := read_json(o.path)) is not None:
                jsons.append(f"<h3>{esc(self.label(o.path))}</h3>" + figures_html(figures, self.base))
                listed = figures.get("utterances")
                rows += [r for r in listed if isinstance(r, Mapping)] if isinstance(listed, list) else []
        return pngs + self.audio([o.path for o in outputs if o.kind == "wav"], rows) + jsons

    def html(self, title: str) -> str:
        nav = " ".join(
            f'<a href="#{section_key(t)}"{"" if has else " class=empty"}>{esc(t)}</a>' for t, _, has in self.sections
        )
        body = "".join(f'<h2 id="{section_key(t)}">{esc(t)}</h2>{b}' for t, b, _ in self.sections)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
        )


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
