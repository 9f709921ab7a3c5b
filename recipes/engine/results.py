"""Plain aligned-text tables for the figures a verb reports (the same figures ``--json`` prints); training results."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self


def format_value(value: Any) -> str:
    """Numbers to a few significant digits, shapes as ``HxW``, everything else as ``str``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[format_value(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def format_figures(figures: Mapping[str, Any], title: str | None = None) -> str:
    """A figures dict as text: scalars as ``key  value`` lines, a list of dicts (e.g. ``levels``) as a table.

    Nested dicts become indented blocks, so any verb's ``to_dict()`` can be shown the same way.
    """
    lines: list[str] = [title] if title else []
    scalars = {k: v for k, v in figures.items() if not isinstance(v, (Mapping, list, tuple)) or _is_shape(v)}
    if scalars:
        width = max(len(k) for k in scalars)
        lines += [f"{k.ljust(width)}  {format_value(v)}" for k, v in scalars.items()]
    for key, value in figures.items():
        if key in scalars:
            continue
        if isinstance(value, Mapping):
            lines += ["", *format_figures(value, title=f"{key}:").splitlines()]
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            headers = list(dict.fromkeys(k for row in value for k in row))
            lines += ["", f"{key}:", format_table(headers, [[row.get(h) for h in headers] for row in value])]
        else:
            lines.append(f"{key}  {', '.join(format_value(v) for v in value)}")
    return "\n".join(lines)


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, int) for v in value)


class TrainingResultFigures:
    """``to_dict``, ``format`` and ``from_outcome`` of a training verb's result dataclass.

    The dataclass has ``step``, ``steps``, ``stopped_by_budget`` and ``figures`` (the last held-out
    evaluation) among its fields, and names its verb in ``title``.
    """

    title: ClassVar[str] = ""

    @classmethod
    def from_outcome(cls, outcome: Any, **fields: Any) -> Self:
        """The result with ``fields``, its other fields taken by name from ``outcome`` (a ``FitOutcome``)."""
        own = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        shared = {name: getattr(outcome, name) for name in own - fields.keys() if hasattr(outcome, name)}
        return cls(**shared, **fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def format(self) -> str:
        d = self.to_dict()
        status = "stopped by train.max_minutes, resume with --resume" if d["stopped_by_budget"] else "done"
        head = {k: v for k, v in d.items() if k not in ("figures", "stopped_by_budget", "step", "steps")}
        head["steps"] = f"{d['step']}/{d['steps']} ({status})"
        return format_figures({**head, **d["figures"]}, title=self.title)


@dataclass
class TrainResult(TrainingResultFigures):
    """What ``train-tokenizer`` did (any modality): where it wrote, how far it got, and its last evaluation."""

    title: ClassVar[str] = "train-tokenizer"

    run_dir: str
    tokenizer_dir: str
    step: int  # optimizer steps completed
    steps: int  # the configured total
    resumed_from: int | None  # step of the checkpoint this invocation started from
    stopped_by_budget: bool  # train.max_minutes ran out before train.steps
    seconds: float  # wall time of this invocation's training loop
    figures: dict[str, Any] = field(default_factory=dict)  # last evaluation on the held-out split
    run_seconds: float = 0.0  # training time of the whole run, over every invocation
    world_size: int = 1  # processes that trained (torchrun)
    codebook_checksum: str | None = None  # at the last checkpoint, the same on every rank


@dataclass
class Figures:
    """A verb's result as one flat JSON object: what it was about (``subject``: the prior, the tokenizer, the data)
    beside its ``figures``; printed as a table under ``title``."""

    title: str
    subject: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.subject, **self.figures}

    def format(self) -> str:
        return format_figures(self.to_dict(), title=self.title)
