"""Train a prior (gated PixelCNN, WaveNet-like 1-D, or transformer) over a code corpus, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``n`` codes per item.

A run directory (``out``, default ``runs/<name>``) is the tokenizer recipes' layout with the
weights under ``prior/``::

    config.yaml           the resolved config of the run
    metrics.jsonl         training rows ("kind": "train", nats and bits per code) and evaluations ("kind": "eval")
    tensorboard/          the same rows as TensorBoard scalars
    prior/                the published prior (a transformers model directory for the transformer)
    checkpoint/state.pt   training state: model, optimizer, step, RNG states, data-order position

Checkpoints, resume and the refusal to clobber a run are :mod:`recipes.engine.checkpoint`'s.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from priors import CodePrior, PixelCNNPrior, TransformerPrior, evaluate_likelihood
from recipes.engine import parallel
from recipes.engine.checkpoint import RunPaths, run_dir, start_training
from recipes.engine.parallel import Ranks
from recipes.engine.results import TrainingResultFigures
from recipes.engine.runlog import RunLog, after_step
from recipes.engine.runtime import evaluation_mode, optimizer_step, seed_everything
from recipes.priors.common import setup
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import CodeCorpus, open_corpus

LN2 = math.log(2.0)
# Keys a resumed run must share with the run it continues (the codes it models and the model).
RESUME_FIXED = ("seed", "corpus", "model.")


@dataclass(frozen=True)
class PriorRunPaths(RunPaths):
    """A training run's files, with the published weights in ``prior/`` instead of ``tokenizer/``."""

    @property
    def tokenizer(self) -> Path:  # the name the shared checkpoint helpers write the weights to
        return self.root / "prior"

    @property
    def prior(self) -> Path:
        return self.root / "prior"


def build_prior(cfg: PriorRecipeConfig, corpus: CodeCorpus) -> CodePrior:
    """A fresh prior of ``cfg.model`` for the codes of ``corpus``."""
    layout = corpus.layout(cfg.model.conditional)
    if cfg.model.kind == "transformer":
        return TransformerPrior(layout, cfg.model.transformer)
    return PixelCNNPrior(layout, cfg.model.pixelcnn)


def open_corpora(cfg: PriorRecipeConfig) -> tuple[CodeCorpus, CodeCorpus | None]:
    """The training corpus and the held-out one (None when ``eval_corpus`` is not set), made to agree."""
    train = open_corpus(cfg.corpus, "corpus", max_length=cfg.model.max_length)
    held_out = None
    if cfg.eval_corpus:
        length = train.levels[0].shape[1] if train.end_code is not None else None
        held_out = open_corpus(cfg.eval_corpus, "eval_corpus", num_classes=train.num_classes, max_length=length)
        mine, theirs = train.layout(), held_out.layout()
        if (mine.shapes, mine.codebook_sizes) != (theirs.shapes, theirs.codebook_sizes):
            raise ValueError(
                f"corpus and eval_corpus hold different codes ({mine.shapes}/{mine.codebook_sizes} vs "
                f"{theirs.shapes}/{theirs.codebook_sizes}); tokenize both with the same tokenizer."
            )
    return train, held_out


def held_out_figures(
    prior: CodePrior, corpus: CodeCorpus, conditional: bool, batch_size: int, limit: int | None
) -> dict[str, Any]:
    """``evaluate_likelihood`` of the first ``limit`` items of ``corpus`` as a dict (RNG and mode left as found)."""
    with torch.random.fork_rng(), evaluation_mode(prior):
        result = evaluate_likelihood(prior, corpus.batches(batch_size, limit, conditional), corpus.dims_per_item)
    return result.to_dict()


@dataclass
class TrainPriorResult(TrainingResultFigures):
    """What a training run did, and its last held-out figures."""

    title: ClassVar[str] = "train-prior"

    run_dir: str
    prior_dir: str
    kind: str
    parameters: int
    step: int
    steps: int
    resumed_from: int | None
    stopped_by_budget: bool
    seconds: float
    train_bits_per_code: float | None  # mean over the last log interval
    figures: dict[str, Any] = field(default_factory=dict)  # last held-out evaluation (empty without eval_corpus)
    world_size: int = 1  # processes that trained (torchrun)


