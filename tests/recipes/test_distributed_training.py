"""Every training recipe under torchrun-style launching: two CPU processes (gloo) train the same model as one."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recipes.cli import main
from recipes.engine.checkpoint import load_checkpoint
from recipes.engine.config import load_config
from recipes.engine.parallel import CodebookMismatchError, Ranks, codebook_check, raise_if_disagree
from recipes.mixed import train as train_mixed
from recipes.mixed.config import MixedRecipeConfig
from recipes.priors import train_prior
from recipes.priors.config import PriorRecipeConfig
from recipes.tokenizer import tokenize as tokenize_corpus
from recipes.tokenizer import train as train_speech
from recipes.tokenizer import train as train_tokenizer
from recipes.tokenizer.config import ImageRecipeConfig, SpeechRecipeConfig
from tokenizers_vq import VectorQuantizer, VQConfig
from tokenizers_vq.io import read_jsonl

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")

# recipe: (run, config schema, preset, overrides); every run checkpoints at steps 3 and 6.
SCHEDULE = ["train.steps=6", "train.eval_every=1000", "train.checkpoint_every=3", "train.log_every=3"]
RECIPES: dict[str, tuple[Callable[..., Any], type, str, list[str]]] = {
    "image": (train_tokenizer.run, ImageRecipeConfig, "tiny", SCHEDULE),
    "speech": (train_speech.run, SpeechRecipeConfig, "speech_tiny", SCHEDULE),
    "prior": (train_prior.run, PriorRecipeConfig, "prior_tiny", SCHEDULE),
    "mixed": (train_mixed.run, MixedRecipeConfig, "mixed_tiny", SCHEDULE),
}


# The 1,497 training digits in six chunks: three for each of two ranks.
TOKENIZE = ["tokenize.chunk_size=256"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_env(rank: int, world: int, port: int) -> None:
    # What torchrun sets; the recipes join the group themselves.
    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)


def _train_worker(rank: int, world: int, port: int, runs: dict[str, list[str]], root: str, tokenizer: str) -> None:
    _torchrun_env(rank, world, port)
    _drift(rank, world, root)
    # vqtok tokenize under torchrun: each rank encodes its shard of the chunks, then one merges.
    result = tokenize_corpus.run(load_config(ImageRecipeConfig, "tiny", [*TOKENIZE, f"tokenizer={tokenizer}",
                                                                         f"out={Path(root, 'codes_ddp')}"]))  # fmt: skip
    if (result.shards.shard, result.shards.shard_chunks, result.shards.merged) != (f"{rank}/2", 3, True):
        raise AssertionError(f"rank {rank} tokenized {result.shards}")
    for name, overrides in runs.items():
        run, schema, preset, schedule = RECIPES[name.split(":")[0]]
        result = run(load_config(schema, preset, [*schedule, *overrides]))
        if result.step != 6:
            raise AssertionError(f"{name}: rank {rank} stopped at step {result.step}")
        if result.world_size != world:
            raise AssertionError(f"{name}: rank {rank} reports {result.world_size} processes")
        if dist.is_initialized():
            raise AssertionError(f"{name}: the recipe must leave no process group behind that it created")


@pytest.fixture(scope="module")
def trained(
    tiny_run: Path, labelled_speech: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Path]]:
    """Each recipe trained by two processes and by one: ``{name: (two-process run, one-process run)}``.

    One spawn trains them all, so the two workers pay their start-up once.
    """
    from modalities.speech import write_synthetic_corpus

    root = tmp_path_factory.mktemp("ddp")
    audio = write_synthetic_corpus(root / "audio", utterances_per_speaker=5)
    codes = root / "codes"
    assert main(["tokenize", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--out", str(codes),
                 *TOKENIZE]) == 0  # fmt: skip
    data = {
        "image": [],
        "speech": [f"data.root={audio}", "train.batch_size=4"],
        # Without attention: its key bias gets a gradient that is zero but for rounding (softmax ignores a
        # shift shared by all keys), and Adam turns rounding noise of either sign into steps of size lr.
        "prior:pixelcnn": [f"corpus={codes}", "model.kind=pixelcnn", "model.pixelcnn.attention_every=0"],
        "prior:transformer": [f"corpus={codes}", "model.kind=transformer"],
        # Image and audio streams of different lengths: the two shares of a batch predict unequal token counts.
        "mixed": [
            f"data.image_corpus={codes}",
            f"data.audio_corpus={labelled_speech['train']}",
            "data.image_items=200",
        ],
    }
    runs = {name: (root / name.replace(":", "_") / "ddp", root / name.replace(":", "_") / "one") for name in data}
    two = {name: [f"out={runs[name][0]}", *overrides] for name, overrides in data.items()}
    mp.spawn(_train_worker, args=(2, _free_port(), two, str(root), str(tiny_run / "tokenizer")), nprocs=2, join=True)
    for name, overrides in data.items():
        run, schema, preset, schedule = RECIPES[name.split(":")[0]]
        run(load_config(schema, preset, [*schedule, f"out={runs[name][1]}", *overrides]))
    runs["drift"] = (root, root)
    return runs


def assert_same_checkpoint(ddp: Path, one: Path) -> None:
    a, b = load_checkpoint(ddp / "checkpoint" / "state.pt"), load_checkpoint(one / "checkpoint" / "state.pt")
    assert a["step"] == b["step"] == 6 and a["data_position"] == b["data_position"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-5,
                                   msg=f"{key} differs from one process")  # fmt: skip
    # Rank 0 alone wrote the log: one row per logged step, not one per rank, and one TensorBoard event file.
    assert [r["step"] for r in read_jsonl(ddp / "metrics.jsonl") if r["kind"] == "train"] == [3, 6]
    assert len(list((ddp / "tensorboard").glob("events.out.tfevents.*"))) == 1


def codebook_rows(run: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "checkpoint"]


@pytest.mark.parametrize("name", ["image", "speech"])
def test_tokenizer_two_processes_equal_one(trained: dict[str, tuple[Path, Path]], name: str) -> None:
    ddp, one = trained[name]
    assert_same_checkpoint(ddp, one)
    for run, world in ((ddp, 2), (one, 1)):
        rows = codebook_rows(run)
        assert [r["step"] for r in rows] == [3, 6]
        assert all(r["ranks_agree"] and r["world_size"] == world and len(r["codebook_checksum"]) == 16 for r in rows)


@pytest.mark.parametrize("name", ["prior:pixelcnn", "prior:transformer", "mixed"])
def test_prior_two_processes_equal_one(trained: dict[str, tuple[Path, Path]], name: str) -> None:
    ddp, one = trained[name]
    assert_same_checkpoint(ddp, one)
    assert not codebook_rows(ddp)  # a prior has no codebook to check


def test_mixed_prior_logs_the_global_batch_loss(trained: dict[str, tuple[Path, Path]]) -> None:
    # Each rank weighs its share by the whole batch's token count, so rank 0 logs the loss one process does.
    ddp, one = trained["mixed"]
    bits = [
        [r["bits_per_token"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"] for run in (ddp, one)
    ]
    assert bits[0] == pytest.approx(bits[1], rel=1e-5)


def _drift(rank: int, world: int, out: str) -> None:
    """Codebook checks of a quantizer before and after rank 1's copy drifts; each rank writes what it saw."""
    dist.init_process_group("gloo")
    try:
        q = VectorQuantizer(VQConfig(dim=4, codebook_size=8, seed=3))
        agreeing = codebook_check(q, Ranks(torch.device("cpu"), rank, world), step=1)
        if rank == 1:
            q.embedding.data[0, 0] += 1e-6  # the smallest drift must be caught
        drifted = codebook_check(q, Ranks(torch.device("cpu"), rank, world), step=2)
        Path(out, f"drift_rank{rank}.json").write_text(json.dumps([agreeing, drifted]))
    finally:
        dist.destroy_process_group()


