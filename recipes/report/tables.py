"""Figures as HTML tables of plain numbers and words: how ``vqtok report`` shows the JSON other verbs write.

No cell holds JSON. A JSON object of figures becomes:

- its scalars (and lists of them) → one two-column table, ``figure | value``;
- a list of objects (``levels``, ``utterances``, ``codecs``) → a table of its own, objects nested in a
  row flattened into dotted columns (``figures.psnr``);
- an object of objects (``baselines``) → a table with a row per entry;
- any other nested object → the same layout again, under its key.

In a cell a list of numbers reads ``5, 8`` (a shape, under a key naming one, ``4x4``), a long list is
cut with its length, an object inside a list reads ``key value; key value``, and an absolute path is
shown relative to the run directory, so a shared report names no one's home folder. Every table sits
in a box that scrolls sideways when it is wider than the page; a long one is collapsed under
``<details>``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recipes.engine.results import format_value

LIST_LIMIT = 12  # items of a list shown in one cell, then "… (N in all)"
LONG_TABLE = 25  # rows above which a table is collapsed under <details>
NAME_COLUMNS = ("", "name", "utterance", "codec", "level", "kind")  # columns that name a row go first, in this order


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, int) for v in value)


def show_path(text: str, base: Path | None) -> str:
    """``text`` relative to ``base`` when it is an absolute path (``~`` included), else as it is."""
    if base is None or not (os.path.isabs(text) or text.startswith("~/")):
        return text
    return os.path.relpath(os.path.expanduser(text), base)


def cell_text(value: Any, key: str = "", base: Path | None = None) -> str:
    """One value as the plain text of a table cell (see the module docstring); ``key`` names what it is."""
    if isinstance(value, str):
        return show_path(value, base)
    if isinstance(value, Mapping):
        return "; ".join(f"{k} {cell_text(v, str(k), base)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if "shape" in key.lower() and _is_shape(value):
            return "x".join(str(v) for v in value)
        if "shape" in key.lower() and all(_is_shape(v) for v in value):
            return ", ".join("x".join(str(n) for n in v) for v in value)
        items = [
            f"({cell_text(v, key, base)})" if isinstance(v, (list, tuple)) else cell_text(v, key, base)
            for v in value[:LIST_LIMIT]
        ]
        return ", ".join(items) + (f", … ({len(value)} in all)" if len(value) > LIST_LIMIT else "")
    return format_value(value)


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``row`` with nested objects spread into dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _header(name: str) -> str:
    """A column name that may wrap after its underscores and dots (``jpeg_lowest_bits_per_pixel``)."""
    return "".join(esc(part) + ("<wbr>" if part in "_." else "") for part in _split_keep(name))


def _split_keep(name: str) -> list[str]:
    parts, word = [], ""
    for char in name:
        if char in "_.":
            parts += [word, char] if word else [char]
            word = ""
        else:
            word += char
    return [*parts, word] if word else parts


def _td(value: Any, key: str, base: Path | None) -> str:
    css = ' class="n"' if _is_number(value) else ""  # numbers right-aligned and never broken
    return f"<td{css}>{esc(cell_text(value, key, base))}</td>"


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], base: Path | None = None,
    row_keys: Sequence[str] | None = None,
) -> str:  # fmt: skip
    """A table in a sideways-scrolling box; numbers right-aligned, a table of more than :data:`LONG_TABLE` rows
    collapsed under ``<details>``.

    A cell is written by :func:`cell_text` with its column's header as the key, or with ``row_keys[i]``
    for every cell of row ``i`` (a table of ``figure | value`` rows).
    """
    head = "".join(f"<th>{_header(str(h))}</th>" for h in headers)
    keys = [list(map(str, headers))] * len(rows) if row_keys is None else [[k] * len(headers) for k in row_keys]
    body = "".join(
        "<tr>" + "".join(_td(v, k, base) for k, v in zip(row_k, row, strict=True)) + "</tr>"
        for row_k, row in zip(keys, rows, strict=True)
    )
    table = f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if len(rows) > LONG_TABLE:
        return f"<details><summary>{len(rows)} rows</summary>{table}</details>"
    return table


def records_table(records: Sequence[Mapping[str, Any]], base: Path | None = None) -> str:
    """A list of objects as one table: a column per key (nested objects flattened), a row per object."""
    flat = [flatten(r) for r in records]
    headers = list(dict.fromkeys(k for row in flat for k in row))
    headers.sort(key=lambda h: NAME_COLUMNS.index(h) if h in NAME_COLUMNS else len(NAME_COLUMNS))  # stable
    return html_table(headers, [[row.get(h) for h in headers] for row in flat], base)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def figures_html(figures: Mapping[str, Any], base: Path | None = None) -> str:
    """A JSON object of figures as HTML tables (see the module docstring); paths relative to ``base``."""
    nested = {k for k, v in figures.items() if (isinstance(v, Mapping) and v) or _is_records(v)}
    parts = []
    scalars = [[k, v] for k, v in figures.items() if k not in nested]
    if scalars:
        parts.append(html_table(["figure", "value"], scalars, base, row_keys=[str(k) for k, _ in scalars]))
    for key in (k for k in figures if k in nested):
        value = figures[key]
        if isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values()):
            value = [{"": name, **row} for name, row in value.items()]
        body = records_table(value, base) if _is_records(value) else figures_html(value, base)
        parts.append(f"<h4>{esc(key)}</h4>{body}")
    return "".join(parts)