def run(cfg: PriorRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainPriorResult:
    """Fit ``cfg.model`` to ``cfg.corpus`` for ``cfg.train.steps`` steps of Adam on the mean NLL per code.

    Under ``torchrun`` every rank takes its contiguous share of each batch with
    DistributedDataParallel and rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    device = setup(cfg)
    corpus, held_out = open_corpora(cfg)
    with parallel.joined(device) as ranks:
        return _train(cfg, ranks, corpus, held_out, resume, overwrite)


def _train(
    cfg: PriorRecipeConfig,
    ranks: Ranks,
    corpus: CodeCorpus,
    held_out: CodeCorpus | None,
    resume: bool,
    overwrite: bool,
) -> TrainPriorResult:
    paths = PriorRunPaths(run_dir(cfg))
    tc, device = cfg.train, ranks.device
    has_state = ranks.open_run(paths, cfg, tc.batch_size, resume, overwrite, RESUME_FIXED)

    seed_everything(cfg.seed)
    prior = build_prior(cfg, corpus).to(device).train()
    optimizer = torch.optim.Adam(prior.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    start = start_training(paths, prior, optimizer, len(corpus), tc.batch_size, cfg.seed, has_state)
    order, step, resumed_from = start.order, start.step, start.resumed_from
    log = RunLog(paths, start.rows, resumed_from, enabled=ranks.is_main)
    net = ranks.wrap(prior)

    figures: dict[str, Any] = {}
    interval_nats, interval_steps, train_bits = 0.0, 0, None
    began = time.monotonic()
    stopped_by_budget = False
    bar = tqdm(total=tc.steps, initial=step, desc=f"train-prior {cfg.name}", unit="step", dynamic_ncols=True,
               file=sys.stderr, disable=None if ranks.is_main else True)  # fmt: skip

    def train_row() -> dict[str, Any]:
        nonlocal interval_nats, interval_steps, train_bits
        train_bits = interval_nats / interval_steps / LN2
        row = {"kind": "train", "step": step, "lr": tc.lr, "seconds": round(start.seconds_before + elapsed, 3),
               "nats_per_code": interval_nats / interval_steps, "bits_per_code": train_bits}  # fmt: skip
        interval_nats, interval_steps = 0.0, 0
        bar.set_postfix(bits_per_code=f"{train_bits:.3f}", refresh=False)
        return row

    def evaluation() -> dict[str, Any]:
        assert held_out is not None, "evaluated only with a held-out corpus"
        result = held_out_figures(prior, held_out, cfg.model.conditional, cfg.eval.batch_size, tc.eval_images)
        bar.write(f"eval @ step {step}: {result['bits_per_code']:.4f} bits/code"
                  + (f", {result['bits_per_dim']:.4f} bits/dim" if result["bits_per_dim"] else ""),
                  file=sys.stderr)  # fmt: skip
        return result

    try:
        while step < tc.steps:
            batch = ranks.share(order.next())  # this rank's contiguous share of the global batch
            levels, labels = corpus.batch(batch.numpy(), cfg.model.conditional)
            out = net([g.to(device) for g in levels], None if labels is None else labels.to(device))
            optimizer_step(out.loss, optimizer, prior, tc.grad_clip, step, "lower train.lr")
            step += 1
            interval_nats, interval_steps = interval_nats + float(out.loss.detach()), interval_steps + 1
            bar.update(1)

            elapsed = time.monotonic() - began
            stopped_by_budget = ranks.out_of_time(elapsed, tc.max_minutes, step, tc.steps)
            last = step == tc.steps or stopped_by_budget
            figures = after_step(log, tc, step, last, train_row=train_row,
                                 evaluate=None if held_out is None else evaluation, codebooks=None,
                                 model=prior, optimizer=optimizer, order=order,
                                 seconds=start.seconds_before + elapsed) or figures  # fmt: skip
            if stopped_by_budget:
                break
    finally:
        bar.close()
        log.close()

    if ranks.is_main and not paths.prior.exists():  # nothing left to train (a resumed run that was already complete)
        prior.save_pretrained(paths.prior)
    if ranks.is_main and held_out is not None and not figures:
        figures = held_out_figures(prior, held_out, cfg.model.conditional, cfg.eval.batch_size, tc.eval_images)
    return TrainPriorResult(
        run_dir=str(paths.root),
        prior_dir=str(paths.prior),
        kind=cfg.model.kind,
        parameters=sum(p.numel() for p in prior.parameters()),
        step=step,
        steps=tc.steps,
        resumed_from=resumed_from,
        stopped_by_budget=stopped_by_budget,
        seconds=round(time.monotonic() - began, 3),
        train_bits_per_code=train_bits,
        figures=figures,
        world_size=ranks.world,
    )
