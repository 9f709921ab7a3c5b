"""Turn a split of a speech data set into a code corpus on disk, with speakers and phone alignments carried along.

Dimension legend: ``N`` code frames of all utterances end to end, ``U`` utterances.

A corpus directory (``out``, default ``<tokenizer dir>/../codes_<data>_<split>``) holds::

    codes_level{l}.npy   (N,) codes of level l, utterance after utterance (int16 when the codebook fits)
    offsets.npy          (U + 1,) int64: utterance u's frames are [offsets[u], offsets[u + 1])
    speakers.npy         (U,) int64 index into meta.json's "speakers"
    labels.npy           (U,) int64 whole-utterance label (FSDD's digit) or -1 when there is none
    phones.npy           (N,) int16 phone under each code frame's centre (index into meta "phones"), -1 for none;
                         only when the utterances have phone labels
    utterances.jsonl     one row per utterance: id, speaker, path, frames
    meta.json            format (the image corpus's, modality "speech"), the tokenizer (path, SHA-256),
                         frame rate, centre of frame 0, codebook size, levels, speakers, phones
    config.yaml          the resolved config that made it

Plain ``.npy`` files, so ``numpy.load(path, mmap_mode="r")`` maps them. Utterances are encoded in
chunks of ``tokenize.chunk_size`` that wait in ``<out>.parts/`` and are merged in order when all are
there: a killed run resumes, and ``tokenize.shard=i/n`` (or torchrun) splits the work among jobs
(:mod:`recipes.engine.shards`). The directory is built under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from modalities.speech import SpeechTokenizer, Utterance, frame_labels, load_audio, speakers_of
from recipes.engine import parallel
from recipes.engine.config import save_config
from recipes.engine.parallel import Ranks
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode, setup_runtime
from recipes.engine.shards import ChunkStore, ShardProgress, tokenize_sharded
from recipes.image.tokenize_corpus import FORMAT, FORMAT_VERSION, WEIGHTS_NAME, code_dtype
from recipes.speech.common import find_utterances, open_tokenizer, phone_inventory, phone_segments, selection_of
from recipes.speech.config import SpeechRecipeConfig
from tokenizers_vq.io import atomic_write_json, sha256_file, write_jsonl


@dataclass
class SpeechTokenizeResult:
    """Where the corpus went and what it holds."""

    out_dir: str
    num_utterances: int
    num_frames: int | None  # None until every shard's chunks are merged
    frame_rate: float
    num_levels: int
    codebook_size: int
    speakers: list[str]
    phones: list[str]
    shards: ShardProgress | None = None  # this invocation's chunks, and whether the corpus is merged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        figures = {k: v for k, v in self.to_dict().items() if k not in ("speakers", "phones")}
        figures.update(speakers=len(self.speakers), phones=len(self.phones))
        if self.shards:
            figures["shards"] = self.shards.to_dict()
        return format_figures(figures, title="tokenize")


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _write_corpus(
    tmp: Path,
    cfg: SpeechRecipeConfig,
    model: SpeechTokenizer,
    utterances: list[Utterance],
    segments: list[Any],
    phones: list[str],
    speakers: list[str],
    tokenizer: dict[str, str],
    name: str,
    stacked: np.ndarray,
    offsets: np.ndarray,
) -> None:
    """The corpus files (module docstring) into ``tmp``: codes ``(N, levels)`` of all utterances, ``offsets`` ``(U + 1,)``."""
    lengths = np.diff(offsets)
    for level in range(stacked.shape[1]):
        _save(tmp / f"codes_level{level}.npy", stacked[:, level])
    _save(tmp / "offsets.npy", offsets)
    _save(tmp / "speakers.npy", np.array([speakers.index(u.speaker) for u in utterances], dtype=np.int64))
    _save(tmp / "labels.npy", np.array([int(u.label) if u.label is not None else -1 for u in utterances]))
    if segments:
        index = {p: i for i, p in enumerate(phones)}
        frames = [
            [
                index.get(p, -1) if p is not None else -1
                for p in frame_labels(s, n, model.frame_rate, model.config.first_code_time)
            ]
            for s, n in zip(segments, lengths, strict=True)
        ]
        _save(tmp / "phones.npy", np.array([p for f in frames for p in f], dtype=np.int16))
    write_jsonl(
        tmp / "utterances.jsonl",
        [
            {"id": u.id, "speaker": u.speaker, "path": str(u.path), "frames": int(n)}
            for u, n in zip(utterances, lengths, strict=True)
        ],
    )
    save_config(cfg, tmp / "config.yaml")
    k = model.config.codebook_size
    atomic_write_json(
        tmp / "meta.json",
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "modality": "speech",
            "tokenizer": {**tokenizer, "config": model.config.to_dict()},
            "levels": [
                {
                    "file": f"codes_level{i}.npy",
                    "shape": [int(offsets[-1])],
                    "codebook_size": k,
                    "dtype": stacked.dtype.name,
                }
                for i in range(stacked.shape[1])
            ],
            "frame_rate": model.frame_rate,
            "first_frame_time": model.config.first_code_time,
            "offsets": "offsets.npy",
            "speakers": speakers,
            "phones": phones,
            "dataset": {"name": name, "split": cfg.tokenize.split},
            "count": len(utterances),
        },
    )


def run(cfg: SpeechRecipeConfig) -> SpeechTokenizeResult:
    """Encode every utterance of ``cfg.tokenize.split`` with the tokenizer at ``cfg.tokenizer``.

    ``tokenize.shard`` (or torchrun's ranks) encodes a share of the chunks and ``tokenize.merge`` only
    merges; a killed run resumes from its written chunks (:mod:`recipes.engine.shards`).
    """
    device = setup_runtime(cfg)
    with parallel.joined(device) as ranks:
        return _tokenize(cfg, ranks)


def _tokenize(cfg: SpeechRecipeConfig, ranks: Ranks) -> SpeechTokenizeResult:
    shard, merge_only = cfg.tokenize.shard, cfg.tokenize.merge
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, ranks.device, "tokenize", cfg.duration_penalty)
    # The saved config records the tokenizer's model, not the preset's, and the corpus, not one shard.
    cfg = replace(cfg, model=model.config, tokenize=replace(cfg.tokenize, shard=None, merge=False))
    utterances = find_utterances(cfg, selection_of(cfg, cfg.tokenize.split))
    name = Path(cfg.data.root).name if cfg.data.root else cfg.data.name
    out = (
        Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.resolve().parent / f"codes_{name}_{cfg.tokenize.split}"
    )
    labelled = all(u.phones_path is not None for u in utterances)
    segments = phone_segments(cfg, utterances) if labelled else []
    phones = phone_inventory(segments) if labelled else []
    speakers = speakers_of(utterances)
    k, levels = model.config.codebook_size, model.config.num_quantizers
    dtype = code_dtype(k)
    tokenizer = {"path": str(tokenizer_dir.resolve()), "sha256": sha256_file(tokenizer_dir / WEIGHTS_NAME)}
    listing = hashlib.sha256("\n".join(f"{u.id}\t{u.path}" for u in utterances).encode()).hexdigest()
    identity = {"tokenizer_sha256": tokenizer["sha256"], "dataset": name, "split": cfg.tokenize.split,
                "utterances_sha256": listing, "duration_penalty": model.config.duration_penalty}  # fmt: skip
    store = ChunkStore(out, identity, len(utterances), cfg.tokenize.chunk_size)

    def encode(start: int, stop: int) -> dict[str, np.ndarray]:
        per_utt = []
        with evaluation_mode(model):
            for utt in utterances[start:stop]:
                wave, rate = load_audio(utt.path)
                codes = model.encode(wave, rate).codes[0].cpu().numpy()  # (n,) or (n, l)
                per_utt.append(codes.reshape(codes.shape[0], -1).astype(dtype))
        return {"codes": np.concatenate(per_utt), "lengths": np.array([len(c) for c in per_utt], dtype=np.int64)}

    def assemble(tmp: Path, chunks: Iterator[dict[str, np.ndarray]]) -> None:
        parts = list(chunks)
        lengths = np.concatenate([p["lengths"] for p in parts]) if parts else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        stacked = np.concatenate([p["codes"] for p in parts]) if parts else np.zeros((0, levels), dtype)
        _write_corpus(tmp, cfg, model, utterances, segments, phones, speakers, tokenizer, name, stacked, offsets)

    progress = tokenize_sharded(
        store, shard, merge_only, ranks, encode, assemble, f"tokenize {name}/{cfg.tokenize.split}"
    )
    return SpeechTokenizeResult(
        out_dir=str(out),
        num_utterances=len(utterances),
        num_frames=int(np.load(out / "offsets.npy")[-1]) if progress.merged else None,
        frame_rate=model.frame_rate,
        num_levels=levels,
        codebook_size=k,
        speakers=speakers,
        phones=phones,
        shards=progress,
    )
