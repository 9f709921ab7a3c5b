"""``vqtok train-mixed``: one transformer prior over text prompts, image codes and audio codes.

A run directory (``out``, default ``runs/<name>``) holds ``config.yaml``, ``metrics.jsonl`` (training
rows in nats and bits per token; held-out rows per modality), ``checkpoint/state.pt`` and ``prior/``:
the model with its token space, which ``AutoModelForCausalLM`` and ``AutoTokenizer.from_pretrained``
read as they are; ``tensorboard/`` holds the rows as TensorBoard scalars. Training minimises the mean
NLL per token over whole streams (prompt, markers and codes); batches mix the modalities at random,
audio about ``data.audio_share`` of them. Resuming and the refusal to clobber a run are
:func:`recipes.engine.trainer.fit`'s, like every training recipe's; the task is a
:class:`recipes.engine.sequence.SequenceTask` over the mixed streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from priors.mixed import MixedPrior
from recipes.engine import parallel
from recipes.engine.artifacts import write_stream_sources
from recipes.engine.checkpoint import RunPaths, check_run_dir, check_same_run, run_dir
from recipes.engine.results import TrainingResultFigures
from recipes.engine.runtime import resolve_device, seed_everything, set_threads
from recipes.engine.sequence import SequenceTask
from recipes.engine.trainer import adam, fit
from recipes.mixed.config import MixedRecipeConfig
from recipes.mixed.data import open_mixed_data
from recipes.mixed.evaluate import held_out_figures
from tokenizers_vq.token_space import TokenSpace

RESUME_FIXED = ("seed", "data.", "model.")


@dataclass
class TrainMixedResult(TrainingResultFigures):
    """What a training run did, and its last held-out figures."""

    title: ClassVar[str] = "train-mixed"

    run_dir: str
    prior_dir: str
    vocab_size: int
    parameters: int
    step: int
    steps: int
    training_sequences: int  # one pass over the (repeated) training index
    stopped_by_budget: bool
    seconds: float
    train_bits_per_token: float | None  # mean over the last log interval
    figures: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1  # processes that trained (torchrun)
    run_seconds: float = 0.0  # training time of the whole run, over every invocation


def run(cfg: MixedRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainMixedResult:
    """Fit one causal transformer to the mixed streams of ``cfg.data`` for ``cfg.train.steps`` steps.

    Under ``torchrun`` every rank takes its contiguous share of each batch with
    DistributedDataParallel and rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    paths = RunPaths(run_dir(cfg), "prior", verb="train-mixed")
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    # Checked before the corpora are opened: a resumed run keeps its token space (the published one),
    # so its ids mean what they meant.
    has_state = check_run_dir(paths, resume, overwrite)
    if has_state:
        check_same_run(paths, cfg, RESUME_FIXED)
    seed_everything(cfg.seed)  # the text model and the weights are drawn from it
    saved_space = paths.weights / "token_space.json"
    data = open_mixed_data(cfg.data, TokenSpace.load(paths.weights) if has_state and saved_space.is_file() else None)
    has_eval = data.image_eval is not None or data.audio_eval is not None
    total = data.training_index()[2]
    with parallel.joined(device) as ranks:
        prior = MixedPrior(data.space, data.lengths, cfg.model).to(ranks.device).train()
        score = partial(held_out_figures, prior, data, cfg.eval.batch_size, cfg.train.eval_images)
        task = SequenceTask(data.training_sequence, total, ranks, score if has_eval else None)
        outcome = fit(task, prior, adam(prior, cfg.train), cfg.train, paths, ranks, seed=cfg.seed, config=cfg,
                      resume=resume, overwrite=overwrite, fixed=RESUME_FIXED, desc=f"train-mixed {cfg.name}",
                      net=prior.model)  # fmt: skip
    if ranks.is_main and paths.weights.is_dir():
        write_stream_sources(paths.weights, data.streams())
    return TrainMixedResult.from_outcome(
        outcome,
        run_dir=str(paths.root),
        prior_dir=str(paths.weights),
        vocab_size=data.space.vocab_size,
        parameters=sum(p.numel() for p in prior.parameters()),
        training_sequences=total,
        train_bits_per_token=None if outcome.train_row is None else outcome.train_row["bits_per_token"],
    )
