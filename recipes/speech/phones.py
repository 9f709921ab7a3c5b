"""``vqtok phones``: how close a speech tokenizer's codes are to phones, beside baselines on the same frames.

The code→phone map is fitted on ``phones.fit`` (default ``data.train``) and scored on
``phones.score`` (default ``data.eval``); for a cross-speaker test fit on one voice and score on
another. Baselines use the same utterances and exactly the same frames (the code frames' centres):
k-means with the same K on 39-dim MFCC+Δ+ΔΔ, once standardised per dimension (``kmeans_mfcc``) and
once on the raw MFCCs (``kmeans_mfcc_raw``), and uniformly random codes; when the codes are
duration-penalised (``duration_penalty``), also k-means with the same penalty (``kmeans_mfcc_penalized``),
so the smoothing is credited to neither side. With ``phones.abx`` (the default) it also measures
ABX error within and across speakers (:mod:`modalities.speech.abx`) on the scoring utterances'
phones in context, of representations of the same frames on the same triplets: the codes (each
frame as its code's codebook vector), the encoder's vectors before quantization, the MFCC+Δ+ΔΔ of
the baselines and, with the baselines, the ``kmeans_mfcc`` codes as their centroids (the codes'
like-for-like peer). The output directory (``out``, default ``<tokenizer dir>/../phones``) gets
``figures.json`` and ``confusion.png``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from modalities.speech import SpeechTokenizer, confusion_png, kmeans_codes, mfcc_frames, random_codes
from modalities.speech.abx import MODES, abx_error, phone_items, sample_triplets
from modalities.speech.data import SpeechSplit, encode_waveforms, load_split, phone_inventory, phone_segments
from modalities.speech.labels import ALIGNMENT_FORMATS
from modalities.speech.phones import analyse
from recipes.engine.artifacts import open_tokenizer
from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_figures, format_table
from recipes.engine.runtime import evaluation_mode, setup_runtime
from recipes.tokenizer.config import SpeechRecipeConfig
from tokenizers_vq.io import atomic_write_json
from tokenizers_vq.progress import progress


@dataclass
class PhonesResult:
    """Figures of the tokenizer's codes (top level) and of each baseline, and where the files went."""

    tokenizer: str
    out_dir: str
    frame_rate: float
    phones: list[str]
    figures: dict[str, Any]
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_penalty: float = 0.0  # the penalty the codes were encoded with (0: nearest codes)
    abx: dict[str, Any] | None = None  # ABX errors per representation and how they were drawn (phones.abx)

    def to_dict(self) -> dict[str, Any]:
        codes = self.abx["codes"] if self.abx else {}
        return {
            "tokenizer": self.tokenizer,
            "out_dir": self.out_dir,
            "frame_rate": self.frame_rate,
            "duration_penalty": self.duration_penalty,
            "phones": self.phones,
            **self.figures,
            "baselines": self.baselines,
            "abx_within": codes.get("within"),
            "abx_across": codes.get("across"),
            "abx": self.abx,
        }

    def format(self) -> str:
        keys = ["mapping_accuracy", "chance_accuracy", "phone_purity", "code_purity", "pnmi", "code_usage"]
        keys += ["mean_run_frames"]
        rows = [["codes", *(self.figures[k] for k in keys)]]
        rows += [[name, *(b[k] for k in keys)] for name, b in self.baselines.items()]
        head = {
            "tokenizer": self.tokenizer,
            "out_dir": self.out_dir,
            "frame_rate": self.frame_rate,
            "duration_penalty": self.duration_penalty,
            "codebook_size": self.figures["codebook_size"],
            "phones": len(self.phones),
            "fit_frames": self.figures["fit_frames"],
            "score_frames": self.figures["score_frames"],
        }
        text = format_figures(head, title="phones") + "\n\n" + format_table(["method", *keys], rows)
        if self.abx:
            names = [name for name in REPRESENTATIONS if name in self.abx]
            abx_rows = [[name, self.abx[name]["within"], self.abx[name]["across"]] for name in names]
            text += "\n\n" + format_table(["ABX error", "within", "across"], abx_rows)
            reasons = [f"{mode}: {self.abx[f'{mode}_reason']}" for mode in MODES if self.abx[f"{mode}_reason"]]
            text += "".join(f"\nno ABX {reason}" for reason in reasons)
        return text


def mean_run_frames(codes: list[np.ndarray]) -> float:
    """Average length in frames of the runs of one repeated code in each sequence (1.0: a new code every frame)."""
    frames = sum(len(c) for c in codes)
    runs = sum(1 + int(np.count_nonzero(c[1:] != c[:-1])) for c in codes if len(c))
    return frames / runs if runs else 0.0


