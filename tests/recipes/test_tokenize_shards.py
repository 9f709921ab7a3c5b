"""Sharded, resumable ``vqtok tokenize``: shards merged (by the last shard or by --merge) equal one unsharded run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modalities.image import ImageTokenizer, load_image_dataset
from recipes.engine import shards
from recipes.engine.parallel import Ranks
from recipes.engine.shards import ChunkStore, Shard, choose_shard, parse_shard

# The 300 test digits in chunks of 64: five chunks, the last one of 44 images.
CHUNKS = ["tokenize.chunk_size=64", "tokenize.batch_size=24"]


def tokenize(vqtok, run: Path, out: Path, *extra: str):
    return vqtok("tokenize", "--config", "tiny", "--tokenizer", run / "tokenizer", "--split", "test", "--out", out,
                 *CHUNKS, *extra, "--json")  # fmt: skip


def corpus_files(out: Path) -> dict[str, object]:
    """Everything a corpus holds but its config.yaml (which records its own --out)."""
    files: dict[str, object] = {p.name: np.load(p) for p in sorted(out.glob("*.npy"))}
    files["meta.json"] = json.loads((out / "meta.json").read_text())
    return files


def assert_same_corpus(a: Path, b: Path) -> None:
    fa, fb = corpus_files(a), corpus_files(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        if isinstance(fa[name], np.ndarray):
            assert fa[name].dtype == fb[name].dtype and np.array_equal(fa[name], fb[name]), name
        else:
            assert fa[name] == fb[name], name


@pytest.fixture(scope="module")
def unsharded(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recipes.cli import main

    out = tmp_path_factory.mktemp("tokenize") / "whole"
    assert main(["tokenize", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--split", "test",
                 "--out", str(out), *CHUNKS]) == 0  # fmt: skip
    return out


def test_shard_specs_and_their_chunks() -> None:
    assert parse_shard("1/4") == Shard(1, 4) and parse_shard(None) is None
    for bad in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(ValueError, match="I/N with 0 <= I < N"):
            parse_shard(bad)
    # Every chunk in exactly one shard, for any shard count.
    for n in (1, 2, 3, 7, 9):
        owned = [j for i in range(n) for j in Shard(i, n).chunks(7)]
        assert owned == list(range(7)), n
    # torchrun ranks subdivide a --shard: shard 1/2 on rank 1 of 3 is shard 4/6.
    assert choose_shard("1/2", Ranks(torch.device("cpu"), rank=1, world=3)) == Shard(4, 6)


def test_unsharded_corpus_holds_the_tokenizer_codes(tiny_run: Path, unsharded: Path) -> None:
    model = ImageTokenizer.from_pretrained(tiny_run / "tokenizer").eval()
    with torch.no_grad():
        codes = model.encode(load_image_dataset("digits", "test").images).levels[0].numpy()
    assert np.array_equal(np.load(unsharded / "codes_level0.npy"), codes)
    assert not unsharded.with_name("whole.parts").exists(), "the chunks are removed once merged"


def test_shards_merge_into_the_unsharded_corpus(vqtok, tiny_run: Path, unsharded: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    first = tokenize(vqtok, tiny_run, out, "--shard", "0/3")
    assert first.code == 0, first.err
    progress = first.json()["shards"]
    assert progress == {"shard": "0/3", "chunks": 5, "shard_chunks": 1, "written": 1, "reused": 0, "missing": 4,
                        "merged": False}  # fmt: skip
    assert not out.exists() and (tmp_path / "sharded.parts" / "chunk-000000.npz").is_file()
    early = tokenize(vqtok, tiny_run, out, "--merge")
    assert early.code == 2 and "4 of the 5 chunks" in early.err and "--shard" in early.err
    assert tokenize(vqtok, tiny_run, out, "--shard", "2/3").json()["shards"]["merged"] is False
    last = tokenize(vqtok, tiny_run, out, "--shard", "1/3")  # the last shard to finish merges
    assert last.code == 0, last.err
    assert last.json()["shards"]["merged"] is True and last.json()["num_images"] == 300
    assert_same_corpus(out, unsharded)
    assert not (tmp_path / "sharded.parts").exists()
    assert "shard: 0/3" not in (out / "config.yaml").read_text()  # the corpus's config, not one shard's


def test_merge_verb_joins_complete_chunks(vqtok, tiny_run: Path, unsharded: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "corpus"
    # Every chunk written, but the merge step never ran (as if killed between the two).
    monkeypatch.setattr(shards, "merge", lambda store, assemble, required: False)
    assert tokenize(vqtok, tiny_run, out).code == 0
    monkeypatch.undo()
    assert not out.exists()
    merged = tokenize(vqtok, tiny_run, out, "--merge")
    assert merged.code == 0, merged.err
    assert merged.json()["shards"]["written"] == 0 and merged.json()["shards"]["merged"] is True
    assert_same_corpus(out, unsharded)


class SimulatedKill(RuntimeError):
    pass


def test_a_killed_run_resumes_without_duplicates_or_gaps(
    vqtok, tiny_run: Path, unsharded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "killed"
    original, calls = ChunkStore.write, {"n": 0}

    def dying_write(self, j, arrays) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # killed while encoding the third chunk
            raise SimulatedKill("killed")
        original(self, j, arrays)

    monkeypatch.setattr(ChunkStore, "write", dying_write)
    with pytest.raises(SimulatedKill):
        tokenize(vqtok, tiny_run, out)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "killed.parts").glob("chunk-*")) == ["chunk-000000.npz",
                                                                                   "chunk-000001.npz"]  # fmt: skip
    resumed = tokenize(vqtok, tiny_run, out)
    assert resumed.code == 0, resumed.err
    assert resumed.json()["shards"] == {"shard": "0/1", "chunks": 5, "shard_chunks": 5, "written": 3,
                                             "reused": 2, "missing": 0, "merged": True}  # fmt: skip
    assert_same_corpus(out, unsharded)


def test_chunks_of_another_plan_are_refused(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    assert tokenize(vqtok, tiny_run, out, "--shard", "0/2").code == 0
    other = tokenize(vqtok, tiny_run, out, "--shard", "1/2", "tokenize.chunk_size=32")
    assert other.code == 2 and "chunk_size=64 (now 32)" in other.err
    assert tokenize(vqtok, tiny_run, out, "--shard", "2/2").code == 2
    assert tokenize(vqtok, tiny_run, tmp_path / "none", "--merge").code == 2
