"""The rate–distortion plot of ``vqtok rd``: one panel per distortion measure against rate (log scale)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def rd_plot(
    points: Sequence[dict[str, Any]],
    curves: dict[str, Sequence[dict[str, Any]]],
    x: str,
    x_label: str,
    panels: Sequence[tuple[str, str]],
    title: str = "",
    lines: Sequence[tuple[float, str]] = (),
) -> bytes:
    """PNG bytes: tokenizer ``points`` as markers (named by ``name`` and ``rate_model``; points sharing a
    ``curve`` name, a residual tokenizer's depths, joined by a line and marked ``@depth``), each codec of
    ``curves`` as a line through its settings, ``lines`` as dashed verticals; one panel per ``(metric, label)``."""
    # Imported here: matplotlib is slow to import and only this needs it.
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    fig = Figure(figsize=(5.5 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for name, curve in curves.items():
            curve = sorted(curve, key=lambda p: p[x])
            ax.plot([p[x] for p in curve], [p[metric] for p in curve], "s-", ms=3, label=name)
        for position, name in lines:
            ax.axvline(position, color="grey", ls="--", label=name)
        for group in _curves(points):
            if len(group) == 1:
                p = group[0]
                ax.plot(p[x], p[metric], "o", ms=8, label=f"{p['name']} [{p['rate_model']}]")
                continue
            group = sorted(group, key=lambda p: p[x])
            ax.plot([p[x] for p in group], [p[metric] for p in group], "o-", ms=8,
                    label=f"{group[0]['curve']} [{group[0]['rate_model']}]")  # fmt: skip
            for p in group:
                ax.annotate(f"@{p['depth']}", (p[x], p[metric]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 0.1, 1, 10 rather than 10^-1 ...
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _curves(points: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``points`` grouped by their ``curve`` name in order of first appearance; a point without one stands alone."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p["curve"], p.get("tokenizer")) if "curve" in p else i, []).append(p)
    return list(groups.values())