def test_codebook_checksums_catch_a_drifting_rank(trained: dict[str, tuple[Path, Path]]) -> None:
    root = trained["drift"][0]
    rows = [json.loads((root / f"drift_rank{r}.json").read_text()) for r in range(2)]
    assert rows[0] == rows[1], "every rank sees the same gathered checksums"
    agreeing, drifted = rows[0]
    assert agreeing["ranks_agree"] and "rank_checksums" not in agreeing
    raise_if_disagree(agreeing)
    assert not drifted["ranks_agree"] and drifted["rank_checksums"][0] != drifted["rank_checksums"][1]
    assert drifted["codebook_checksum"] == agreeing["codebook_checksum"] == drifted["rank_checksums"][0]
    with pytest.raises(CodebookMismatchError, match="at step 2 the 2 ranks hold different codebooks"):
        raise_if_disagree(drifted)


def test_tokenize_by_rank_equals_one_process(trained: dict[str, tuple[Path, Path]]) -> None:
    root = trained["drift"][0]
    for name in ("codes_level0.npy", "labels.npy"):
        assert np.array_equal(np.load(root / "codes_ddp" / name), np.load(root / "codes" / name)), name
    meta = json.loads((root / "codes_ddp" / "meta.json").read_text())
    assert meta == json.loads((root / "codes" / "meta.json").read_text()) and meta["count"] == 1497
    assert not (root / "codes_ddp.parts").exists()
