"""Sample codes from a prior and decode them: a PNG grid for images (one row per class), WAV files for speech.

Dimension legend: ``n`` samples, ``c``/``h``/``w`` image channels and size, ``r`` images per grid row.

The output directory (``out``, default ``<prior dir>/../samples``) gets ``codes_level{l}.npy`` and
``labels.npy`` (the sampled codes, in the corpus's layout), ``samples.png`` or ``sample_NNN.wav``,
``samples.json`` (the figures), ``config.yaml`` and ``sources.json`` (the prior and the tokenizer that decodes
the codes, by content identity and relative path). With ``sample.rejection_threshold`` set,
a classifier trained on real images keeps only samples it assigns to their class with probability
above the threshold (VQ-VAE-2's classifier-based rejection); the grid shows the kept ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities.image.data import corpus_images
from modalities.image.grid import decode_images, image_grid, png_bytes
from priors import class_probabilities, rejection_mask, train_classifier
from recipes.engine.artifacts import corpus_identity, corpus_tokenizer, write_made_from
from recipes.engine.config import save_config
from recipes.engine.outputs import OutputFolder, check_folder
from recipes.engine.results import format_figures
from recipes.engine.runtime import seed_everything
from recipes.priors.common import class_labels, draw_samples, find_corpus, open_prior, setup
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import CodeCorpus, trim_at_end
from tokenizers_vq.io import atomic_path, atomic_write_bytes, atomic_write_json

GRID_NAME = "samples.png"
FIGURES_NAME = "samples.json"


@dataclass
class SampleRecipeResult:
    """Where the samples went and how long sampling took."""

    out_dir: str
    prior: str
    num_samples: int
    cached: bool
    sampling_seconds: float
    samples_per_second: float
    files: list[str] = field(default_factory=list)  # the PNG grid or the WAV files
    acceptance_rate: float | None = None  # with rejection sampling: the fraction of samples kept
    # Speech: the samples drawn but not written, each {"sample": index, "reason": why} (an utterance the
    # prior ended at once has no audio); len(files) + len(skipped) == num_samples.
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        figures = {k: v for k, v in self.to_dict().items() if k not in ("files", "skipped")}
        figures["files"] = self.files[0] if len(self.files) == 1 else f"{len(self.files)} files in {self.out_dir}"
        if self.skipped:
            figures["skipped"] = "; ".join(f"sample {s['sample']}: {s['reason']}" for s in self.skipped)
        return format_figures(figures, title="sample")


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _write_speech(
    out: Path, corpus: CodeCorpus, codes: torch.Tensor, labels: torch.Tensor | None, cfg
) -> tuple[list[str], list[dict[str, Any]]]:
    """One WAV per sampled utterance; returns the files, and the samples skipped with the reason."""
    from modalities.speech import save_audio

    tokenizer = corpus_tokenizer(corpus, "cpu")
    speaker = cfg.sample.speaker
    if tokenizer.speaker_embedding is not None and speaker is None:
        speaker = tokenizer.config.speakers[0]
    files, skipped = [], []
    assert corpus.end_code is not None, "a speech corpus has an end code"
    for i, row in enumerate(trim_at_end(codes, corpus.end_code)):
        if row.numel() == 0:
            skipped.append({"sample": i, "reason": "the prior drew the end code first: an empty utterance"})
            continue
        wave = tokenizer.decode(row[None], speaker=speaker)[0].cpu()
        if wave.numel() == 0:
            skipped.append({"sample": i, "reason": f"its {row.numel()} code(s) decode to no samples"})
            continue
        tag = "" if labels is None else f"_class{int(labels[i])}"
        path = out / f"sample_{i:03d}{tag}.wav"
        save_audio(path, wave, tokenizer.sample_rate)
        files.append(str(path))
    return files, skipped


def run(cfg: PriorRecipeConfig, *, overwrite: bool = False) -> SampleRecipeResult:
    """Draw ``sample.num_samples`` (per class) from the prior at ``cfg.prior`` and decode them, into an output folder
    of :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote)."""
    if cfg.out:
        check_folder(Path(cfg.out).expanduser(), "sample", overwrite=overwrite)  # before any work
    device = setup(cfg)
    prior, prior_dir = open_prior(cfg, device, "sample")
    sc = cfg.sample
    # The corpus (and through it the tokenizer) is checked before anything is drawn or written.
    corpus = find_corpus(cfg, prior_dir, "corpus", prior.layout) if sc.decode else None
    tokenizer = corpus_tokenizer(corpus, device) if corpus is not None else None
    labels = class_labels(prior, sc.classes, sc.num_samples)
    total = sc.num_samples if labels is None else labels.numel()
    levels, seconds = draw_samples(prior, labels, total, sc.batch_size, sc.sampling, sc.cached)
    final = Path(cfg.out).expanduser() if cfg.out else prior_dir.resolve().parent / "samples"
    folder = OutputFolder(final, "sample", overwrite=overwrite)
    with folder, folder.staging() as out:  # written in a staging folder, published whole at the end
        for i, grid in enumerate(levels):
            _save_array(out / f"codes_level{i}.npy", grid.numpy())
        if labels is not None:
            _save_array(out / "labels.npy", labels.numpy())
        save_config(cfg, out / "config.yaml")
        made_from = {"prior": (prior_dir, None)}
        if corpus is not None and corpus.tokenizer_dir is not None:
            made_from["tokenizer"] = (corpus.tokenizer_dir, corpus_identity(corpus))
        write_made_from(out, final, made_from)  # sources.json: what decodes these codes

        files: list[str] = []
        skipped: list[dict[str, Any]] = []
        acceptance = None
        if corpus is not None:
            if corpus.modality == "speech":
                files, skipped = _write_speech(out, corpus, levels[0], labels, cfg)
            else:
                images = decode_images(tokenizer, levels)
                rows = sc.per_row or sc.num_samples
                if sc.rejection_threshold is not None:
                    if labels is None:
                        raise ValueError(
                            "rejection sampling needs a class-conditional prior (the classifier checks the class)."
                        )
                    seed_everything(cfg.seed)
                    real, real_labels = corpus_images(corpus, cfg.data_root, cfg.cas.real_train_items)
                    classifier = train_classifier(real, real_labels, prior.layout.num_classes, cfg.cas.classifier)
                    keep = rejection_mask(class_probabilities(classifier, images), labels, sc.rejection_threshold).cpu()
                    acceptance = float(keep.float().mean())
                    images = _kept_rows(images, labels, keep, rows)
                atomic_write_bytes(out / GRID_NAME, png_bytes(image_grid(images, rows, sc.min_cell)))
                files = [str(out / GRID_NAME)]
        result = SampleRecipeResult(
            out_dir=str(final),
            prior=str(prior_dir),
            num_samples=total,
            cached=sc.cached,
            sampling_seconds=round(seconds, 3),
            samples_per_second=total / seconds if seconds > 0 else float("inf"),
            files=folder.final(files, out),
            acceptance_rate=acceptance,
            skipped=skipped,
        )
        atomic_write_json(out / FIGURES_NAME, result.to_dict())
    return result


def _kept_rows(images: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, per_row: int) -> torch.Tensor:
    """Each class's kept images, a row per class padded with blank (white) cells."""
    rows = []
    for c in labels.unique(sorted=True).tolist():
        kept = images[(labels == c) & keep][:per_row]
        blank = torch.full((per_row - kept.shape[0], *images.shape[1:]), 255, dtype=torch.uint8)
        rows.append(torch.cat([kept, blank]))
    return torch.cat(rows)
