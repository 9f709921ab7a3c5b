"""``vqtok train-mixed``: one transformer prior over text prompts, image codes and audio codes.

A run directory (``out``, default ``runs/<name>``) holds ``config.yaml``, ``metrics.jsonl`` (training
rows in nats and bits per token; held-out rows per modality), ``checkpoint/state.pt`` and ``prior/``:
the model with its token space, which ``AutoModelForCausalLM`` and ``AutoTokenizer.from_pretrained``
read as they are; ``tensorboard/`` holds the rows as TensorBoard scalars. Training minimises the mean
NLL per token over whole streams (prompt, markers and codes); batches mix the modalities at random,
audio about ``data.audio_share`` of them. Resuming and the refusal to clobber a run are
:mod:`recipes.engine.checkpoint`'s; many processes (``torchrun``) are :mod:`recipes.engine.parallel`'s.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from priors.mixed import MixedPrior
from recipes.engine import parallel
from recipes.engine.checkpoint import check_run_dir, check_same_run, run_dir, start_training
from recipes.engine.parallel import Ranks
from recipes.engine.results import TrainingResultFigures
from recipes.engine.runlog import RunLog, after_step
from recipes.engine.runtime import resolve_device, seed_everything, set_threads
from recipes.mixed.config import MixedRecipeConfig
from recipes.mixed.data import MixedData, open_mixed_data
from recipes.mixed.evaluate import held_out_figures
from recipes.priors.train_prior import PriorRunPaths
from recipes.sequence_lm import fit_step
from tokenizers_vq.token_space import TokenSpace

LN2 = math.log(2.0)
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


def run(cfg: MixedRecipeConfig, *, resume: bool = False, overwrite: bool = False) -> TrainMixedResult:
    """Fit one causal transformer to the mixed streams of ``cfg.data`` for ``cfg.train.steps`` steps.

    Under ``torchrun`` every rank takes its contiguous share of each batch with
    DistributedDataParallel and rank 0 alone evaluates and writes (:mod:`recipes.engine.parallel`).
    """
    paths = PriorRunPaths(run_dir(cfg))
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    # Checked before the corpora are opened: a resumed run keeps its token space (the published one),
    # so its ids mean what they meant.
    has_state = check_run_dir(paths, resume, overwrite)
    if has_state:
        check_same_run(paths, cfg, RESUME_FIXED)
    seed_everything(cfg.seed)  # the text model and the weights are drawn from it
    saved_space = paths.prior / "token_space.json"
    data = open_mixed_data(cfg.data, TokenSpace.load(paths.prior) if has_state and saved_space.is_file() else None)
    with parallel.joined(device) as ranks:
        return _train(cfg, ranks, paths, data, resume, overwrite)


def _train(
    cfg: MixedRecipeConfig, ranks: Ranks, paths: PriorRunPaths, data: MixedData, resume: bool, overwrite: bool
) -> TrainMixedResult:
    tc, device = cfg.train, ranks.device
    has_state = ranks.open_run(paths, cfg, tc.batch_size, resume, overwrite, RESUME_FIXED)
    has_eval = data.image_eval is not None or data.audio_eval is not None

    prior = MixedPrior(data.space, data.lengths, cfg.model).to(device).train()
    optimizer = torch.optim.Adam(prior.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    total = data.training_index()[2]
    start = start_training(paths, prior, optimizer, total, tc.batch_size, cfg.seed, has_state)
    order, step = start.order, start.step
    log = RunLog(paths, start.rows, start.resumed_from, enabled=ranks.is_main)
    net = ranks.wrap(prior.model)

    figures: dict[str, Any] = {}
    interval, interval_steps, train_bits = 0.0, 0, None
    began = time.monotonic()
    stopped_by_budget = False
    bar = tqdm(total=tc.steps, initial=step, desc=f"train-mixed {cfg.name}", unit="step", dynamic_ncols=True,
               file=sys.stderr, disable=None if ranks.is_main else True)  # fmt: skip

    def train_row() -> dict[str, Any]:
        nonlocal interval, interval_steps, train_bits
        train_bits = interval / interval_steps / LN2
        row = {"kind": "train", "step": step, "lr": tc.lr_at(step - 1), "bits_per_token": train_bits,
               "seconds": round(start.seconds_before + elapsed, 3)}  # fmt: skip
        interval, interval_steps = 0.0, 0
        bar.set_postfix(bits_per_token=f"{train_bits:.3f}", refresh=False)
        return row

    def evaluation() -> dict[str, Any]:
        return held_out_figures(prior, data, cfg.eval.batch_size, tc.eval_images)

    try:
        while step < tc.steps:
            # This rank's contiguous share of the global batch; fit_step weighs it by the batch's token count.
            batch = [data.training_sequence(i) for i in ranks.share(order.next()).tolist()]
            interval += fit_step(net, optimizer, batch, 0, tc, step, ranks)
            step, interval_steps = step + 1, interval_steps + 1
            bar.update(1)

            elapsed = time.monotonic() - began
            stopped_by_budget = ranks.out_of_time(elapsed, tc.max_minutes, step, tc.steps)
            last = step == tc.steps or stopped_by_budget
            figures = after_step(log, tc, step, last, train_row=train_row, evaluate=evaluation if has_eval else None,
                                 codebooks=None, model=prior, optimizer=optimizer, order=order,
                                 seconds=start.seconds_before + elapsed) or figures  # fmt: skip
            if stopped_by_budget:
                break
    finally:
        bar.close()
        log.close()

    if ranks.is_main and not paths.prior.exists():  # a resumed run that had nothing left to train
        prior.save_pretrained(paths.prior)
    if ranks.is_main and has_eval and not figures:
        figures = evaluation()
    return TrainMixedResult(
        run_dir=str(paths.root),
        prior_dir=str(paths.prior),
        vocab_size=data.space.vocab_size,
        parameters=sum(p.numel() for p in prior.parameters()),
        step=step,
        steps=tc.steps,
        training_sequences=total,
        stopped_by_budget=stopped_by_budget,
        seconds=round(time.monotonic() - began, 3),
        train_bits_per_token=train_bits,
        figures=figures,
        world_size=ranks.world,
    )
