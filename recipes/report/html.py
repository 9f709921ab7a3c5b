"""``vqtok report RUN_DIR [PATH ...]``: one static HTML page with its PNGs about a training run and what came of it.

Dimension legend: ``K`` codebook size.

The page (``RUN_DIR/report/index.html`` unless ``out`` says otherwise) has, as far as the run and
the other paths hold the data (:mod:`recipes.report.contents` says where each verb writes):

- a summary and the run's config;
- training curves from ``metrics.jsonl`` (loss, PSNR / SSIM or bits per code, codebook usage and
  perplexity per level, ...), for the run and for any other run among the paths;
- evaluation tables: the evaluations logged during training and every JSON of figures found;
- codebook usage histograms per level, from the tokenizer's quantizer ``usage`` buffers (the
  exponential moving average of each code's uses per training batch) and from the codes of every
  code corpus found (a prior run's corpora included);
- reconstructions, samples (PNG grids, WAV players), the phone confusion matrix and the
  rate–distortion plot with their tables.

A section without data says so and names the verb that makes it. The report folder is an output
folder of :mod:`recipes.engine.outputs`: the page is built in a staging folder and moved into place
(``index.html`` last), replacing the previous report and nothing else in the folder.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_figures, format_value
from recipes.report.contents import (
    Output,
    RunContents,
    TrainingRun,
    corpus_counts,
    is_run_dir,
    relative_name,
    scan,
    usage_buffers,
)
from recipes.report.plots import training_curves_png, usage_histogram_png
from tokenizers_vq.io import atomic_write_bytes, atomic_write_text

INDEX = "index.html"
_LIST_LIMIT = 12  # items of a long list of numbers shown in a table cell
EMA_MIN_USES = 1.0
# Sections of other verbs' files: title, section in recipes.report.contents, what to say when there are none.
OUTPUT_SECTIONS = (
    ("Reconstructions", "reconstructions",
     "None found: `vqtok reconstruct --tokenizer RUN_DIR/tokenizer` writes RUN_DIR/reconstructions/."),
    ("Samples", "samples", "None found: `vqtok sample --prior PRIOR_RUN/prior` writes PRIOR_RUN/samples/."),
    ("Phone confusion matrix", "phones",
     "None found: `vqtok phones --tokenizer RUN_DIR/tokenizer` (speech) writes RUN_DIR/phones/."),
    ("Rate–distortion", "rd", "None found: `vqtok rd --out DIR` writes rd.json and rd.png; pass DIR as a further path."),
)  # fmt: skip  # an EMA usage below one use per batch is the quantizer's default dead-code threshold


@dataclass
class ReportConfig:
    """What to report on and where to write the page."""

    modality: str = "report"  # picks this recipe in the CLI
    name: str = "report"
    run_dir: str | None = None  # the run directory (the positional RUN_DIR)
    include: list[str] = field(default_factory=list)  # more folders or files with outputs of the run
    out: str | None = None  # report directory; null: RUN_DIR/report
    max_audio: int = 6  # WAV players shown per section

    def __post_init__(self) -> None:
        if self.modality != "report":
            raise ValueError(f"modality must be 'report' for the report verb; got {self.modality!r}.")
        if self.max_audio < 0:
            raise ValueError(f"max_audio must be >= 0; got {self.max_audio}.")


@dataclass
class ReportResult:
    """Where the page went and which sections have data."""

    run_dir: str
    report: str  # path of index.html
    runs: list[str]  # training runs shown (the main one first)
    images: list[str] = field(default_factory=list)  # PNG files of the report, beside index.html
    sections: dict[str, bool] = field(default_factory=dict)  # section (snake_case, e.g. "codebook_usage") → has data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        head = {"report": self.report, "runs": ", ".join(self.runs), "images": len(self.images)}
        shown = {key: "shown" if has else "no data" for key, has in self.sections.items()}
        return format_figures({**head, "sections": shown}, title="report")


# ---------------------------------------------------------------------------------------------
# HTML pieces


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)) and value and (len(value) > 3 or not all(isinstance(v, int) for v in value)):
        shown = ", ".join(format_value(v) for v in value[:_LIST_LIMIT])
        return _esc(shown + (f", … ({len(value)} in all)" if len(value) > _LIST_LIMIT else ""))
    return _esc(format_value(value))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def figures_html(figures: Mapping[str, Any]) -> str:
    """A JSON object of figures as HTML, the way :func:`recipes.engine.results.format_figures` lays out text.

    Scalars (and short lists) form a two-column table; a list of objects (``levels``,
    ``utterances``) is a table of its own; an object whose values are all objects (``baselines``)
    is a table with a row per entry; any other nested object is shown the same way under its key.
    """
    nested = {k for k, v in figures.items() if isinstance(v, Mapping) or _is_table(v)}
    parts = []
    scalars = [[k, v] for k, v in figures.items() if k not in nested]
    if scalars:
        parts.append(html_table(["figure", "value"], scalars))
    for key in (k for k in figures if k in nested):
        value = figures[key]
        if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            value = [{"": name, **row} for name, row in value.items()]
        if _is_table(value):
            headers = list(dict.fromkeys(k for row in value for k in row))
            parts.append(f"<h4>{_esc(key)}</h4>" + html_table(headers, [[r.get(h) for h in headers] for r in value]))
        else:
            parts.append(f"<h4>{_esc(key)}</h4>" + figures_html(value))
    return "".join(parts)


def _none(text: str) -> str:
    return f'<p class="none">{_esc(text)}</p>'


def _img(name: str, caption: str) -> str:
    return f'<figure><img src="{_esc(name)}" alt="{_esc(caption)}"><figcaption>{_esc(caption)}</figcaption></figure>'


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; image-rendering: pixelated; } figure { margin: 0.5em 0 1.5em; }
figcaption, .none { color: #666; font-size: 0.9em; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
"""


