"""The one training loop on a toy task: interval means, rows without evaluation, a non-finite loss, resuming."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from recipes.engine.checkpoint import RunPaths, load_checkpoint
from recipes.engine.parallel import Ranks
from recipes.engine.trainer import FitOutcome, Meter, StepOutput, adam, fit
from tokenizers_vq.io import read_jsonl


class Line(nn.Module):
    """y = w·x + b, published as a state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def save_pretrained(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(directory) / "weights.pt")


@dataclass
class LineTask:
    """Fit y = x₀ - x₁ on 16 fixed points; the loss turns NaN at step ``nan_at`` when set."""

    nan_at: int | None = None
    x: torch.Tensor = field(default_factory=lambda: torch.linspace(-1, 1, 32).reshape(16, 2))
    steps: int = 0
    progress: ClassVar[tuple[str, ...]] = ("loss",)

    def __len__(self) -> int:
        return len(self.x)

    def step(self, net: nn.Module, indices: torch.Tensor) -> StepOutput:
        self.steps += 1
        x = self.x[indices]
        loss = (net(x)[:, 0] - (x[:, 0] - x[:, 1])).pow(2).mean()
        if self.steps == self.nan_at:
            loss = loss * float("nan")
        return StepOutput(loss, {"loss": float(loss.detach()), "levels": [1.0, float(self.steps)]})

    def evaluate(self) -> dict[str, Any] | None:
        return None  # no held-out set

    def describe(self, step: int, figures: dict[str, Any]) -> str:
        raise AssertionError("never called without evaluations")


@dataclass
class Schedule:
    steps: int = 6
    batch_size: int = 4
    lr: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    max_minutes: float | None = None
    log_every: int = 2
    eval_every: int = 1
    checkpoint_every: int = 3


@dataclass
class Config:
    seed: int = 0
    train: Schedule = field(default_factory=Schedule)


def train_line(out: Path, task: LineTask, steps: int = 6, resume: bool = False) -> FitOutcome:
    cfg = Config(train=Schedule(steps=steps))
    torch.manual_seed(cfg.seed)
    model = Line()
    return fit(task, model, adam(model, cfg.train), cfg.train, RunPaths(out, "line"), Ranks(torch.device("cpu")),
               seed=cfg.seed, config=cfg, resume=resume)  # fmt: skip


def test_meter_means_numbers_and_per_level_lists_then_resets() -> None:
    meter = Meter()
    meter.add({"loss": 1.0, "usage": [0.5, 1.0]})
    meter.add({"loss": 3.0, "usage": [1.0, 0.0]})
    assert meter.means() == {"loss": 2.0, "usage": [0.75, 0.5]}
    meter.add({"loss": 5.0})
    assert meter.means() == {"loss": 5.0}


def test_fit_logs_interval_means_and_no_evaluation_rows(tmp_path: Path) -> None:
    outcome = train_line(tmp_path / "run", LineTask())
    assert (outcome.step, outcome.resumed_from, outcome.figures, outcome.codebook_checksum) == (6, None, {}, None)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 2), ("train", 4), ("train", 6)]
    assert [r["levels"] for r in rows] == [[1.0, 1.5], [1.0, 3.5], [1.0, 5.5]]  # means over each interval
    assert outcome.train_row == rows[-1] and rows[-1]["lr"] == 0.1
    assert (tmp_path / "run" / "line" / "weights.pt").is_file() and (tmp_path / "run" / "config.yaml").is_file()


def test_a_non_finite_loss_stops_at_its_step_after_the_last_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"not finite at step 5 \(nan on rank 0\); lower train\.lr"):
        train_line(tmp_path / "run", LineTask(nan_at=5))
    assert load_checkpoint(tmp_path / "run" / "checkpoint" / "state.pt")["step"] == 3


def test_a_resumed_run_reaches_the_same_weights(tmp_path: Path) -> None:
    train_line(tmp_path / "straight", LineTask())
    train_line(tmp_path / "split", LineTask(), steps=3)
    resumed = train_line(tmp_path / "split", LineTask(), resume=True)
    assert (resumed.resumed_from, resumed.step) == (3, 6)
    a, b = (torch.load(tmp_path / run / "line" / "weights.pt") for run in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
