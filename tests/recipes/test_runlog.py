"""Training logs: the rows of metrics.jsonl as TensorBoard scalars, each step once even after a crash and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recipes.engine.checkpoint import RunPaths
from recipes.engine.config import load_config
from recipes.engine.runlog import RunLog, due, scalars
from recipes.tokenizer import train as train_tokenizer
from recipes.tokenizer.config import ImageRecipeConfig
from tokenizers_vq.io import read_jsonl


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return acc


def test_scalars_flatten_a_row() -> None:
    row = {"kind": "eval", "step": 4, "psnr": 20.5, "usage": [0.5, 1.0], "levels": [{"perplexity": 3}],
           "ranks_agree": True, "codebook_checksum": "ab12"}  # fmt: skip
    assert dict(scalars(row)) == {
        "eval/psnr": 20.5,
        "eval/usage/0": 0.5,
        "eval/usage/1": 1.0,
        "eval/levels/0/perplexity": 3.0,
        "eval/ranks_agree": 1.0,
    }
    assert [s for s in range(1, 9) if due(s, 3, last=s == 8)] == [3, 6, 8]


def test_training_writes_the_metrics_rows_to_tensorboard(tiny_run: Path) -> None:
    rows = read_jsonl(tiny_run / "metrics.jsonl")
    acc = events(tiny_run)
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/psnr", "train/usage/0", "eval/psnr", "eval/levels/0/usage"} <= tags
    assert {"checkpoint/ranks_agree", "checkpoint/world_size"} <= tags
    for kind, key in (("train", "loss"), ("eval", "psnr")):
        logged = [(r["step"], r[key]) for r in rows if r["kind"] == kind]
        assert [(e.step, e.value) for e in acc.Scalars(f"{kind}/{key}")] == [
            (s, pytest.approx(v, rel=1e-6)) for s, v in logged
        ]


class SimulatedCrash(RuntimeError):
    pass


def test_a_resumed_run_shows_each_step_once(tmp_path: Path) -> None:
    cfg = load_config(
        ImageRecipeConfig, "tiny", [f"out={tmp_path}", "train.checkpoint_every=4", "train.eval_every=100"]
    )

    def crash(step: int) -> None:
        if step == 7:  # after rows at steps 2, 4 (checkpoint) and 6 were logged
            raise SimulatedCrash("killed")

    with pytest.raises(SimulatedCrash):
        train_tokenizer.run(cfg, on_step=crash)
    assert [e.step for e in events(tmp_path).Scalars("train/loss")] == [2, 4, 6]
    train_tokenizer.run(cfg, resume=True)

    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per invocation
    rows = {r["step"]: r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "train"}
    shown = [(e.step, e.value) for e in events(tmp_path).Scalars("train/loss")]
    assert shown == [(s, pytest.approx(v, rel=1e-6)) for s, v in rows.items()]  # step 6 of the crashed run purged
    assert [e.step for e in events(tmp_path).Scalars("checkpoint/ranks_agree")] == [4, 8]


def test_overwrite_starts_a_fresh_log_and_other_ranks_write_nothing(tmp_path: Path) -> None:
    cfg = load_config(ImageRecipeConfig, "tiny", [f"out={tmp_path / 'run'}", "train.steps=2", "train.eval_every=100"])
    train_tokenizer.run(cfg)
    train_tokenizer.run(cfg, overwrite=True)
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [e.step for e in events(tmp_path / "run").Scalars("train/loss")] == [2]

    quiet = RunLog(RunPaths(tmp_path / "rank1"), [{"kind": "train", "step": 1, "loss": 1.0}], None, enabled=False)
    quiet.add({"kind": "train", "step": 2, "loss": 0.5})
    quiet.write()
    quiet.close()
    assert quiet.rows == [] and not (tmp_path / "rank1").exists()