# ---------------------------------------------------------------------------------------------
# Sections


class _Page:
    """The report being built in ``tmp`` (renamed to ``out`` when done): sections of HTML and their PNGs."""

    def __init__(self, tmp: Path, out: Path, roots: Sequence[Path], max_audio: int) -> None:
        self.tmp, self.out, self.roots, self.max_audio = tmp, out, list(roots), max_audio
        self.sections: list[tuple[str, str, bool]] = []  # (title, body, has data)
        self.found: dict[str, bool] = {}  # snake_case section key → has data
        self.images: list[str] = []

    def add(self, title: str, parts: Sequence[str], missing: str) -> None:
        """A section: its parts, or when there are none the ``missing`` note; recorded in ``found``."""
        self.sections.append((title, "".join(parts) if parts else _none(missing), bool(parts)))
        self.found[re.sub(r"[^a-z]+", "_", title.lower()).strip("_")] = bool(parts)

    def new_png(self, stem: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "figure"
        candidate, i = f"{name}.png", 1
        while candidate in self.images:
            i += 1
            candidate = f"{name}_{i}.png"
        self.images.append(candidate)
        return self.tmp / candidate

    def copy_png(self, source: Path, caption: str) -> str:
        target = self.new_png(relative_name(source, self.roots).removesuffix(".png"))
        atomic_write_bytes(target, source.read_bytes())
        return _img(target.name, caption)

    def label(self, path: Path) -> str:
        return relative_name(path, self.roots)

    def audio(self, outputs: Sequence[Output]) -> list[str]:
        """WAV players (at most ``max_audio``), linked by their path relative to the report."""
        wavs = [o.path for o in outputs if o.kind == "wav"]
        players = [
            f'<p>{_esc(w.name)}<br><audio controls preload="none" src="{_esc(os.path.relpath(w, self.out))}">'
            "</audio></p>"
            for w in wavs[: self.max_audio]
        ]
        if len(wavs) > self.max_audio:
            players.append(_none(f"{len(wavs) - self.max_audio} more WAV files beside them."))
        return players

    def outputs(self, outputs: Sequence[Output]) -> list[str]:
        """Each PNG (copied into the report), then each JSON (as tables), then WAV players of a section."""
        parts = []
        for o in sorted(outputs, key=lambda o: (o.kind != "png", o.kind != "json")):
            if o.kind == "png":
                parts.append(self.copy_png(o.path, self.label(o.path)))
            elif o.kind == "json":
                figures = _read_json(o.path)
                if figures is not None:
                    parts.append(f"<h3>{_esc(self.label(o.path))}</h3>" + figures_html(figures))
        return parts + self.audio(outputs)

    def html(self, title: str) -> str:
        body = "".join(f"<h2>{_esc(t)}</h2>{b}" for t, b, _ in self.sections)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_esc(title)}</h1>{body}</body></html>\n"
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _summary(run: TrainingRun, contents: RunContents, roots: Sequence[Path]) -> str:
    last = max((r for r in run.rows if r.get("kind") == "train"), key=lambda r: r["step"], default=None)
    model = run.config.get("model")
    figures: dict[str, Any] = {
        "run directory": str(run.path),
        "name": run.name,
        "modality": run.modality,
        "model kind": model.get("kind") if isinstance(model, dict) else None,
        "steps done": last["step"] if last else 0,
        "steps configured": (run.config.get("train") or {}).get("steps"),
        "training seconds": last.get("seconds") if last else None,
        "paths searched": ", ".join(str(p) for p in roots),
        "written": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    parts = [figures_html({k: v for k, v in figures.items() if v is not None})]
    for tb in contents.tensorboard:
        parts.append(f"<p>TensorBoard logs: <code>tensorboard --logdir {_esc(tb)}</code></p>")
    return "".join(parts)


def _curves(page: _Page, runs: Sequence[TrainingRun]) -> list[str]:
    parts = []
    for run in runs:
        path = page.new_png(f"curves_{page.label(run.path)}")
        drawn = training_curves_png(run.rows, path, f"{run.name} ({page.label(run.path)})")
        if drawn:
            parts.append(
                _img(path.name, f"{page.label(run.path)}: {', '.join(drawn)}; solid: training, dashed: evaluation")
            )
        else:
            page.images.remove(path.name)
    return parts


def _evaluations(page: _Page, runs: Sequence[TrainingRun], jsons: Sequence[Output]) -> list[str]:
    parts = []
    for run in runs:
        rows = run.rows_of("eval")
        if not rows:
            continue
        keys = ["step"] + [
            k
            for k in dict.fromkeys(k for r in rows for k in r)
            if k not in ("kind", "step") and not isinstance(rows[-1].get(k), (list, dict))
        ]
        parts.append(f"<h3>{_esc(page.label(run.path))}: evaluations during training</h3>")
        parts.append(html_table(keys, [[r.get(k) for k in keys] for r in rows]))
        nested = {k: v for k, v in rows[-1].items() if isinstance(v, (list, dict))}
        if nested:
            parts.append(f"<p>At step {_esc(rows[-1]['step'])}:</p>" + figures_html(nested))
    return parts + page.outputs(jsons)


def _usage(page: _Page, contents: RunContents) -> list[str]:
    parts = []
    for model in contents.models:
        levels = usage_buffers(model)
        if not levels:
            continue  # a prior's weights: no codebook
        path = page.new_png(f"usage_{page.label(model)}")
        stats = usage_histogram_png(
            levels,
            path,
            f"{page.label(model)}: quantizer usage buffers",
            "EMA of uses per training batch",
            EMA_MIN_USES,
        )
        note = (
            "The exponential moving average of each code's uses per training batch, as training left it; a code "
            f"counts as used at {EMA_MIN_USES:g} use per batch or more (the quantizer's default dead-code threshold)."
        )
        parts.append(_usage_block(f"{page.label(model)}: the quantizers' usage buffers", path.name, stats, note))
    for corpus in contents.corpora:
        levels, meta = corpus_counts(corpus)
        data = meta.get("dataset") or {}
        what = f"{data.get('name', '?')}/{data.get('split', '?')}, {meta.get('count', '?')} items"
        path = page.new_png(f"usage_{page.label(corpus)}")
        stats = usage_histogram_png(levels, path, f"codes in {page.label(corpus)} ({what})", "occurrences")
        parts.append(_usage_block(f"{page.label(corpus)}: codes of a tokenized corpus ({what})", path.name, stats))
    return parts


def _usage_block(heading: str, png: str, stats: Sequence[Mapping[str, Any]], note: str = "") -> str:
    """A heading, an optional note, the histogram and the table of each level's usage."""
    table = html_table(
        ["level", "codebook size", "used", "usage", "perplexity"],
        [[s["level"], s["codebook_size"], s["used"], s["usage"], s["perplexity"]] for s in stats],
    )
    note_html = f"<p>{_esc(note)}</p>" if note else ""
    return f"<h3>{_esc(heading)}</h3>{note_html}{_img(png, 'most used codes first')}{table}"


# ---------------------------------------------------------------------------------------------
# The verb


def _check_paths(cfg: ReportConfig) -> tuple[Path, list[Path]]:
    if not cfg.run_dir:
        raise ValueError(
            "report needs a run directory: `vqtok report RUN_DIR [PATH ...]`, RUN_DIR being the --out of "
            "train-tokenizer, train-prior or quickstart."
        )
    run_dir = Path(cfg.run_dir).expanduser()
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory {cfg.run_dir} does not exist.")
    if not run_dir.is_dir() or not is_run_dir(run_dir):
        raise ValueError(
            f"{cfg.run_dir} is not a run directory (it needs config.yaml and metrics.jsonl): pass the --out folder "
            "of train-tokenizer, train-prior or quickstart, and other outputs as further paths."
        )
    extra = [Path(p).expanduser() for p in cfg.include]
    for path, given in zip(extra, cfg.include, strict=True):
        if not path.exists():
            raise FileNotFoundError(f"{given} (given to include in the report) does not exist.")
    return run_dir, extra


def run(cfg: ReportConfig, *, overwrite: bool = False) -> ReportResult:
    """Write the report of ``cfg.run_dir`` (and ``cfg.include``) to ``cfg.out``; see the module docstring.

    The output is a folder of :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote).
    """
    run_dir, extra = _check_paths(cfg)
    out = Path(cfg.out).expanduser() if cfg.out else run_dir / "report"
    folder = OutputFolder(out, "report", overwrite=overwrite)
    roots = [run_dir, *extra]
    contents = scan(roots, skip=[out])
    runs = contents.runs
    main_run = runs[0]
    with folder, folder.staging(last=[INDEX]) as tmp:
        page = _Page(tmp, out, roots, cfg.max_audio)
        page.sections.append(("Summary", _summary(main_run, contents, roots), True))
        page.add("Training curves", _curves(page, runs), "metrics.jsonl has no training rows yet.")
        page.add(
            "Evaluation tables",
            _evaluations(page, runs, contents.in_section("evaluation")),
            "No evaluations: none logged during training, and no JSON of figures found (`vqtok evaluate --out "
            "FILE.json` writes one; pass it as a further path).",
        )
        page.add(
            "Codebook usage",
            _usage(page, contents),
            "No tokenizer weights or code corpora found (tokenizer/, codes_*/); pass their folders as further paths.",
        )
        for title, section, missing in OUTPUT_SECTIONS:
            page.add(title, page.outputs(contents.in_section(section)), missing)
        others = page.outputs(contents.in_section("other"))
        if others:
            page.add("Other figures", others, "")
        config_text = (main_run.path / "config.yaml").read_text(encoding="utf-8")
        page.sections.append(("Config", f"<pre>{_esc(config_text)}</pre>", True))
        atomic_write_text(tmp / INDEX, page.html(f"vqtok report: {main_run.name}"))
        sections = dict(page.found)
        images = list(page.images)
    return ReportResult(
        run_dir=str(run_dir),
        report=str(out / INDEX),
        runs=[relative_name(r.path, roots) for r in runs],
        images=images,
        sections=sections,
    )
