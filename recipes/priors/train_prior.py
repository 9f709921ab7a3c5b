"""Train a prior (gated PixelCNN, WaveNet-like 1-D, or transformer) over a code corpus, resumable at any checkpoint.

Dimension legend: ``b`` batch, ``n`` codes per item.

A run directory (``out``, default ``runs/<name>``) is the tokenizer recipes' layout with the
weights under ``prior/``::

    config.yaml           the resolved config of the run
    metrics.jsonl         training rows ("kind": "train", nats and bits per code) and evaluations ("kind": "eval")
    tensorboard/          the same rows as TensorBoard scalars
    prior/                the published prior (a transformers model directory for the transformer)
    checkpoint/state.pt   training state: model, optimizer, step, RNG states, data-order position

The loop, checkpoints, resume and the refusal to clobber a run are :func:`recipes.engine.trainer.fit`'s;
this module is the :class:`PriorTask`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from priors import CodePrior, PixelCNNPrior, TransformerPrior, evaluate_likelihood
from recipes.engine import parallel
from recipes.engine.artifacts import check_corpus_of, check_same_tokenizer, write_sources
from recipes.engine.checkpoint import RunPaths, run_dir
from recipes.engine.results import TrainingResultFigures
from recipes.engine.runtime import evaluation_mode, seed_everything
from recipes.engine.trainer import StepOutput, adam, fit
from recipes.priors.common import setup
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import CodeCorpus, open_corpus

LN2 = math.log(2.0)
# Keys a resumed run must share with the run it continues (the codes it models and the model).
RESUME_FIXED = ("seed", "corpus", "model.")


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
        check_same_tokenizer({"corpus": train, "eval_corpus": held_out})
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
class PriorTask:
    """Items of a code corpus → the prior's mean NLL per code; held-out bits per code and per dimension."""

    cfg: PriorRecipeConfig
    prior: CodePrior
    corpus: CodeCorpus
    held_out: CodeCorpus | None
    device: torch.device
    progress: ClassVar[tuple[str, ...]] = ("bits_per_code",)

    def __len__(self) -> int:
        return len(self.corpus)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        levels, labels = self.corpus.batch(indices.numpy(), self.cfg.model.conditional)
        out = net([g.to(self.device) for g in levels], None if labels is None else labels.to(self.device))
        nats = float(out.loss.detach())
        return StepOutput(out.loss, {"nats_per_code": nats, "bits_per_code": nats / LN2})

    def evaluate(self) -> dict[str, Any] | None:
        if self.held_out is None:
            return None
        cfg = self.cfg
        return held_out_figures(self.prior, self.held_out, cfg.model.conditional, cfg.eval.batch_size,
                                cfg.train.eval_images)  # fmt: skip

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        line = f"eval @ step {step}: {figures['bits_per_code']:.4f} bits/code"
        return line + (f", {figures['bits_per_dim']:.4f} bits/dim" if figures["bits_per_dim"] else "")


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
    run_seconds: float = 0.0  # training time of the whole run, over every invocation


def run(cfg: PriorRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainPriorResult:
    """Fit ``cfg.model`` to ``cfg.corpus`` for ``cfg.train.steps`` steps of Adam on the mean NLL per code.

    Under ``torchrun`` every rank takes its contiguous share of each batch with
    DistributedDataParallel and rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    device = setup(cfg)
    corpus, held_out = open_corpora(cfg)
    paths = RunPaths(run_dir(cfg), "prior")
    if resume and not overwrite:  # the codes a resumed prior goes on learning are of the tokenizer it began with
        check_corpus_of(corpus, paths.weights, "corpus")
    with parallel.joined(device) as ranks:
        seed_everything(cfg.seed)
        prior = build_prior(cfg, corpus).to(ranks.device).train()
        outcome = fit(PriorTask(cfg, prior, corpus, held_out, ranks.device), prior, adam(prior, cfg.train), cfg.train,
                      paths, ranks, seed=cfg.seed, config=cfg, resume=resume, overwrite=overwrite, fixed=RESUME_FIXED,
                      desc=f"train-prior {cfg.name}")  # fmt: skip
    if ranks.is_main and paths.weights.is_dir():
        write_sources(paths.weights, corpus, held_out)
    return TrainPriorResult.from_outcome(
        outcome,
        run_dir=str(paths.root),
        prior_dir=str(paths.weights),
        kind=cfg.model.kind,
        parameters=sum(p.numel() for p in prior.parameters()),
        train_bits_per_code=None if outcome.train_row is None else outcome.train_row["bits_per_code"],
    )
