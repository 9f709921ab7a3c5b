"""Interruptions and second writers: a rejected run changes nothing, a folder has one writer at a time, a killed
writer's lock is taken over, a failed tokenize does not block the next one, and SIGINT exits 130 with a hint.

(Killing a training run or a tokenize run and resuming to identical weights or an identical corpus:
test_train_resume.py and test_tokenize_shards.py.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from recipes.engine.checkpoint import load_checkpoint
from recipes.engine.outputs import LOCK_NAME, FolderLock
from recipes.engine.shards import ChunkStore

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
# A process that holds a folder's lock until it is killed (another vqtok process, as far as the folder can tell).
HOLD = (
    "import sys, time; from pathlib import Path; from recipes.engine.outputs import FolderLock; "
    "FolderLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(600)"
)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def run(vqtok, tmp_path: Path) -> Path:
    """A finished 4-step tiny run."""
    out = tmp_path / "run"
    assert vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "4").code == 0
    return out


# A learning rate that blows the first step up fails there (exit 1 or 2, depending on where NaNs are caught first).
@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("train.batch_size=100000", "larger than the 256 training images"),
        ("model.in_channels=3", "model.in_channels=1"),
        ("data.name=imagenet", "unknown image data set"),
        ("train.lr=1e30", ""),
    ],
)
def test_overwrite_with_a_rejected_setting_removes_nothing(vqtok, run: Path, setting: str, words: str) -> None:
    """`train-tokenizer --overwrite SETTING` that is rejected (at once, or at the first step): a one-line error, and
    the old run's config.yaml, metrics.jsonl, tokenizer/ and checkpoint/ are byte for byte as they were."""
    before = snapshot(run)
    res = vqtok("train-tokenizer", "--config", "tiny", "--out", run, "--overwrite", setting)
    assert res.code in (1, 2) and words in one_line(res.err), res.err
    assert snapshot(run) == before
    assert not (run / LOCK_NAME).exists()


