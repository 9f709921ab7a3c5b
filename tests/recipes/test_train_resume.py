"""Training checkpoints: a run killed at any point resumes to the same step count and the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modalities.image import ImageTokenizer
from recipes.engine.checkpoint import BatchOrder, load_checkpoint
from recipes.engine.config import load_config
from recipes.tokenizer import train as train_tokenizer
from recipes.tokenizer.config import ImageRecipeConfig
from tokenizers_vq.io import read_jsonl

# Checkpoints at 4, 8, 12; evaluations at 6 and 12, so they do not line up with the checkpoints.
SHORT = ["train.steps=12", "train.checkpoint_every=4", "train.eval_every=6", "train.log_every=2"]
TIMING_KEYS = {"seconds", "images_per_second"}


def tiny(out: Path, *overrides: str) -> ImageRecipeConfig:
    return load_config(ImageRecipeConfig, "tiny", [f"out={out}", *overrides])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "tokenizer" / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ after resuming: {different[:5]}"


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


class SimulatedCrash(RuntimeError):
    pass


def crash_at(step: int) -> Callable[[int], None]:
    """An ``on_step`` hook that crashes the run once optimizer step ``step`` is done, before its logging."""

    def hook(done: int) -> None:
        if done == step:
            raise SimulatedCrash("killed")

    return hook


def test_crash_between_checkpoints_resumes_to_identical_run(tmp_path: Path) -> None:
    straight = train_tokenizer.run(tiny(tmp_path / "straight", *SHORT))
    assert straight.step == 12 and straight.resumed_from is None

    # Crash in step 7: after the checkpoint at 4 and the evaluation at 6.
    crashed = tmp_path / "crashed"
    with pytest.raises(SimulatedCrash):
        train_tokenizer.run(tiny(crashed, *SHORT), on_step=crash_at(7))
    assert load_checkpoint(crashed / "checkpoint" / "state.pt")["step"] == 4
    assert max(r["step"] for r in read_jsonl(crashed / "metrics.jsonl")) == 6  # logged past the checkpoint

    resumed = train_tokenizer.run(tiny(crashed, *SHORT), resume=True)
    assert resumed.resumed_from == 4 and resumed.step == 12
    assert_same_weights(straight_dir := tmp_path / "straight", crashed)
    # The log is the uninterrupted run's log: rows after the checkpoint were dropped and redone.
    assert without_timing(read_jsonl(crashed / "metrics.jsonl")) == without_timing(
        read_jsonl(straight_dir / "metrics.jsonl")
    )
    assert resumed.figures["psnr"] == pytest.approx(straight.figures["psnr"])


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    steps = ["train.steps=150", "train.checkpoint_every=15", "train.log_every=15", "train.eval_every=1000"]
    killed = tmp_path / "killed"
    state_path = killed / "checkpoint" / "state.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # the same arithmetic as this process
    cmd = [sys.executable, "-m", "recipes.cli", "train-tokenizer", "--config", "tiny", "--out", str(killed), *steps]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not state_path.exists():
            assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    at_kill = load_checkpoint(state_path)["step"]
    assert 0 < at_kill < 150

    resumed = train_tokenizer.run(tiny(killed, *steps), resume=True)
    assert resumed.resumed_from == at_kill and resumed.step == 150
    assert load_checkpoint(state_path)["step"] == 150
    assert ImageTokenizer.from_pretrained(killed / "tokenizer").config.codebook_size == 16
    assert not list(killed.rglob(".*.tmp")), "temporaries of the killed writer were left behind"
    logged = [r["step"] for r in read_jsonl(killed / "metrics.jsonl") if r["kind"] == "train"]
    assert logged == list(range(15, 151, 15))

    straight = tmp_path / "straight"
    train_tokenizer.run(tiny(straight, *steps))
    assert_same_weights(straight, killed)


def test_time_budget_stops_early_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "budget"
    first = train_tokenizer.run(tiny(out, "train.max_minutes=1e-6"))
    assert first.stopped_by_budget and first.step == 1
    assert load_checkpoint(out / "checkpoint" / "state.pt")["step"] == 1
    assert (out / "tokenizer" / "model.safetensors").is_file()
    rest = train_tokenizer.run(tiny(out, "train.max_minutes=null"), resume=True)
    assert not rest.stopped_by_budget and rest.resumed_from == 1 and rest.step == 8


def test_resume_extends_a_finished_run_and_refuses_another_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_tokenizer.run(tiny(out, "train.steps=4"))
    done = train_tokenizer.run(tiny(out, "train.steps=4"), resume=True)
    assert done.step == 4 and done.resumed_from == 4 and done.figures  # nothing to do; still reports
    longer = train_tokenizer.run(tiny(out, "train.steps=6"), resume=True)
    assert longer.step == 6 and longer.resumed_from == 4
    with pytest.raises(ValueError, match=r"model.codebook_size=16 \(now 32\)"):
        train_tokenizer.run(tiny(out, "train.steps=8", "model.codebook_size=32"), resume=True)


def test_resume_without_a_checkpoint_starts_fresh_and_clears_stale_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    stale = [out / "checkpoint" / ".state.pt.k1l2m3.tmp", out / ".metrics.jsonl.x9y8.tmp"]
    for path in stale:
        path.write_bytes(b"half-written")
    result = train_tokenizer.run(tiny(out, "train.steps=2"), resume=True)
    assert result.resumed_from is None and result.step == 2
    assert not any(p.exists() for p in stale)


def test_cli_resume_reads_the_saved_config(vqtok, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2", "model.codebook_size=12").code == 0
    )
    # No --config: the run's own config.yaml is the base, so the model override need not be repeated.
    res = vqtok("train-tokenizer", "--out", out, "--resume", "--steps", "4", "--json")
    assert res.code == 0, res.err
    summary = res.json()
    assert summary["resumed_from"] == 2 and summary["step"] == 4
    assert summary["figures"]["levels"][0]["codebook_size"] == 12


def test_batch_order_is_a_permutation_per_epoch_and_resumable() -> None:
    order = BatchOrder(n=10, batch_size=3, seed=5)
    epoch0 = torch.cat([order.next() for _ in range(3)])
    assert sorted(epoch0.tolist()) == sorted(set(epoch0.tolist())) and len(epoch0) == 9  # last partial dropped
    epoch1_first = order.next()
    assert order.position() == {"epoch": 1, "offset": 3}
    again = BatchOrder(n=10, batch_size=3, seed=5)
    assert torch.equal(torch.cat([again.next() for _ in range(3)]), epoch0)
    assert torch.equal(again.next(), epoch1_first)
    restored = BatchOrder(n=10, batch_size=3, seed=5, **order.position())
    assert torch.equal(restored.next(), order.next())
    with pytest.raises(ValueError, match=r"train\.batch_size=11 is larger than the 10"):
        BatchOrder(n=10, batch_size=11, seed=0)


def test_adam_beta2_reaches_the_optimizer_and_is_checked(tmp_path: Path) -> None:
    out = tmp_path / "beta2"
    train_tokenizer.run(tiny(out, "train.steps=2", "train.adam_beta2=0.95"))
    groups = load_checkpoint(out / "checkpoint" / "state.pt")["optimizer"]["param_groups"]
    assert [tuple(g["betas"]) for g in groups] == [(0.9, 0.95)]
    with pytest.raises(ValueError, match=r"train\.adam_beta2"):
        tiny(out, "train.adam_beta2=1.0")
