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
- reconstructions, samples (PNG grids; speech as one group per utterance: the original, the vocoder
  ceiling, the reconstruction and the conversions side by side, each with its log-mel spectrogram),
  the phone confusion matrix and the rate–distortion plot with their tables.

Figures are tables of plain numbers (:mod:`recipes.report.tables`), paths relative to the run
directory; a chart is drawn only through two points or more, a single value is shown as a number.
The folder holds everything it shows: PNGs beside ``index.html``, WAVs in ``audio/``, their
spectrograms in ``spectrograms/``, every link relative, so the folder can be moved, zipped or shared.

A section without data says so and names the verb that makes it. The report folder is an output
folder of :mod:`recipes.engine.outputs`: the page is built in a staging folder and moved into place
(``index.html`` last), replacing the previous report and nothing else in the folder.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_figures
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
from recipes.report.page import Page, img_html
from recipes.report.plots import curve_panels, training_curves_png, usage_histogram_png
from recipes.report.tables import esc, figures_html, html_table, show_path
from tokenizers_vq.io import atomic_write_text

INDEX = "index.html"
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
    max_audio: int = 6  # utterances (groups of WAVs) shown open per section; the rest are collapsed, not left out

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
    images: list[str] = field(default_factory=list)  # PNG files of the report, relative to its folder
    sections: dict[str, bool] = field(default_factory=dict)  # section (snake_case, e.g. "codebook_usage") → has data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        head = {"report": self.report, "runs": ", ".join(self.runs), "images": len(self.images)}
        shown = {key: "shown" if has else "no data" for key, has in self.sections.items()}
        return format_figures({**head, "sections": shown}, title="report")


# ---------------------------------------------------------------------------------------------
# Sections


def _summary(run: TrainingRun, contents: RunContents, roots: Sequence[Path]) -> str:
    last = max((r for r in run.rows if r.get("kind") == "train"), key=lambda r: r["step"], default=None)
    model = run.config.get("model")
    figures: dict[str, Any] = {
        "run directory": run.path.resolve().name,
        "name": run.name,
        "modality": run.modality,
        "model kind": model.get("kind") if isinstance(model, dict) else None,
        "steps done": last["step"] if last else 0,
        "steps configured": (run.config.get("train") or {}).get("steps"),
        "training seconds": last.get("seconds") if last else None,
        "paths searched (from the run directory)": [os.path.relpath(p, run.path) for p in roots],
        "written": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    parts = [figures_html({k: v for k, v in figures.items() if v is not None})]
    for tb in contents.tensorboard:
        command = f"tensorboard --logdir {os.path.relpath(tb, run.path)}"
        parts.append(f"<p>TensorBoard logs, from the run directory: <code>{esc(command)}</code></p>")
    return "".join(parts)


def _config(run: TrainingRun) -> str:
    """The run's config as YAML, its absolute paths relative to the run directory."""

    def relative(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: relative(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relative(v) for v in value]
        return show_path(value, run.path) if isinstance(value, str) else value

    text = yaml.safe_dump(relative(run.config), sort_keys=False, allow_unicode=True)
    return f"<p>config.yaml, paths relative to the run directory:</p><pre>{esc(text)}</pre>"


def _curves(page: Page, runs: Sequence[TrainingRun]) -> list[str]:
    """Per run, its curves through two steps or more, and the figures logged at one step only as numbers."""
    parts = []
    for run in runs:
        label = page.label(run.path)
        drawn, single = curve_panels(run.rows)
        if drawn:
            name = page.new_png(f"curves_{label}")
            training_curves_png(run.rows, page.tmp / name, f"{run.name} ({label})")
            caption = f"{label}: {', '.join(t for t, _ in drawn)}; solid: training, dashed: evaluation"
            parts.append(img_html(name, caption))
        if single:
            rows = [[title, s.label, s.steps[-1], s.values[-1]] for title, lines in single for s in lines]
            parts.append(f"<h3>{esc(label)}: logged at one step only</h3>")
            parts.append(html_table(["figure", "series", "step", "value"], rows))
    return parts


def _evaluations(page: Page, runs: Sequence[TrainingRun], jsons: Sequence[Output]) -> list[str]:
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
        parts.append(f"<h3>{esc(page.label(run.path))}: evaluations during training</h3>")
        parts.append(html_table(keys, [[r.get(k) for k in keys] for r in rows], page.base))
        nested = {k: v for k, v in rows[-1].items() if isinstance(v, (list, dict))}
        if nested:
            parts.append(f"<p>At step {esc(rows[-1]['step'])}:</p>" + figures_html(nested, page.base))
    return parts + page.outputs(jsons)


def _usage(page: Page, contents: RunContents) -> list[str]:
    parts = []
    for model in contents.models:
        levels = usage_buffers(model)
        if not levels:
            continue  # a prior's weights: no codebook
        name = page.new_png(f"usage_{page.label(model)}")
        stats = usage_histogram_png(
            levels,
            page.tmp / name,
            f"{page.label(model)}: quantizer usage buffers",
            "EMA of uses per training batch",
            EMA_MIN_USES,
        )
        note = (
            "The exponential moving average of each code's uses per training batch, as training left it; a code "
            f"counts as used at {EMA_MIN_USES:g} use per batch or more (the quantizer's default dead-code threshold)."
        )
        parts.append(_usage_block(f"{page.label(model)}: the quantizers' usage buffers", name, stats, note))
    for corpus in contents.corpora:
        levels, meta = corpus_counts(corpus)
        data = meta.get("dataset") or {}
        what = f"{data.get('name', '?')}/{data.get('split', '?')}, {meta.get('count', '?')} items"
        name = page.new_png(f"usage_{page.label(corpus)}")
        stats = usage_histogram_png(levels, page.tmp / name, f"codes in {page.label(corpus)} ({what})", "occurrences")
        parts.append(_usage_block(f"{page.label(corpus)}: codes of a tokenized corpus ({what})", name, stats))
    return parts


def _usage_block(heading: str, png: str, stats: Sequence[Mapping[str, Any]], note: str = "") -> str:
    """A heading, an optional note, the histogram and the table of each level's usage."""
    table = html_table(
        ["level", "codebook size", "used", "usage", "perplexity"],
        [[s["level"], s["codebook_size"], s["used"], s["usage"], s["perplexity"]] for s in stats],
    )
    note_html = f"<p>{esc(note)}</p>" if note else ""
    return f"<h3>{esc(heading)}</h3>{note_html}{img_html(png, 'most used codes first')}{table}"


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
        page = Page(tmp, out, roots, cfg.max_audio)
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
        page.sections.append(("Config", _config(main_run), True))
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
