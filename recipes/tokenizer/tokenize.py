"""``vqtok tokenize``: turn a split of a data set into a code corpus on disk, for priors to train on.

The corpus format is :mod:`tokenizers_vq.corpus`; the modality plug-in says how its items become
codes and which files go beside them (labels; speakers, offsets and frame-level phones for speech).
The output (``out``, default ``<tokenizer dir>/../codes_<data>_<split>``) records the tokenizer by
content identity and by a path relative to itself. Items are encoded in chunks of
``tokenize.chunk_size`` that wait in ``<out>.parts/`` and are merged in order when all are there: a
killed run resumes, and ``tokenize.shard=i/n`` (or torchrun) splits the work among jobs
(:mod:`recipes.engine.shards`). The output is a folder of :mod:`recipes.engine.outputs`: new, or one
that ``tokenize`` wrote (``overwrite``: or another verb), its corpus replaced whole and nothing else.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recipes.engine import parallel
from recipes.engine.artifacts import open_tokenizer
from recipes.engine.config import save_config
from recipes.engine.parallel import Ranks
from recipes.engine.ray_engine import EncoderSpec, encode_on_ray
from recipes.engine.results import format_figures
from recipes.engine.runtime import autocast, evaluation_mode, setup_runtime
from recipes.engine.shards import ChunkStore, ShardProgress, tokenize_sharded
from tokenizers_vq.corpus import FORMAT, FORMAT_VERSION, tokenizer_record, write_meta
from tokenizers_vq.corpus_hf import npy_to_hf


@dataclass
class TokenizeResult:
    """Where the corpus went and what it holds (the modality's figures), and this invocation's shards."""

    figures: dict[str, Any]
    shards: ShardProgress | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.figures, "shards": self.shards.to_dict() if self.shards else None}

    def format(self) -> str:
        figures = {k: (len(v) if k in ("speakers", "phones") else v) for k, v in self.figures.items()}
        if self.shards:
            figures["shards"] = self.shards.to_dict()
        return format_figures(figures, title="tokenize")


def run(cfg: Any, *, overwrite: bool = False) -> TokenizeResult:
    """Encode every item of split ``cfg.tokenize.split`` with the tokenizer at ``cfg.tokenizer``."""
    # On Ray this process only reads, writes and merges; the actors put the tokenizer on their devices.
    device = setup_runtime(cfg if cfg.tokenize.engine == "local" else replace(cfg, device="cpu", precision="fp32"))
    with parallel.joined(device) as ranks:
        return _tokenize(cfg, ranks, overwrite)


def _tokenize(cfg: Any, ranks: Ranks, overwrite: bool) -> TokenizeResult:
    modality, model, tokenizer_dir = open_tokenizer(cfg, ranks.device, "tokenize")
    asked = cfg.tokenize
    if asked.engine == "ray" and ranks.world > 1:
        raise ValueError("--engine ray starts its own workers; run it as one process, not under torchrun.")
    # The saved config records the tokenizer's model, not the preset's, and the corpus, not a shard or an engine.
    cfg = replace(cfg, model=model.config, tokenize=replace(asked, shard=None, merge=False, engine="local",
                                                             ray_address=None))  # fmt: skip
    source = modality.corpus_source(model, cfg, cfg.tokenize.split)
    out = (
        Path(cfg.out).expanduser()
        if cfg.out
        else tokenizer_dir.resolve().parent / f"codes_{source.name}_{source.split}"
    )
    tokenizer = tokenizer_record(tokenizer_dir, model.content_id(), out)
    store = ChunkStore(out, {"tokenizer_sha256": tokenizer["sha256"], **source.identity}, source.count,
                       cfg.tokenize.chunk_size, overwrite)  # fmt: skip

    def encode(start: int, stop: int) -> dict[str, np.ndarray]:
        with evaluation_mode(model), autocast(cfg.precision, ranks.device):
            return source.encode(start, stop)

    def assemble(tmp: Path, chunks: Iterator[dict[str, np.ndarray]]) -> None:
        meta = {"modality": modality.name, "tokenizer": {**tokenizer, "config": model.config.to_dict()},
                **source.write(tmp, chunks)}  # fmt: skip
        if cfg.tokenize.format == "hf":  # the same arrays as a datasets dataset (tokenizers_vq.corpus_hf)
            meta = npy_to_hf(tmp, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})
        save_config(cfg, tmp / "config.yaml")
        write_meta(tmp, meta)

    def encode_on_cluster(todo: list[int]) -> Generator[tuple[int, dict[str, np.ndarray]], None, None]:
        spec = EncoderSpec(modality.name, str(tokenizer_dir.resolve()), tokenizer["sha256"], cfg)
        return encode_on_ray(source, spec, [(j, *store.items(j)) for j in todo], asked.ray_address)

    label = f"tokenize {source.name}/{source.split}"
    progress = tokenize_sharded(store, asked.shard, asked.merge, ranks, encode, assemble, label,
                                encode_on_cluster if asked.engine == "ray" else None)  # fmt: skip
    return TokenizeResult(source.result(out, progress.merged), progress)
