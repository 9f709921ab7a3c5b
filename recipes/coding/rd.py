"""``vqtok rd``: rate–distortion of tokenizers beside classic codecs on the same held-out items.

Images: bits per pixel against PSNR and SSIM, beside PNG, JPEG and WebP; speech: bits per second
against log-mel distance and STOI, beside Opus, Vorbis and MP3 (the codecs: ``modalities/*/codecs.py``).

Each tokenizer of ``rd.tokenizers`` gives one point (with ``rd.depths``, a residual tokenizer one per
depth ``d``: its first ``d`` levels decoded and coded, named ``run@d``, joined as a curve in the plot):
distortion from the modality plug-in (``distortion``) on the first ``rd.max_items`` items of
``rd.split``, and rate in real coded bytes: range-coded with a prior of ``rd.priors`` when one was
trained on this tokenizer's codes (matched by the tokenizer identity its training corpus records;
``rate_model: prior``), else with per-level code frequencies fitted on ``rd.fit_items`` training items
(``rate_model: unigram``; speech: the frames alone, without end codes). ``uniform_bits_per_<unit>`` is
the fixed-length rate (``log2 K`` per code; speech: the tokenizer's bitrate). The classic codecs run
over a sweep of settings on the same items; each point gets, and ``matched`` lists, the codecs'
distortion at the tokenizer's rate, interpolated between the settings that bracket it (None where a
codec cannot go that low; ``<codec>_lowest_<rate>`` says how low it goes). Writes ``rd.json`` (every
figure) and ``rd.png`` into ``--out`` (default ``runs/rd``, speech ``runs/rd_speech``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modalities.base import CodingItems, ItemCodes, Modality, RateTraits
from priors import load_prior
from recipes.coding.compress import (
    RateResult,
    class_labels,
    fit_codes,
    header_of,
    uniform_bits,
    with_frequencies,
    with_prior,
)
from recipes.coding.plot import rd_plot
from recipes.engine.artifacts import open_tokenizer, prior_tokenizer
from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_table
from recipes.engine.runtime import evaluation_mode, setup_runtime
from tokenizers_vq.io import atomic_write_bytes, atomic_write_json
from tokenizers_vq.pretrained import matches_identity
from tokenizers_vq.progress import progress
from tokenizers_vq.tokenizer import Tokenizer


@dataclass
class RDResult(RateResult):
    """The rate–distortion table (``points``: tokenizers; ``codecs``: classic codecs; ``matched``) and its files."""

    traits: RateTraits
    heading: str

    def format(self) -> str:
        f, traits = self.figures, self.traits
        x, metrics = f"bits_per_{traits.unit}", [m for m, _ in traits.metrics]
        lines = [f"rd: {self.heading} → {self.location}"]
        keys = ["name", "rate_model", x, f"uniform_{x}", *metrics]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["points"]])]
        keys = ["name", x, *(f"{c}{m}" for m in metrics for c in ("", *(f"{c}_" for c in traits.codecs)))]
        lines += [
            "",
            "classic codecs at the same rate:",
            format_table(keys, [[m[k] for k in keys] for m in f["matched"]]),
        ]
        keys = ["codec", traits.setting, x, *metrics]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["codecs"]])]
        return "\n".join(lines)


def at_rate(
    points: list[dict[str, Any]], codec: str, rate: float, x: str, metrics: Sequence[str], setting: str
) -> dict[str, Any]:
    """A codec's ``metrics`` at ``rate`` (in units of key ``x``), interpolated between the two settings that bracket it.

    Returns ``{codec}_{metric}`` for each metric, ``{codec}_between`` (the two bracketing settings) and
    ``{codec}_lowest_{x}``; outside the codec's range (e.g. below its smallest setting's size) the
    metrics are None, and the lowest rate says how far the codec reaches.
    """
    curve = sorted((p for p in points if p["codec"] == codec), key=lambda p: p[x])
    out: dict[str, Any] = {f"{codec}_{m}": None for m in metrics}
    out[f"{codec}_between"] = None
    out[f"{codec}_lowest_{x}"] = curve[0][x] if curve else None
    for lo, hi in itertools.pairwise(curve):
        if lo[x] <= rate <= hi[x]:
            t = (rate - lo[x]) / (hi[x] - lo[x]) if hi[x] > lo[x] else 0.0
            out.update({f"{codec}_{m}": lo[m] + t * (hi[m] - lo[m]) for m in metrics})
            out[f"{codec}_between"] = [lo[setting], hi[setting]]
            break
    return out


def match_priors(prior_dirs: list[str], tokenizer_dirs: list[str]) -> dict[str, Path]:
    """Tokenizer (as ``rd.tokenizers`` names it) → the prior trained on its codes; each prior must match one."""
    matched: dict[str, Path] = {}
    for directory in prior_dirs:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"prior directory {directory} does not exist; train one with `vqtok train-prior`.")
        recorded = prior_tokenizer(path)
        if recorded is None:
            raise ValueError(
                f"cannot tell which tokenizer the prior {directory} belongs to: its run's config.yaml (with the "
                "training corpus) is missing. Pass priors that `vqtok train-prior` wrote."
            )
        owners = [t for t in tokenizer_dirs if matches_identity(recorded, Path(t).expanduser())]
        if not owners:
            raise ValueError(
                f"the prior {directory} was trained on codes of a tokenizer that is not in rd.tokenizers "
                f"(sha256 {recorded[:16]}…); add that tokenizer or drop the prior."
            )
        for owner in owners:
            if owner in matched:
                raise ValueError(f"two priors ({matched[owner]}, {directory}) belong to the tokenizer {owner}.")
            matched[owner] = path
    return matched


def depths_of(codes: ItemCodes, depths: list[int] | str | None, tokenizer: str) -> list[int | None]:
    """The residual depths ``rd.depths`` asks of a tokenizer: ``[None]`` (all levels, one point), 1..l, or the list."""
    if depths is None:
        return [None]
    if not codes.residual:
        raise ValueError(f"rd.depths is for residual tokenizers; {tokenizer} is not one. Leave rd.depths out.")
    levels = len(codes.levels)
    chosen = list(range(1, levels + 1)) if depths == "all" else sorted(set(depths))
    if chosen[-1] > levels:
        raise ValueError(
            f"rd.depths={depths} asks for {chosen[-1]} levels, but a tokenizer in rd.tokenizers has {levels}; "
            "pass depths up to its quantizer levels, or rd.depths=all."
        )
    return chosen


def first_levels(codes: ItemCodes, depth: int | None) -> ItemCodes:
    """``codes`` of the first ``depth`` residual levels (None: all)."""
    if depth is None:
        return codes
    return replace(codes, levels=codes.levels[:depth], codebook_sizes=codes.codebook_sizes[:depth])


def tokenizer_points(
    cfg: Any, modality: Modality, model: Tokenizer, tokenizer_dir: Path, items: CodingItems, prior_dir: Path | None
) -> list[dict[str, Any]]:
    """Distortion and real coded rate of one tokenizer on the held-out ``items``, one point per depth."""
    unit, run = modality.rate.unit, tokenizer_dir.resolve().parent.name
    codes = modality.item_codes(model, items)
    depths = depths_of(codes, cfg.rd.depths, str(tokenizer_dir))
    if prior_dir is not None:  # one level of codes (the prior's layout says so): every depth is all of them
        prior = load_prior(prior_dir, map_location=next(model.parameters()).device).eval()
        labels = class_labels(items, prior.layout.num_classes, None)
        coded = with_prior(prior, prior_dir, codes, labels, cfg.rd.chunk_size, items)
        header = header_of(tokenizer_dir, coded, codes, labels, {"modality": modality.name, **items.header})
        rate = {"rate_model": "prior", "prior": str(prior_dir), "header_bytes": len(header.pack()),
                f"nll_bits_per_{unit}": coded.chunks.nll_bits / items.amount,
                f"label_bits_per_{unit}": coded.chunks.label_bits / items.amount}  # fmt: skip
    else:
        fit, fit_items = fit_codes(modality, model, cfg, cfg.rd.fit_items)
        rate = {"rate_model": "unigram", "fit_items": fit_items}
    points = []
    for depth in depths:
        used = first_levels(codes, depth)
        if prior_dir is None:  # the frames' codes alone, as the rate of a stream
            coded = with_frequencies(used, first_levels(fit, depth), with_end=False)
        bits = 8 * len(coded.chunks.payload)
        label, about = modality.describe_model(model, codes, depth)
        points.append({
            "name": f"{run}{'' if depth is None else f'@{depth}'} ({label})",
            "tokenizer": str(tokenizer_dir),
            **about,
            "depth": len(used.levels) if codes.residual else 1,
            **({} if depth is None else {"curve": run}),
            **rate,
            f"bits_per_{unit}": bits / items.amount,
            f"bits_per_{modality.rate.item}": bits / len(items),
            f"uniform_bits_per_{unit}": uniform_bits(used) / items.amount,
            **modality.distortion(model, items, codes, depth),
        })  # fmt: skip
    return points


def plot(figures: dict[str, Any], traits: RateTraits, title: str) -> bytes:
    """Each distortion measure against the rate: tokenizers as points (a residual tokenizer's depths joined), the
    lossy codecs as curves, a lossless one as a line."""
    codecs = figures["codecs"]
    curves = {c.upper(): [p for p in codecs if p["codec"] == c] for c in traits.codecs}
    x = f"bits_per_{traits.unit}"
    lines = [(p[x], f"{traits.lossless.upper()} (lossless)") for p in codecs if p["codec"] == traits.lossless]
    return rd_plot(figures["points"], curves, x, f"bits per {traits.unit}", traits.metrics, title, lines)


def run(cfg: Any, *, overwrite: bool = False) -> RDResult:
    """Rate–distortion points of ``rd.tokenizers`` and the classic codecs on the held-out items; writes rd.json and
    rd.png into an output folder of :mod:`recipes.engine.outputs` (``overwrite``: one another verb wrote)."""
    if not cfg.rd.tokenizers:
        raise ValueError("rd needs tokenizers: pass rd.tokenizers=[DIR,DIR,...] (tokenizer folders of training runs).")
    default = "rd" if cfg.modality == "image" else f"rd_{cfg.modality}"  # runs/rd for images, as it always was
    out = Path(cfg.out).expanduser() if cfg.out else Path("runs") / default
    folder = OutputFolder(out, "rd", overwrite=overwrite)  # checked before any work
    device = setup_runtime(cfg)
    priors = match_priors(cfg.rd.priors, cfg.rd.tokenizers)
    points: list[dict[str, Any]] = []
    for i, tokenizer in enumerate(progress(cfg.rd.tokenizers, desc="rd", unit="tokenizer")):
        modality, model, tokenizer_dir = open_tokenizer(replace(cfg, tokenizer=tokenizer), device, "rd")
        with evaluation_mode(model):
            split = cfg.rd.split or modality.split_of(cfg.data, "eval")
            items = modality.load_items(model, cfg.data, split, cfg.rd.max_items)
            points += tokenizer_points(cfg, modality, model, tokenizer_dir, items, priors.get(tokenizer))
            if i == 0:  # the codecs on the same items, scored as the first tokenizer scores them
                held_out, (codecs, sweep) = items, modality.codec_points(model, items, cfg.rd)
    traits = modality.rate
    x, metrics = f"bits_per_{traits.unit}", [m for m, _ in traits.metrics]
    matched = []
    for point in points:
        near = {
            k: v for c in traits.codecs for k, v in at_rate(codecs, c, point[x], x, metrics, traits.setting).items()
        }
        point.update(near)
        matched.append({"name": point["name"], x: point[x], **{m: point[m] for m in metrics}, **near})
    figures = {**held_out.description, **sweep, "points": points, "codecs": codecs, "matched": matched}
    with folder, folder.staging() as tmp:
        atomic_write_json(tmp / "rd.json", figures)
        if cfg.rd.plot:
            atomic_write_bytes(tmp / "rd.png", plot(figures, traits, held_out.title))
    return RDResult(str(out), figures, traits, held_out.title)