def _level(codes: list[np.ndarray], level: int) -> list[np.ndarray]:
    if codes and codes[0].ndim == 2:
        if not 0 <= level < codes[0].shape[1]:
            raise ValueError(f"phones.level must be in [0, {codes[0].shape[1] - 1}]; got {level}.")
        return [c[:, level] for c in codes]
    if level != 0:
        raise ValueError(f"this tokenizer has one code level; phones.level must be 0, got {level}.")
    return codes


def _mfcc(model: SpeechTokenizer, split: SpeechSplit, lengths: list[int]) -> list:
    return [
        mfcc_frames(w, model.sample_rate, model.frame_rate, model.config.first_code_time, n)
        for w, n in zip(split.waveforms, lengths, strict=True)
    ]


# The ABX blocks of figures.json, in this order; kmeans_mfcc (the baseline's codes as their centroids, the codes'
# like-for-like peer) only with phones.baselines.
REPRESENTATIONS = ("codes", "continuous", "mfcc", "kmeans_mfcc")


def _centroid_vectors(
    fit: list[torch.Tensor],
    fit_codes: list[np.ndarray],
    score: list[torch.Tensor],
    score_codes: list[np.ndarray],
    k: int,
) -> list[torch.Tensor]:
    """Each scoring frame's code as its centroid ``(n, e)``: the mean of the fitting frames ``(n_i, e)`` given that
    code, in the fitting set's standardised space (where k-means clustered them); a code no fitting frame has is 0."""
    frames = torch.cat([torch.as_tensor(f).float() for f in fit])
    mean, std = frames.mean(0), frames.std(0).clamp_min(1e-6)
    codes = torch.from_numpy(np.concatenate(fit_codes)).long()
    sums = torch.zeros(k, frames.shape[1]).index_add_(0, codes, (frames - mean) / std)
    centroids = sums / torch.bincount(codes, minlength=k).clamp_min(1)[:, None]
    return [centroids[torch.from_numpy(c).long()] for c in score_codes]


