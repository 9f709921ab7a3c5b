"""What a run directory (and any folders or files passed beside it) holds, found by name: the input of ``vqtok report``.

A *training run* is a directory with ``config.yaml`` and ``metrics.jsonl`` (every training recipe
writes one, :mod:`recipes.engine.checkpoint`). Around it the other verbs leave their outputs, by default
in the run directory or beside the folder they were given:

    tokenizer/, prior/                     published models (``model.safetensors`` + ``config.json``)
    codes_*/                               code corpora (``meta.json`` of format tokenizers-vq/code-corpus)
    reconstructions/reconstructions.png    image reconstructions and their .json; speech: WAVs and figures.json
    samples/samples.png, sample_*.wav      prior samples and samples.json
    phones/confusion.png, figures.json     phone analysis
    rd.png, rd.json                        rate–distortion (``vqtok rd``, written wherever --out says)
    tensorboard/                           TensorBoard event files
    *.json                                 figures of ``evaluate --out``, the quickstart's summary.json, ...

Files are sorted into report sections by the words of their name and of their folder's name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf
from safetensors import safe_open

from recipes.engine.outputs import read_marker
from tokenizers_vq.corpus import tokenizer_path
from tokenizers_vq.io import read_jsonl

CORPUS_FORMAT = "tokenizers-vq/code-corpus"
MAX_DEPTH = 4  # folders below a given directory that are searched
_SKIP_DIRS = {"checkpoint", "__pycache__"}
# Section of an output file, by the words of its name or its folder's name (checked in this order).
SECTION_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("rd", frozenset({"rd"})),
    ("phones", frozenset({"confusion", "phones"})),
    ("reconstructions", frozenset({"reconstruction", "reconstructions", "reconstruct"})),
    ("samples", frozenset({"sample", "samples"})),
)
_SUFFIXES = {".png": "png", ".json": "json", ".wav": "wav"}


@dataclass
class TrainingRun:
    """A training run directory: its config (a plain dict) and its metrics rows."""

    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def modality(self) -> str:
        return str(self.config.get("modality", "image"))

    def rows_of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("kind") == kind]


@dataclass
class Output:
    """A file another verb wrote: a PNG, a JSON object of figures or a WAV, and the report section it belongs to."""

    path: Path
    kind: str  # "png", "json" or "wav"
    section: str  # "reconstructions", "samples", "phones", "rd", or "other" (PNG, WAV) / "evaluation" (JSON)


@dataclass
class RunContents:
    """Everything found: training runs (the main one first), model and corpus directories, outputs."""

    runs: list[TrainingRun] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)  # directories with model.safetensors
    corpora: list[Path] = field(default_factory=list)  # code corpus directories
    outputs: list[Output] = field(default_factory=list)
    tensorboard: list[Path] = field(default_factory=list)

    def in_section(self, section: str, kind: str | None = None) -> list[Output]:
        return [o for o in self.outputs if o.section == section and (kind is None or o.kind == kind)]


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "metrics.jsonl").is_file()


def read_run(path: Path) -> TrainingRun:
    """The run at ``path``; ``ValueError`` when its config.yaml or metrics.jsonl cannot be read."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
        rows = read_jsonl(path / "metrics.jsonl")
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read the run in {path}: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path / 'config.yaml'} does not hold a mapping of config keys.")
    return TrainingRun(path, config, [r for r in rows if isinstance(r, dict) and "step" in r])


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` is a folder ``vqtok report`` wrote (its marker says so, or, before markers, its page does)."""
    try:
        marker = read_marker(path)
    except ValueError:
        marker = None
    if marker is not None:
        return marker[0] == "report"
    page = path / "index.html"
    try:
        return page.is_file() and "<title>vqtok report" in page.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False


def section_of(path: Path) -> str:
    """The report section of an output file, from the words of its name and its folder's name."""
    for name in (path.stem, path.parent.name):
        words = set(re.split(r"[^a-z0-9]+", name.lower()))
        for section, keys in SECTION_WORDS:
            if words & keys:
                return section
    return "evaluation" if path.suffix.lower() == ".json" else "other"


def _is_corpus(path: Path) -> bool:
    meta = path / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("format") == CORPUS_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _is_model(path: Path) -> bool:
    return (path / "model.safetensors").is_file() and (path / "config.json").is_file()


def scan(paths: Sequence[Path], skip: Iterable[Path] = ()) -> RunContents:
    """Search ``paths`` (directories, up to :data:`MAX_DEPTH` below, or single files) in order.

    ``skip`` are directories left out (the report's own output). Runs, models and corpora are
    listed once each, in the order found; a prior run's ``corpus`` and ``eval_corpus`` and a
    corpus's tokenizer (named in its ``meta.json``) are added when they exist.
    """
    found = RunContents()
    skipped = {p.resolve() for p in skip}
    seen: set[Path] = set()

    def add(path: Path, depth: int = 0) -> None:
        resolved = path.resolve()
        if resolved in seen or resolved in skipped:
            return
        seen.add(resolved)
        if path.is_file():
            kind = _SUFFIXES.get(path.suffix.lower())
            if kind is not None:
                found.outputs.append(Output(path, kind, section_of(path)))
            return
        if _is_model(path):
            found.models.append(path)
            return
        if _is_corpus(path):
            found.corpora.append(path)
            _add_linked(found, path, add)
            return
        if path.name == "tensorboard":
            found.tensorboard.append(path)
            return
        if is_report_dir(path):
            return  # an earlier report: its copies are not outputs of the run
        if is_run_dir(path):
            run = read_run(path)
            found.runs.append(run)
            for key in ("corpus", "eval_corpus"):  # a prior run: the codes it was fitted to
                if isinstance(run.config.get(key), str) and Path(run.config[key]).expanduser().is_dir():
                    add(Path(run.config[key]).expanduser())
        if depth >= MAX_DEPTH:
            return
        for child in sorted(path.iterdir()):
            # Hidden entries are vqtok's bookkeeping (.vqtok-output.json, temporaries) or not outputs at all.
            if child.name.startswith(".") or (child.is_dir() and child.name in _SKIP_DIRS):
                continue
            add(child, depth + 1)

    for root in paths:
        add(root)
    return found


def _add_linked(found: RunContents, corpus: Path, add: Any) -> None:
    """Add the tokenizer a corpus was encoded with, when its directory still exists."""
    try:
        meta = json.loads((corpus / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    tokenizer = tokenizer_path(meta.get("tokenizer"), corpus)
    if tokenizer is not None and _is_model(tokenizer):
        add(tokenizer)


def relative_name(path: Path, roots: Sequence[Path]) -> str:
    """``path`` relative to the first of ``roots`` that contains it (else its last two parts), for labels."""
    resolved = path.resolve()
    for root in roots:
        try:
            rel = resolved.relative_to(root.resolve())
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else path.name
    return os.path.join(*path.parts[-2:]) if len(path.parts) >= 2 else path.name


def usage_buffers(model_dir: Path) -> list[tuple[str, np.ndarray]]:
    """The quantizers' ``usage`` buffers ``(K,)`` in a model's ``model.safetensors``, named by level."""
    with safe_open(model_dir / "model.safetensors", framework="numpy") as f:
        keys = [k for k in f.keys() if k == "usage" or k.endswith(".usage")]
        keys.sort(key=lambda k: [int(p) if p.isdigit() else p for p in k.split(".")])
        levels = []
        for key in keys:
            numbers = re.findall(r"\.(\d+)\.", f".{key}")
            name = f"level {numbers[-1]}" if len(keys) > 1 and numbers else "codebook"
            levels.append((name, f.get_tensor(key).astype(np.float64)))
    return levels


def corpus_counts(corpus: Path) -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """Counts ``(K,)`` of every code in each level of a code corpus, and its meta.json."""
    meta = json.loads((corpus / "meta.json").read_text(encoding="utf-8"))
    levels = []
    for i, level in enumerate(meta.get("levels", [])):
        k = int(level["codebook_size"])
        codes = np.load(corpus / level["file"], mmap_mode="r").reshape(-1)
        codes = codes[(codes >= 0) & (codes < k)]
        name = f"level {i}" if len(meta["levels"]) > 1 else "codebook"
        levels.append((name, np.bincount(codes.astype(np.int64), minlength=k).astype(np.float64)))
    return levels, meta
