"""What the prior recipes share: finding the prior, its corpus and tokenizer, drawing labelled samples, decoding them.

Dimension legend: ``n`` samples, ``c``/``h``/``w`` image channels and size, ``T`` codes per utterance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from priors import CodeLayout, CodePrior, SamplingConfig, load_prior
from recipes.engine.artifacts import check_corpus_of, recorded_source
from recipes.engine.config import load_config
from recipes.engine.runtime import resolve_device, set_threads
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import CodeCorpus, open_corpus
from tokenizers_vq.hub import resolve_model
from tokenizers_vq.progress import progress


def setup(cfg: PriorRecipeConfig) -> torch.device:
    """Apply ``cfg``'s run-time choices (CPU threads) and return its device."""
    set_threads(cfg.threads)
    return resolve_device(cfg.device)


def open_prior(cfg: PriorRecipeConfig, device: torch.device, verb: str) -> tuple[CodePrior, Path]:
    """The prior directory ``cfg.prior`` loaded in eval mode on ``device``."""
    if cfg.prior is None:
        raise ValueError(
            f"{verb} needs a prior: pass --prior DIR (prior=DIR), the 'prior' folder that train-prior wrote."
        )
    directory = resolve_model(cfg.prior)  # a folder, or the cached snapshot of a Hub repo id
    if not directory.is_dir():
        raise FileNotFoundError(f"prior directory {cfg.prior} does not exist; train one with `vqtok train-prior`.")
    return load_prior(directory, map_location=device).eval(), directory


def training_config(prior_dir: Path) -> PriorRecipeConfig | None:
    """The config of the run that trained the prior at ``prior_dir`` (``<run>/config.yaml``), if there is one."""
    saved = prior_dir.parent / "config.yaml"
    return load_config(PriorRecipeConfig, saved) if saved.is_file() else None


def find_corpus(
    cfg: PriorRecipeConfig, prior_dir: Path, key: str = "corpus", layout: CodeLayout | None = None
) -> CodeCorpus:
    """``cfg.<key>``, else the same key of the prior's training run: the corpus that tells how to decode codes.

    ``key`` is ``corpus`` (the training codes) or ``eval_corpus`` (the held-out ones). With the prior's
    ``layout``, the corpus takes its class count and (speech) its padded length, so its codes fit the prior.
    A corpus of another tokenizer than the prior's is refused.
    """
    directory = corpus_path(cfg, prior_dir, key)
    num_classes = layout.num_classes or None if layout is not None else None
    max_length = layout.shapes[0][0] if layout is not None and layout.ndim == 1 else None
    corpus = open_corpus(directory, key, num_classes=num_classes, max_length=max_length)
    check_corpus_of(corpus, prior_dir, key)
    return corpus


def corpus_path(cfg: PriorRecipeConfig, prior_dir: Path, key: str) -> str | Path | None:
    """Where ``cfg.<key>`` or the prior's training run says the corpus is; None when neither names one."""
    directory = getattr(cfg, key) or recorded_source(prior_dir, key)
    trained = training_config(prior_dir) if directory is None else None
    if directory is None and trained is not None:
        directory = getattr(trained, key)
    return directory


def class_labels(prior: CodePrior, classes: list[int] | None, per_class: int) -> torch.Tensor | None:
    """``per_class`` copies of each class (all when ``classes`` is None), grouped by class; None if unconditional."""
    n = prior.layout.num_classes
    if n == 0:
        return None
    chosen = list(range(n)) if classes is None else list(classes)
    bad = [c for c in chosen if not 0 <= c < n]
    if bad:
        raise ValueError(f"sample.classes {bad} are out of range; this prior knows classes 0..{n - 1}.")
    return torch.tensor(chosen).repeat_interleave(per_class)


def draw_samples(
    prior: CodePrior,
    labels: torch.Tensor | None,
    total: int,
    batch_size: int,
    sampling: SamplingConfig,
    cached: bool = True,
) -> tuple[list[torch.Tensor], float]:
    """``total`` samples (for ``labels`` when given) in batches; batch ``i`` uses seed ``sampling.seed + i``.

    Returns the codes (one ``(n, *grid)`` tensor per level, on the CPU) and the sampling seconds.
    """
    parts: list[list[torch.Tensor]] = []
    seconds = 0.0
    with progress(total=total, desc="sampling", unit="sample") as bar:
        for i, start in enumerate(range(0, total, batch_size)):
            stop = min(start + batch_size, total)
            seed = SamplingConfig(sampling.temperature, sampling.top_k, sampling.top_p, sampling.seed + i)
            batch_labels = None if labels is None else labels[start:stop]
            out = prior.sample(batch_labels, batch_size=stop - start, sampling=seed, cached=cached)  # type: ignore[call-arg]
            parts.append([g.cpu() for g in out.levels])
            seconds += out.seconds
            bar.update(stop - start)
    return [torch.cat(level) for level in zip(*parts, strict=True)], seconds
