"""The quickstart: train a small VQ-VAE on real images, reconstruct held-out ones, report the figures.

Offline and CPU-sized: the ``quickstart`` preset trains on scikit-learn's bundled digits in a few
minutes on two cores (``data.name=fashion_mnist`` uses Debian's Fashion-MNIST files instead). The
output directory (default ``runs/quickstart``) is a training run directory (see
:mod:`recipes.image.train_tokenizer`) plus::

    reconstructions/reconstructions.png   held-out originals (rows) above their reconstructions
    reconstructions/reconstructions.json  their MSE, PSNR, SSIM
    summary.json                          the figures on the whole held-out split, and where everything is
    codes_*/, prior_run/, samples/        a small prior over the codes and its samples (recipes.priors.quickstart)

Running it again continues the run in the directory (or just reports, when it is complete);
``overwrite=True`` starts again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from recipes.engine.results import format_figures
from recipes.image import evaluate, reconstruct, train_tokenizer
from recipes.image.config import ImageRecipeConfig
from recipes.priors.quickstart import fit_and_sample
from tokenizers_vq.io import atomic_write_json

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
    train_seconds: float
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
        grid=grid.grid,
        summary=str(root / SUMMARY_NAME),
        steps=trained.step,
        total_steps=trained.steps,
        stopped_by_budget=trained.stopped_by_budget,
        train_seconds=trained.seconds,
        figures={**evaluated.to_dict(), "prior": prior},
    )
    atomic_write_json(root / SUMMARY_NAME, {**result.to_dict(), "reconstruction": grid.figures})
    return result
