"""Command-line parts shared by the benchmarks: the common flags, defaults that ``--quick`` shrinks, table headings, output.

Imported as a sibling (``from _cli import ...``), like ``_timing``. It does not import torch, so
``quantizer.py`` can set its malloc thresholds before torch loads.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any


def benchmark_parser(doc: str, quick: str, output: str = "a table") -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` with the flags every benchmark has: ``--json`` (one JSON
    object instead of ``output``) and ``--quick`` (a smoke run; ``quick`` says what it shrinks)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", action="store_true", help=f"print one JSON object instead of {output}")
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def add_repeats_and_device(parser: argparse.ArgumentParser, repeats: int) -> None:
    """The flags of the benchmarks that time one model at a time: ``--repeats`` (default ``repeats``, 2 with
    ``--quick``; give ``parse_with_defaults`` the same pair) and ``--device``."""
    runs = f"timed runs per figure (default {repeats}; 2 with --quick)"
    parser.add_argument("--repeats", type=int, default=None, help=runs)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def parse_with_defaults(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, **defaults: tuple[float, float]
) -> argparse.Namespace:
    """Parse ``argv``; each option named in ``defaults`` as ``name=(default, quick_default)`` that was left out
    (or 0) takes its default, the second one under ``--quick``, and must come out positive.

    ``parse_with_defaults(parser, argv, seconds=(10.0, 1.0), repeats=(5, 2))`` gives ``--quick`` runs
    1 s of audio twice; ``--seconds -1`` exits with "--seconds and --repeats must be positive".
    """
    args = parser.parse_args(argv)
    for name, (default, quick) in defaults.items():
        setattr(args, name, getattr(args, name) or (quick if args.quick else default))
    if any(getattr(args, name) <= 0 for name in defaults):
        parser.error(" and ".join("--" + name.replace("_", "-") for name in defaults) + " must be positive")
    return args


def median_of(result: dict[str, Any]) -> str:
    """The line that opens a table of medians: the machine (``_timing.machine``) and the number of timed runs."""
    m = result["machine"]
    return f"{m['device']}, {m['threads']} threads, torch {m['torch']}; median of {result['repeats']} runs"


def print_heading(columns: str, *lines: str) -> None:
    """Print ``lines`` (what was measured, and where), then the column names ``columns`` ruled off below."""
    for line in lines:
        print(line)
    print(columns)
    print("-" * len(columns))


def report(result: dict[str, Any], as_json: bool, print_table: Callable[[dict[str, Any]], None]) -> None:
    """Print ``result`` as one JSON object (``--json``), else as the benchmark's table."""
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
