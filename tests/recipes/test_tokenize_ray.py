"""``vqtok tokenize --engine ray`` on a local Ray of 2 CPUs: the corpus equals the one-process corpus byte for byte.

Every test that runs a job shares one local Ray started here (the verb keeps a connection it finds);
they are skipped, saying why, where Ray cannot start.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from recipes.engine.ray_engine import ActorPlan, plan_actors
from recipes.engine.shards import ChunkStore

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[data]')")

# The 300 test digits in chunks of 64: five chunks, the last one of 44 images.
IMAGE_CHUNKS = ["tokenize.chunk_size=64", "tokenize.batch_size=24"]


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    if not ray.is_initialized():
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        except Exception as err:  # no shared memory, no free ports, a sandbox without subprocesses, ...
            pytest.skip(f"a local Ray could not start here: {type(err).__name__}: {err}")
    yield ray
    ray.shutdown()


def tokenize_image(vqtok, run: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return vqtok("tokenize", "--config", "tiny", "--tokenizer", run / "tokenizer", "--split", "test", "--out", out,
                 *IMAGE_CHUNKS, *extra, "--json")  # fmt: skip


def assert_same_files(a: Path, b: Path) -> None:
    """Every file of corpus ``a`` equals ``b``'s byte for byte; config.yaml may differ only in ``out``."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name == "config.yaml":
            ca, cb = (yaml.safe_load((d / name).read_text()) for d in (a, b))
            assert (ca.pop("out"), cb.pop("out")) == (str(a), str(b)) and ca == cb
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_actor_plans() -> None:
    assert plan_actors({"CPU": 2.0}, "cpu", chunks=5) == ActorPlan(size=1, num_gpus=0, num_cpus=1)
    assert plan_actors({"CPU": 64.0}, "auto", chunks=100) == ActorPlan(size=4, num_gpus=0, num_cpus=8)
    assert plan_actors({"CPU": 64.0, "GPU": 8.0}, "auto", chunks=100) == ActorPlan(size=8, num_gpus=1, num_cpus=1)
    assert plan_actors({"CPU": 64.0, "GPU": 8.0}, "cuda", chunks=3).size == 3  # no idle actors
    assert plan_actors({"CPU": 64.0, "GPU": 8.0}, "cpu", chunks=100).num_gpus == 0  # device=cpu stays on CPUs
    with pytest.raises(ValueError, match="has no GPU"):
        plan_actors({"CPU": 8.0}, "cuda", chunks=3)


def test_image_corpus_equals_one_process(vqtok, tiny_run: Path, tmp_path: Path, local_ray) -> None:  # type: ignore[no-untyped-def]
    one = tokenize_image(vqtok, tiny_run, tmp_path / "one")
    assert one.code == 0, one.err
    on_ray = tokenize_image(vqtok, tiny_run, tmp_path / "ray", "--engine", "ray")
    assert on_ray.code == 0, on_ray.err
    assert on_ray.json()["shards"] == {"shard": "0/1", "chunks": 5, "shard_chunks": 5, "written": 5, "reused": 0,
                                       "missing": 0, "merged": True}  # fmt: skip
    assert_same_files(tmp_path / "one", tmp_path / "ray")
    assert not (tmp_path / "ray.parts").exists()


def test_speech_corpus_equals_one_process(vqtok, speech_corpora: dict[str, Path], tmp_path: Path, local_ray) -> None:  # type: ignore[no-untyped-def]
    def tokenize(out: Path, data: Path, *extra: str):  # type: ignore[no-untyped-def]
        return vqtok("tokenize", "--config", "speech_tiny", "--tokenizer", speech_corpora["tokenizer"], "--out", out,
                     "tokenize.split=train", f"data.root={data}", "tokenize.chunk_size=3", *extra, "--json")  # fmt: skip

    one = tokenize(tmp_path / "one", speech_corpora["data"])
    assert one.code == 0, one.err
    on_ray = tokenize(tmp_path / "ray", speech_corpora["data"], "--engine", "ray")
    assert on_ray.code == 0, on_ray.err
    shards = on_ray.json()["shards"]
    assert shards["chunks"] > 1 and shards["written"] == shards["chunks"]
    assert_same_files(tmp_path / "one", tmp_path / "ray")

    # A file that the read tasks refuse ends the job with the error of one process (after Ray's log of the task).
    data = shutil.copytree(speech_corpora["data"], tmp_path / "data")
    silent = sorted(data.glob("*/*.wav"))[0]  # in the train split
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    bad = tokenize(tmp_path / "bad", data, "--engine", "ray")
    last = bad.err.strip().splitlines()[-1]
    assert bad.code == 2 and last.startswith("vqtok tokenize: error: ") and f"{silent} is silent" in last, bad.err
    assert "Failed to apply" not in last


class SimulatedKill(RuntimeError):
    pass


def test_a_killed_ray_job_resumes(vqtok, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  local_ray) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    out = tmp_path / "killed"
    # A SLURM shard wrote the first two chunks ...
    assert tokenize_image(vqtok, tiny_run, out, "--shard", "0/2").json()["shards"]["written"] == 2
    # ... then a Ray job died after writing one more.
    original, writes = ChunkStore.write, []

    def dying_write(self, j, arrays) -> None:  # type: ignore[no-untyped-def]
        if writes:
            raise SimulatedKill("killed")
        writes.append(j)
        original(self, j, arrays)

    monkeypatch.setattr(ChunkStore, "write", dying_write)
    with pytest.raises(SimulatedKill):
        tokenize_image(vqtok, tiny_run, out, "--engine", "ray")
    monkeypatch.undo()
    assert len(list((tmp_path / "killed.parts").glob("chunk-*.npz"))) == 3
    resumed = tokenize_image(vqtok, tiny_run, out, "--engine", "ray")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["shards"] == {"shard": "0/1", "chunks": 5, "shard_chunks": 5, "written": 2, "reused": 3,
                                        "missing": 0, "merged": True}  # fmt: skip
    assert tokenize_image(vqtok, tiny_run, tmp_path / "one").code == 0
    assert_same_files(tmp_path / "one", out)


def test_an_unreachable_cluster_is_a_one_line_error(vqtok, tiny_run: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = tokenize_image(vqtok, tiny_run, tmp_path / "codes", "--engine", "ray", "--ray-address", "127.0.0.1:1")
    assert result.code == 2
    assert result.err.strip().count("\n") == 0, result.err
    assert "no Ray cluster answers at --ray-address 127.0.0.1:1" in result.err and "ray start --head" in result.err
    assert not (tmp_path / "codes").exists() and not (tmp_path / "codes.parts").exists()


def test_ray_address_needs_the_ray_engine(vqtok, tiny_run: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = tokenize_image(vqtok, tiny_run, tmp_path / "codes", "--ray-address", "auto")
    assert result.code == 2 and "add --engine ray" in result.err
