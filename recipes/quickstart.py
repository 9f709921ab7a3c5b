"""The quickstart: train a small VQ-VAE on real images, reconstruct held-out ones, report the figures.

Offline and CPU-sized: the ``quickstart`` preset trains on scikit-learn's bundled digits in a few
minutes on two cores (``data.name=fashion_mnist`` uses Debian's Fashion-MNIST files instead). The
output directory (default ``runs/quickstart``) is a training run directory (see
:mod:`recipes.tokenizer.train`) plus::

    reconstructions/reconstructions.png   held-out originals (rows) above their reconstructions
    reconstructions/reconstructions.json  their MSE, PSNR, SSIM
    summary.json                          the figures on the whole held-out split, and where everything is
    codes_*/, prior_run/, samples/        a small prior over the codes and its samples (recipes.priors.quickstart)

Running it again continues the run in the directory (or just reports, when it is complete);
``overwrite=True`` starts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from recipes.engine.config import load_config
from recipes.engine.results import format_figures
from recipes.priors import sample, train_prior
from recipes.priors.config import PriorRecipeConfig
from recipes.tokenizer import evaluate, reconstruct, tokenize
from recipes.tokenizer import train as train_tokenizer
from recipes.tokenizer.config import ImageRecipeConfig
from tokenizers_vq.io import atomic_write_json, atomic_write_text
from tokenizers_vq.pretrained import directory_identity

SUMMARY_NAME = "summary.json"


@dataclass
class QuickstartResult:
    """Where the quickstart wrote its files and the figures it measured."""

    run_dir: str
    tokenizer: str
    grid: str
    summary: str
    steps: int  # optimizer steps done so far
    total_steps: int  # train.steps
    stopped_by_budget: bool  # train.max_minutes ran out first; running again continues
    train_seconds: float  # the run's training time over every invocation, not this invocation's
    figures: dict[str, Any] = field(default_factory=dict)  # evaluate on the held-out split

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        head = {
            "run_dir": self.run_dir,
            "tokenizer": self.tokenizer,
            "reconstructions": self.grid,
            "summary": self.summary,
            "steps": f"{self.steps}/{self.total_steps}",
            "train_seconds": self.train_seconds,
        }
        text = format_figures({**head, **self.figures}, title="quickstart")
        if self.stopped_by_budget:
            text += (
                f"\n\nTraining stopped at step {self.steps} of {self.total_steps} when train.max_minutes ran out; "
                "run the same command again to continue from the checkpoint."
            )
        return text


PRESET = "prior_quickstart"
STAMP_NAME = "tokenizer.sha256"  # the identity of the tokenizer the prior was trained on


def fit_and_sample(
    cfg: ImageRecipeConfig, tokenizer_dir: str, root: Path, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Tokenize ``cfg.data``'s train and eval splits, train the quickstart prior, sample; returns its figures.

    ``overrides`` are dotted keys for the ``prior_quickstart`` preset (e.g. ``train.steps=20``).
    """
    corpora = {}
    for role, split in (("corpus", cfg.data.train_split), ("eval_corpus", cfg.data.eval_split)):
        out = root / f"codes_{split}"
        tokenize.run(replace(cfg, tokenizer=tokenizer_dir, out=str(out), tokenize=replace(cfg.tokenize, split=split)))
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
    weights = directory_identity(tokenizer_dir)
    fresh = not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != weights
    trained = train_prior.run(prior_cfg, resume=not fresh, overwrite=fresh)
    atomic_write_text(stamp, weights + "\n")
    drawn = sample.run(replace(prior_cfg, prior=trained.prior_dir, out=str(root / "samples")))
    figures = trained.figures
    return {
        "prior": trained.prior_dir,
        "samples": drawn.files[0] if drawn.files else None,
        "prior_steps": trained.step,
        "prior_train_seconds": trained.run_seconds,  # a finished prior given again keeps its training time
        "bits_per_code": figures.get("bits_per_code"),
        "bits_per_dim": figures.get("bits_per_dim"),
        "sampling_seconds": drawn.sampling_seconds,
    }


def run(cfg: ImageRecipeConfig, *, resume: bool = True, overwrite: bool = False) -> QuickstartResult:
    """Train (or continue) the run in ``cfg.out``, then reconstruct and evaluate on ``cfg.data.eval_split``."""
    trained = train_tokenizer.run(cfg, resume=resume and not overwrite, overwrite=overwrite)
    root = Path(trained.run_dir)
    with_tokenizer = replace(cfg, tokenizer=trained.tokenizer_dir)
    grid = reconstruct.run(replace(with_tokenizer, out=str(root / "reconstructions")))
    evaluated = evaluate.run(replace(with_tokenizer, out=None))
    prior = fit_and_sample(cfg, trained.tokenizer_dir, root)  # a small prior over the codes, and its samples
    result = QuickstartResult(
        run_dir=str(root),
        tokenizer=trained.tokenizer_dir,
        grid=grid.figures["grid"],
        summary=str(root / SUMMARY_NAME),
        steps=trained.step,
        total_steps=trained.steps,
        stopped_by_budget=trained.stopped_by_budget,
        train_seconds=trained.run_seconds,  # a finished run given again keeps its training time
        figures={**evaluated.to_dict(), "prior": prior},
    )
    atomic_write_json(root / SUMMARY_NAME, {**result.to_dict(), "reconstruction": grid.figures["figures"]})
    return result
