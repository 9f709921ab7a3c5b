"""Turn a split of an image data set into a code corpus on disk, for priors to train on.

Dimension legend: ``n`` images, ``h_l``/``w_l`` the code grid of level ``l`` (0 = top).

A corpus directory (``out``, default ``<tokenizer dir>/../codes_<data>_<split>``) holds::

    codes_level{l}.npy   (n, h_l, w_l) codes of level l, int16 when the codebook fits, else int32
    labels.npy           (n,) int64 class labels
    meta.json            format version, the tokenizer (path and SHA-256 of its weights), grid shapes,
                         codebook sizes, data set name/split, class names and the image count
    config.yaml          the resolved config that made it

Arrays are plain ``.npy`` files, so ``numpy.load(path, mmap_mode="r")`` maps them without reading
them. The images are encoded in chunks of ``tokenize.chunk_size`` that wait in ``<out>.parts/`` and
are merged in order when all are there: a killed run resumes, and ``tokenize.shard=i/n`` (or torchrun)
splits the work among jobs (:mod:`recipes.engine.shards`). The directory is built under a temporary name
and renamed into place when complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from recipes.engine import parallel
from recipes.engine.config import save_config
from recipes.engine.parallel import Ranks
from recipes.engine.results import format_figures
from recipes.engine.runtime import autocast
from recipes.engine.shards import ChunkStore, ShardProgress, tokenize_sharded
from recipes.image.common import check_fits, load_split, open_tokenizer, setup_runtime
from recipes.image.config import ImageRecipeConfig
from tokenizers_vq.io import atomic_write_json, sha256_file

FORMAT = "tokenizers-vq/code-corpus"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"


def code_dtype(codebook_size: int) -> np.dtype:
    """The smallest signed integer type that holds codes ``0 .. codebook_size - 1`` (int16 or int32)."""
    return np.dtype(np.int16) if codebook_size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


@dataclass
class TokenizeResult:
    """Where the corpus went and what it holds."""

    out_dir: str
    num_images: int
    dataset: str
    split: str
    level_shapes: list[list[int]]  # (h_l, w_l) per level, top first
    codebook_sizes: list[int]
    dtypes: list[str]
    shards: ShardProgress | None = None  # this invocation's chunks, and whether the corpus is merged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        levels = [
            {"level": i, "file": f"codes_level{i}.npy", "shape": s, "codebook_size": k, "dtype": d}
            for i, (s, k, d) in enumerate(zip(self.level_shapes, self.codebook_sizes, self.dtypes, strict=True))
        ]
        head = {"corpus": self.out_dir, "data": f"{self.dataset}/{self.split}", "images": self.num_images}
        shards = {"shards": self.shards.to_dict()} if self.shards else {}
        return format_figures({**head, "levels": levels, **shards}, title="tokenize")


def default_out(cfg: ImageRecipeConfig, tokenizer_dir: Path) -> Path:
    return tokenizer_dir.resolve().parent / f"codes_{cfg.data.name}_{cfg.tokenize.split}"


def read_meta(corpus_dir: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a corpus; ``FileNotFoundError`` when the directory is not a complete corpus."""
    path = Path(corpus_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{corpus_dir} is not a code corpus: meta.json is missing.")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION}."
        )
    return meta


def run(cfg: ImageRecipeConfig) -> TokenizeResult:
    """Encode every image of split ``cfg.tokenize.split`` with the tokenizer at ``cfg.tokenizer``.

    ``tokenize.shard`` (or torchrun's ranks) encodes a share of the chunks and ``tokenize.merge`` only
    merges; a killed run resumes from its written chunks (:mod:`recipes.engine.shards`).
    """
    device = setup_runtime(cfg)
    with parallel.joined(device) as ranks:
        return _tokenize(cfg, ranks)


def _tokenize(cfg: ImageRecipeConfig, ranks: Ranks) -> TokenizeResult:
    device, shard, merge_only = ranks.device, cfg.tokenize.shard, cfg.tokenize.merge
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "tokenize")
    # The saved config records the tokenizer's model, not the preset's, and the corpus, not one shard.
    cfg = replace(cfg, model=model.config, tokenize=replace(cfg.tokenize, shard=None, merge=False))
    data = load_split(cfg, cfg.tokenize.split)
    check_fits(cfg, data)
    out = Path(cfg.out).expanduser() if cfg.out else default_out(cfg, tokenizer_dir)

    n = len(data)
    _, h, w = data.image_shape
    shapes = model.level_shapes(h, w)
    sizes = model.codebook_sizes
    dtypes = [code_dtype(k) for k in sizes]
    tokenizer = {"path": str(tokenizer_dir.resolve()), "sha256": sha256_file(tokenizer_dir / WEIGHTS_NAME)}
    identity = {"tokenizer_sha256": tokenizer["sha256"], "dataset": data.name, "split": data.split}
    store = ChunkStore(out, identity, n, cfg.tokenize.chunk_size)

    def encode(start: int, stop: int) -> dict[str, np.ndarray]:
        levels: list[list[np.ndarray]] = [[] for _ in shapes]
        for first in range(start, stop, cfg.tokenize.batch_size):
            with torch.no_grad(), autocast(cfg.precision, device):
                codes = model.encode(data.images[first : min(first + cfg.tokenize.batch_size, stop)])
            for parts, grid, dtype in zip(levels, codes.numpy(), dtypes, strict=True):
                parts.append(grid.astype(dtype))  # (b, h_l, w_l)
        return {f"codes_level{i}": np.concatenate(parts) for i, parts in enumerate(levels)}

    def assemble(tmp: Path, chunks: Iterator[dict[str, np.ndarray]]) -> None:
        arrays = [
            open_memmap(tmp / f"codes_level{i}.npy", mode="w+", dtype=dt, shape=(n, *shape))
            for i, (dt, shape) in enumerate(zip(dtypes, shapes, strict=True))
        ]
        done = 0
        for chunk in chunks:
            m = len(chunk["codes_level0"])
            for i, array in enumerate(arrays):
                array[done : done + m] = chunk[f"codes_level{i}"]
            done += m
        assert done == n, f"the chunks hold {done} images, the split {n}"
        for array in arrays:
            array.flush()
        del arrays  # close the memory maps before the files are renamed
        with open(tmp / "labels.npy", "wb") as f:
            np.save(f, data.labels.numpy().astype(np.int64))
        save_config(cfg, tmp / "config.yaml")
        atomic_write_json(
            tmp / "meta.json",
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "modality": "image",
                "tokenizer": {**tokenizer, "config": model.config.to_dict()},
                "levels": [
                    {"file": f"codes_level{i}.npy", "shape": list(s), "codebook_size": k, "dtype": dt.name}
                    for i, (s, k, dt) in enumerate(zip(shapes, sizes, dtypes, strict=True))
                ],
                "labels": "labels.npy",
                "dataset": {"name": data.name, "split": data.split, "class_names": data.class_names},
                "count": n,
                "image_shape": list(data.image_shape),
            },
        )

    progress = tokenize_sharded(store, shard, merge_only, ranks, encode, assemble, f"tokenize {data.name}/{data.split}")
    return TokenizeResult(
        out_dir=str(out),
        num_images=n,
        dataset=data.name,
        split=data.split,
        level_shapes=[list(s) for s in shapes],
        codebook_sizes=list(sizes),
        dtypes=[dt.name for dt in dtypes],
        shards=progress,
    )
