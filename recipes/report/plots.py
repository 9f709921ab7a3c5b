"""The pictures of ``vqtok report``: training curves from metrics rows and codebook-usage histograms (matplotlib, Agg).

Dimension legend: ``K`` codebook size, ``L`` levels.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never through
``pyplot``, so no display and no global figure state are involved, and written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tokenizers_vq.io import atomic_path
from tokenizers_vq.metrics import perplexity_from_counts

# Panels of the training curves: a title and the row keys drawn in it, in reading order. Keys a run
# does not log are left out; a panel with no key left is not drawn.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "reconstruction_loss")),
    ("PSNR (dB)", ("psnr",)),
    ("SSIM", ("ssim",)),
    ("log-mel distance (nats)", ("log_mel_distance",)),
    ("bits per code", ("bits_per_code",)),
    ("bits/dim", ("bits_per_dim",)),
    ("codebook usage (fraction of codes used)", ("usage",)),
    ("perplexity", ("perplexity",)),
    ("dead codes", ("dead_codes",)),
    ("phone mapping accuracy", ("mapping_accuracy",)),
    ("PNMI", ("pnmi",)),
    ("learning rate", ("lr",)),
)
_KINDS = ("train", "eval")


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=96)
    return path


def _per_level(value: Any) -> list[float] | None:
    """A row value as one number per level: a number is one level, a list of numbers is one per level."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return None


def row_series(row: Mapping[str, Any], key: str) -> list[float] | None:
    """``row[key]`` per level, or, for an evaluation row, the key inside its ``levels`` table (images)."""
    if key in row:
        return _per_level(row[key])
    levels = row.get("levels")
    if isinstance(levels, list) and levels and all(isinstance(lv, Mapping) and key in lv for lv in levels):
        return _per_level([lv[key] for lv in levels])
    return None


@dataclass
class Series:
    """One line of a panel: the steps and values of one key, kind of row and level."""

    label: str
    kind: str  # "train" or "eval"
    steps: list[int]
    values: list[float]


Panel = tuple[str, list[Series]]  # a panel's title and its lines


def curve_series(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[Series]:
    """The lines of a panel drawing ``keys``: per key, per row kind (train, eval) and per level."""
    out: list[Series] = []
    for key in keys:
        for kind in _KINDS:
            points = [(int(r["step"]), v) for r in rows if r.get("kind") == kind and (v := row_series(r, key))]
            if not points:
                continue
            levels = max(len(v) for _, v in points)
            for level in range(levels):
                steps = [s for s, v in points if level < len(v)]
                values = [v[level] for _, v in points if level < len(v)]
                name = key if levels == 1 else f"{key} level {level}"
                out.append(Series(f"{name} ({kind})", kind, steps, values))
    return out


def curve_panels(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Panel], list[Panel]]:
    """The panels of :data:`PANELS` the rows have data for: those with at least two steps to draw a line
    through, and those with one step only, whose values are better read as numbers than as a chart
    (one point gives an axis of made-up range)."""
    panels = [(name, s) for name, keys in PANELS if (s := curve_series(rows, keys))]
    drawn = [(name, s) for name, s in panels if len({step for line in s for step in line.steps}) >= 2]
    return drawn, [p for p in panels if p not in drawn]


def training_curves_png(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str) -> list[str]:
    """Draw every panel of :data:`PANELS` with two steps or more (:func:`curve_panels`) into one PNG; returns the
    panel titles drawn.

    Training rows are solid lines, evaluation rows dashed with markers; per-level figures get one
    line per level. Nothing is written when no panel has two steps.
    """
    panels, _ = curve_panels(rows)
    if not panels:
        return []
    cols = 2 if len(panels) > 1 else 1
    n_rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6.0 * cols, 3.2 * n_rows), layout="constrained")
    fig.suptitle(title)
    for i, (name, series) in enumerate(panels):
        ax = fig.add_subplot(n_rows, cols, i + 1)
        colors: dict[str, str] = {}  # one colour per figure and level, for its training and evaluation lines
        for s in series:
            color = colors.setdefault(s.label.rsplit(" (", 1)[0], f"C{len(colors) % 10}")
            style = {"linestyle": "--", "marker": "o", "markersize": 3} if s.kind == "eval" else {}
            if len(s.steps) == 1:  # a line of one point is invisible: mark it
                style = {**style, "marker": "o", "markersize": 4}
            ax.plot(s.steps, s.values, label=s.label, color=color, **style)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)
    return [name for name, _ in panels]


def usage_histogram_png(
    levels: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike[str], title: str, counts_are: str,
    min_count: float | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Bars of each level's code counts ``(K,)``, most used first; returns each level's :func:`code_stats`.

    ``counts_are`` names what the numbers are (the y axis), e.g. "EMA of uses per batch";
    ``min_count`` is passed on to :func:`code_stats`.
    """
    figures = []
    cols = min(len(levels), 2)
    n_rows = math.ceil(len(levels) / cols)
    fig = Figure(figsize=(6.0 * cols, 3.2 * n_rows), layout="constrained")
    fig.suptitle(title)
    for i, (name, counts) in enumerate(levels):
        stats = code_stats(counts, min_count)
        figures.append({"level": name, **stats})
        ordered = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
        ax = fig.add_subplot(n_rows, cols, i + 1)
        ax.bar(np.arange(ordered.size), ordered, width=1.0)
        ax.set_title(
            f"{name}: {stats['used']} of {stats['codebook_size']} codes used, perplexity {stats['perplexity']:.1f}",
            fontsize=9,
        )
        ax.set_xlabel("codes, most used first")
        ax.set_ylabel(counts_are, fontsize=8)
        ax.set_xlim(-0.5, ordered.size - 0.5)
    _save(fig, path)
    return figures


def code_stats(counts: np.ndarray, min_count: float | None = None) -> dict[str, Any]:
    """Codebook size, codes used, usage (the fraction used) and perplexity of a count vector ``(K,)``.

    A code is used when its count is above zero, or with ``min_count`` at least that (an EMA of
    counts decays towards zero but never reaches it, so it needs a threshold).
    """
    counts = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    used = int((counts >= min_count).sum() if min_count is not None else (counts > 0).sum())
    return {
        "codebook_size": int(counts.size),
        "used": used,
        "usage": used / counts.size if counts.size else 0.0,
        "perplexity": float(perplexity_from_counts(torch.from_numpy(counts))),
    }