def test_resume_with_a_rejected_override_changes_nothing(vqtok, run: Path) -> None:
    """`--resume train.lr=1e30` fails at its first step and leaves config.yaml and the checkpoint as they
    were, so a plain `--resume` afterwards continues the run (exit 0)."""
    before = snapshot(run)
    bad = vqtok("train-tokenizer", "--out", run, "--resume", "--steps", "6", "train.lr=1e30")
    assert bad.code in (1, 2) and one_line(bad.err)
    refused = vqtok("train-tokenizer", "--out", run, "--resume", "--steps", "6", "model.codebook_size=32")
    assert refused.code == 2 and "model.codebook_size=16 (now 32)" in one_line(refused.err)
    assert snapshot(run) == before
    good = vqtok("train-tokenizer", "--out", run, "--resume", "--steps", "6", "--json")
    assert good.code == 0, good.err
    assert (good.json()["resumed_from"], good.json()["step"]) == (4, 6)


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(vqtok, tmp_path: Path) -> None:
    """While another process holds the folder: exit 2, "is being written by another vqtok process (pid N)", nothing
    written. Once that process is killed (SIGKILL leaves its lock file behind) the next run takes the lock over,
    succeeds, and leaves no lock file."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, env=ENV, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        for verb in (["train-tokenizer", "--config", "tiny"], ["train-tokenizer", "--config", "tiny", "--overwrite"]):
            res = vqtok(*verb, "--out", out, "--steps", "2")
            line = one_line(res.err)
            assert res.code == 2 and f"{out} is being written by another vqtok process (pid {holder.pid})" in line
            assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert (out / LOCK_NAME).read_text().strip() == str(holder.pid)  # left by the killed process
    res = vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2")
    assert res.code == 0, res.err
    assert not (out / LOCK_NAME).exists()


def test_a_folder_verb_is_refused_while_another_process_writes_the_folder(
    vqtok, tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "recon"
    out.mkdir()
    with_lock = FolderLock(out)
    with_lock.acquire()  # flock is per open file: this process counts as another writer
    try:
        res = vqtok("reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", out)
        assert res.code == 2 and "is being written by another vqtok process" in one_line(res.err)
    finally:
        with_lock.release()
    assert list(out.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locked_rank(rank: int, world: int, port: int, out: str, report: str) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    import torch

    from recipes.engine import parallel
    from recipes.engine.checkpoint import RunPaths

    try:  # what recipes.engine.trainer.fit does first
        with parallel.joined(torch.device("cpu")) as ranks:
            ranks.open_run(RunPaths(Path(out)), None, batch_size=2, resume=False, overwrite=False)
        outcome = "opened"
    except Exception as err:  # what each rank raised
        outcome = f"{type(err).__name__}: {err}"
    Path(report, f"rank{rank}.txt").write_text(outcome)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_under_torchrun_a_locked_run_folder_stops_every_rank(tmp_path: Path) -> None:
    """Rank 0 writes and locks; when it cannot, every rank raises (none waits forever at a barrier)."""
    out = tmp_path / "run"
    out.mkdir()
    lock = FolderLock(out)
    lock.acquire()
    try:
        ctx = mp.start_processes(_locked_rank, args=(2, _free_port(), str(out), str(tmp_path)), nprocs=2, join=False,
                                 start_method="spawn")  # fmt: skip
        deadline = time.monotonic() + 120
        while not ctx.join(timeout=1):
            assert time.monotonic() < deadline, "a rank is still waiting"
    finally:
        lock.release()
    outcomes = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert all(o.startswith("OutputRefused: ") for o in outcomes), outcomes
    assert "is being written by another vqtok process" in outcomes[0]


def test_sigint_exits_130_with_a_hint_and_resume_continues(tmp_path: Path) -> None:
    """Ctrl-C during training: exit 130, "interrupted (continue with --resume)", no temporary or lock file left;
    `--resume` continues from the last checkpoint."""
    out = tmp_path / "run"
    state = out / "checkpoint" / "state.pt"
    steps = ["train.steps=400", "train.checkpoint_every=5", "train.log_every=5", "train.eval_every=1000"]
    cmd = [sys.executable, "-m", "recipes.cli", "train-tokenizer", "--config", "tiny", "--out", str(out), *steps]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "vqtok train-tokenizer: interrupted (continue with --resume)"
    assert not [p for p in out.rglob(".*") if p.name != ".vqtok-output.json"], "a temporary or the lock was left"
    at = load_checkpoint(state)["step"]
    assert 0 < at < 400
    from recipes.cli import main

    assert main(["train-tokenizer", "--out", str(out), "--resume", "--steps", str(at + 5)]) == 0
    assert load_checkpoint(state)["step"] == at + 5


# ---- tokenize -----------------------------------------------------------------------------------------------

CHUNKS = ["tokenize.chunk_size=64", "tokenize.batch_size=24"]


def tokenize(vqtok, run: Path, out: Path, *extra: str):
    return vqtok("tokenize", "--config", "tiny", "--tokenizer", run / "tokenizer", "--split", "test", "--out", out,
                 *extra, "--json")  # fmt: skip


class SimulatedFailure(RuntimeError):
    pass


def test_a_failed_tokenize_does_not_block_a_run_with_other_settings(
    vqtok, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tokenize that failed after two chunks leaves OUT.parts; run again with another chunk size (unsharded), it
    says so in a note, starts the chunks again and writes the whole corpus (exit 0), and OUT.parts is gone."""
    out = tmp_path / "codes"
    original, calls = ChunkStore.write, {"n": 0}

    def failing(self, j, arrays) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise SimulatedFailure("the data went away")
        original(self, j, arrays)

    monkeypatch.setattr(ChunkStore, "write", failing)
    with pytest.raises(SimulatedFailure):
        tokenize(vqtok, tiny_run, out, *CHUNKS)
    monkeypatch.undo()
    parts = tmp_path / "codes.parts"
    assert len(list(parts.glob("chunk-*.npz"))) == 2 and not out.exists()
    res = tokenize(vqtok, tiny_run, out, "tokenize.chunk_size=100")
    assert res.code == 0, res.err
    assert f"note: {parts} held chunks of another tokenize run (chunk_size=64 (now 100)" in res.err
    assert res.json()["shards"] == {"shard": "0/1", "chunks": 3, "shard_chunks": 3, "written": 3, "reused": 0,
                                    "missing": 0, "merged": True}  # fmt: skip
    assert res.json()["num_images"] == 300 and not parts.exists()


def test_a_tokenize_that_fails_before_its_first_chunk_leaves_nothing(
    vqtok, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(self, j, arrays) -> None:  # type: ignore[no-untyped-def]
        raise SimulatedFailure("the disk is full")

    monkeypatch.setattr(ChunkStore, "write", failing)
    with pytest.raises(SimulatedFailure):
        tokenize(vqtok, tiny_run, tmp_path / "codes", *CHUNKS)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_verb_leaves_its_previous_output(
    vqtok, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconstruct that fails half way: the previous reconstructions are byte for byte there, nothing staged is
    left behind."""
    from modalities.image.task import ImageModality

    out = tmp_path / "recon"
    args = ["reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", out]
    assert vqtok(*args).code == 0
    before = snapshot(out)

    def half_way(self, model, cfg, directory):  # type: ignore[no-untyped-def]
        (directory / "reconstructions.png").write_bytes(b"half")
        raise SimulatedFailure("killed half way")

    monkeypatch.setattr(ImageModality, "reconstruct", half_way)
    with pytest.raises(SimulatedFailure):
        vqtok(*args)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".vqtok-output.json"]
