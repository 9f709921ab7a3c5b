"""The quickstart's prior stage: tokenize the data with the fresh tokenizer, fit a small prior, write samples.

Adds to a quickstart run directory::

    codes_<split>/        the train and held-out code corpora (``vqtok tokenize``)
    prior_run/            a ``train-prior`` run (preset ``prior_quickstart``), its prior in ``prior_run/prior``
    samples/samples.png   class-conditional samples decoded by the tokenizer, a row per class

Running it again continues the prior's run (or only samples, when it is complete); when the
tokenizer has changed since (the quickstart continued its training), the prior starts again. The prior trains
for the preset's steps, or the tokenizer's ``train.steps`` when that is fewer (smoke runs stay small).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from recipes.engine.config import load_config
from recipes.image import tokenize_corpus
from recipes.image.config import ImageRecipeConfig
from recipes.image.tokenize_corpus import WEIGHTS_NAME
from recipes.priors import sample, train_prior
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.io import atomic_write_text, sha256_file

PRESET = "prior_quickstart"
STAMP_NAME = "tokenizer.sha256"  # the tokenizer weights the prior was trained on


def fit_and_sample(
    cfg: ImageRecipeConfig, tokenizer_dir: str, root: Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Tokenize ``cfg.data``'s train and eval splits, train the quickstart prior, sample; returns its figures.

    ``overrides`` are dotted keys for the ``prior_quickstart`` preset (e.g. ``train.steps=20``).
    """
    corpora = {}
    for role, split in (("corpus", cfg.data.train_split), ("eval_corpus", cfg.data.eval_split)):
        out = root / f"codes_{split}"
        tokenize_corpus.run(
            replace(cfg, tokenizer=tokenizer_dir, out=str(out), tokenize=replace(cfg.tokenize, split=split))
        )
        corpora[role] = out
    preset_steps = load_config(PriorRecipeConfig, PRESET).train.steps
    # A smoke-sized quickstart (a few tokenizer steps) gets an equally small prior: never more steps than the tokenizer's.
    keys = [f"train.steps={min(preset_steps, cfg.train.steps)}"]
    keys += [f"{role}={path}" for role, path in corpora.items()]
    keys += [
        f"out={root / 'prior_run'}",
        f"seed={cfg.seed}",
        f"device={cfg.device}",
        f"threads={'null' if cfg.threads is None else cfg.threads}",
        *overrides,
    ]
    prior_cfg = load_config(PriorRecipeConfig, PRESET, keys)
    # The prior belongs to one state of the tokenizer: when the tokenizer moved on (a quickstart that
    # continued its training), the old prior models codes that no longer exist, so start it again.
    stamp = root / "prior_run" / STAMP_NAME
    weights = sha256_file(Path(tokenizer_dir) / WEIGHTS_NAME)
    fresh = not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != weights
    trained = train_prior.run(prior_cfg, resume=not fresh, overwrite=fresh)
    atomic_write_text(stamp, weights + "\n")
    drawn = sample.run(replace(prior_cfg, prior=trained.prior_dir, out=str(root / "samples")))
    figures = trained.figures
    return {
        "prior": trained.prior_dir,
        "samples": drawn.files[0] if drawn.files else None,
        "prior_steps": trained.step,
        "prior_train_seconds": trained.seconds,
        "bits_per_code": figures.get("bits_per_code"),
        "bits_per_dim": figures.get("bits_per_dim"),
        "sampling_seconds": drawn.sampling_seconds,
    }