@contextmanager
def _encoder_vectors(model: SpeechTokenizer, keep: bool) -> Iterator[list[torch.Tensor]]:
    """The encoder's output ``(n, d)`` (what the quantizer snaps) for each utterance encoded inside the block.

    A forward hook on ``model.encoder`` catches it as ``encode`` runs, so the codes cost no second pass.
    """
    vectors: list[torch.Tensor] = []

    def catch(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        vectors.extend(rearrange(output, "b d n -> b n d").float().cpu().unbind(0))

    handle = model.encoder.register_forward_hook(catch) if keep else None
    try:
        yield vectors
    finally:
        if handle is not None:
            handle.remove()


def _code_vectors(model: SpeechTokenizer, codes: list[np.ndarray], level: int) -> list[torch.Tensor]:
    """Each code's codebook vector ``(n, d)`` per utterance: level ``level``'s codebook for residual codes."""
    quantizer = model.quantizer
    device = next(model.parameters()).device
    with torch.no_grad():
        if codes and codes[0].ndim == 2:  # residual (n, l): the analysed level's own codebook
            book = quantizer.levels[level]
            return [book.decode(torch.from_numpy(c[:, level]).to(device)).float().cpu() for c in codes]
        return [quantizer.decode(torch.from_numpy(c).to(device)).float().cpu() for c in codes]


def abx_figures(
    cfg: SpeechRecipeConfig,
    model: SpeechTokenizer,
    split: SpeechSplit,
    segments: list[list[Any]],
    representations: dict[str, list[torch.Tensor]],
) -> dict[str, Any]:
    """ABX error within and across speakers of each representation (per-utterance ``(n, d)`` frames), all on
    the same triplets of ``split``'s phone segments (``phones.abx_triplets`` per mode, drawn with ``seed``)."""
    started = time.perf_counter()
    lengths = [len(f) for f in representations["codes"]]
    speakers = [u.speaker for u in split.utterances]
    items = phone_items(segments, lengths, speakers, model.frame_rate, model.config.first_code_time)
    triplets = {mode: sample_triplets(items, mode, cfg.phones.abx_triplets, cfg.seed) for mode in MODES}
    out: dict[str, Any] = {}
    bar = progress(total=len(representations) * len(MODES), desc="ABX", unit="score")
    for name, frames in representations.items():
        out[name] = {}
        for mode in MODES:
            out[name][mode] = abx_error(frames, items, triplets[mode]).error
            bar.update()
    bar.close()
    for mode in MODES:
        out[f"triplets_{mode}"] = len(triplets[mode])
        out[f"cells_{mode}"] = len(triplets[mode].cells)
        out[f"{mode}_reason"] = triplets[mode].reason
    out["triplets"] = sum(len(t) for t in triplets.values())
    out.update(items=len(items), speakers=len(items.speakers), max_triplets=cfg.phones.abx_triplets, seed=cfg.seed)
    out["distance"] = "dtw_angular"
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def run(cfg: SpeechRecipeConfig, *, overwrite: bool = False) -> PhonesResult:
    """Analyse the codes of the tokenizer at ``cfg.tokenizer`` against phone labels; see the module docstring.

    The output folder is one of :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote).
    """
    device = setup_runtime(cfg)
    _, model, tokenizer_dir = open_tokenizer(cfg, device, "phones")
    out_dir = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.parent / "phones"
    folder = OutputFolder(out_dir, "phones", overwrite=overwrite)  # checked before any work
    shortest = model.config.min_seconds
    fit = load_split(cfg.data, cfg.phones.fit or cfg.data.train, model.sample_rate, min_seconds=shortest)
    score = load_split(cfg.data, cfg.phones.score or cfg.data.eval, model.sample_rate, min_seconds=shortest)
    for name, split in (("fitting", fit), ("scoring", score)):
        if not split.has_phones:
            missing = next(u.path for u in split.utterances if u.phones_path is None)
            raise ValueError(f"the {name} utterances need phone labels ({ALIGNMENT_FORMATS}); {missing} has none.")
    fit_segments, score_segments = phone_segments(cfg.data, fit.utterances), phone_segments(cfg.data, score.utterances)
    phones = phone_inventory(fit_segments, score_segments)
    k = model.config.num_codes
    with evaluation_mode(model):
        fit_codes = _level(encode_waveforms(model, fit.waveforms), cfg.phones.level)
        with _encoder_vectors(model, keep=cfg.phones.abx) as continuous:
            score_all_levels = encode_waveforms(model, score.waveforms)
        score_codes = _level(score_all_levels, cfg.phones.level)

    def figures_of(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[dict[str, Any], np.ndarray]:
        metrics, confusion = analyse(
            a, b, fit_segments, score_segments, model.frame_rate, model.config.first_code_time, k, phones
        )
        return {**metrics.to_dict(), "mean_run_frames": mean_run_frames(b)}, confusion

    figures, confusion = figures_of(fit_codes, score_codes)
    baselines: dict[str, dict[str, Any]] = {}
    kmeans_vectors: list[torch.Tensor] | None = None  # the kmeans_mfcc codes of the scoring frames, as centroids
    score_lengths = [len(c) for c in score_codes]
    score_mfcc = _mfcc(model, score, score_lengths) if cfg.phones.baselines or cfg.phones.abx else []
    if cfg.phones.baselines:
        fit_lengths = [len(c) for c in fit_codes]
        fit_mfcc = _mfcc(model, fit, fit_lengths)
        penalized = model.config.duration_penalty > 0  # the codes' smoothing on the baseline too
        bar = progress(total=2 + penalized, desc="k-means baselines", unit="baseline")
        for name, standardize in (("kmeans_mfcc", True), ("kmeans_mfcc_raw", False)):
            km_fit, km_score = kmeans_codes(fit_mfcc, score_mfcc, k, seed=cfg.seed, standardize=standardize)
            baselines[name] = figures_of(km_fit, km_score)[0]
            if standardize and cfg.phones.abx:
                kmeans_vectors = _centroid_vectors(fit_mfcc, km_fit, score_mfcc, km_score, k)
            bar.update()
        if penalized:
            km_fit, km_score = kmeans_codes(
                fit_mfcc, score_mfcc, k, seed=cfg.seed, duration_penalty=model.config.duration_penalty
            )
            baselines["kmeans_mfcc_penalized"] = figures_of(km_fit, km_score)[0]
            bar.update()
        bar.close()
        baselines["random"] = figures_of(
            random_codes(fit_lengths, k, cfg.seed), random_codes(score_lengths, k, cfg.seed + 1)
        )[0]
    abx = None
    if cfg.phones.abx:
        vectors = {
            "codes": _code_vectors(model, score_all_levels, cfg.phones.level),
            "continuous": continuous,
            "mfcc": score_mfcc,
        }
        if kmeans_vectors is not None:
            vectors["kmeans_mfcc"] = kmeans_vectors
        abx = abx_figures(cfg, model, score, score_segments, vectors)
    result = PhonesResult(
        str(tokenizer_dir), str(out_dir), model.frame_rate, phones, figures, baselines, model.config.duration_penalty,
        abx,
    )  # fmt: skip
    with folder, folder.staging() as tmp:
        if cfg.phones.plot:
            title = f"codes -> phones: {figures['mapping_accuracy']:.1%} mapping accuracy (rows: true phone)"
            confusion_png(confusion, phones, tmp / "confusion.png", title=title)
        atomic_write_json(tmp / "figures.json", result.to_dict())
    return result
