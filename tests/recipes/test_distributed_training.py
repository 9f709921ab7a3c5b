"""train-tokenizer under torchrun-style launching: two CPU processes (gloo) train the same model as one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from recipes.config import load_config
from recipes.image import train_tokenizer
from recipes.image.config import ImageRecipeConfig
from recipes.storage import read_jsonl

OVERRIDES = ["train.steps=6", "train.eval_every=1000", "train.checkpoint_every=3", "train.log_every=3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    # What torchrun sets; the recipe joins the group itself.
    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    result = train_tokenizer.run(load_config(ImageRecipeConfig, "tiny", [f"out={out}", *OVERRIDES]))
    if result.step != 6:
        raise AssertionError(f"rank {rank} stopped at step {result.step}")
    if dist.is_initialized():
        raise AssertionError("the recipe must leave no process group behind that it created")


def test_two_processes_train_the_same_model_as_one(tmp_path: Path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    ddp = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), str(ddp)), nprocs=2, join=True)

    one = tmp_path / "one"
    train_tokenizer.run(load_config(ImageRecipeConfig, "tiny", [f"out={one}", *OVERRIDES]))
    a, b = load_file(ddp / "tokenizer" / "model.safetensors"), load_file(one / "tokenizer" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=f"{key} differs from one process")
    # Rank 0 alone wrote the log: one row per logged step, not one per rank.
    assert [r["step"] for r in read_jsonl(ddp / "metrics.jsonl") if r["kind"] == "train"] == [3, 6]
