"""Sharded, resumable tokenizing: a code corpus built from fixed-size chunks that any number of jobs fill.

The items of a split (images, utterances) are cut into chunks of ``chunk_size`` items: chunk ``j``
holds items ``[j * chunk_size, (j + 1) * chunk_size)``. Shard ``i/n`` (``--shard i/n``, or rank
``i`` of ``n`` under torchrun; both together make ``n × world`` shards) encodes the ``i``-th of ``n``
equal runs of chunks. Beside the corpus directory ``OUT`` the chunks wait in ``OUT.parts/``::

    plan.json             what the chunks are codes of: tokenizer weights hash, data set, split, items, chunk size
    chunk-000012.npz      chunk 12's arrays, written atomically once complete

A killed job run again with the same arguments skips the chunks already written and encodes only
the rest, so no item is encoded into the corpus twice or left out; chunks do not depend on the
shard count, so the rest may even be run with another ``--shard`` split. When every chunk is there,
the job that finds it so (or ``--merge``) joins them in order into ``OUT`` (an output folder of
:mod:`recipes.engine.outputs`, published whole, under a lock so two finishing shards merge once) and
deletes ``OUT.parts``.

Chunks of another plan (a failed run with another tokenizer, data set or chunk size) do not block an
unsharded run: it starts the chunks again, unless another process is still using them (every process
holds a shared lock on ``OUT.parts`` while it works). Shard jobs and ``--merge`` refuse them instead,
since the other shards may belong to that plan. A run that fails before its first chunk leaves no
``OUT.parts``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recipes.engine.outputs import OutputFolder, check_folder
from recipes.engine.parallel import Ranks
from tokenizers_vq.io import atomic_path, atomic_write_json, is_temporary
from tokenizers_vq.progress import progress

PLAN_FORMAT = "tokenizers-vq/code-chunks"
PLAN_NAME = "plan.json"
MERGE_LOCK_NAME = "merge.lock"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_CHUNK = re.compile(r"^chunk-\d{6}\.npz$")


VERB = "tokenize"  # the verb that writes the corpus folder


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the ``index``-th of ``count`` equal runs of chunks."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def chunks(self, total: int) -> range:
        """This shard's chunk numbers out of ``total`` (contiguous; sizes differ by one at most)."""
        return range(self.index * total // self.count, (self.index + 1) * total // self.count)


def parse_shard(spec: str | None, key: str = "tokenize.shard") -> Shard | None:
    """``"i/n"`` → :class:`Shard` (None for None); ``ValueError`` saying the form otherwise."""
    if spec is None:
        return None
    match = _SHARD.match(str(spec))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"{key} must be I/N with 0 <= I < N, e.g. 0/4 for the first of four shards; got {spec!r}.")
    return Shard(int(match[1]), int(match[2]))


def choose_shard(spec: str | None, ranks: Ranks) -> Shard:
    """The shard of this process: ``spec`` (all when None) subdivided among the ranks of a process group."""
    base = parse_shard(spec) or Shard()
    return Shard(base.index * ranks.world + ranks.rank, base.count * ranks.world)


class ChunkStore:
    """The chunks of one corpus in ``OUT.parts/`` (see the module docstring).

    Args:
        out: the corpus directory the chunks are merged into.
        identity: what the chunks are codes of (JSON values); a store made for another identity is refused.
        num_items: items in the split.
        chunk_size: items per chunk.
        overwrite: the corpus may replace the output of another verb in ``out`` (``--overwrite``).
    """

    def __init__(self, out: Path, identity: dict[str, Any], num_items: int, chunk_size: int,
                 overwrite: bool = False) -> None:  # fmt: skip
        self.out = out
        self.overwrite = overwrite
        self.directory = out.with_name(out.name + ".parts")
        self.chunk_size = chunk_size
        self.num_items = num_items
        self.plan = {"format": PLAN_FORMAT, **identity, "num_items": num_items, "chunk_size": chunk_size}
        self._fd: int | None = None  # the store folder, share-locked while this process works in it

    @property
    def num_chunks(self) -> int:
        return -(-self.num_items // self.chunk_size)

    def items(self, j: int) -> tuple[int, int]:
        """Items ``[start, stop)`` of chunk ``j``."""
        return j * self.chunk_size, min((j + 1) * self.chunk_size, self.num_items)

    def path(self, j: int) -> Path:
        return self.directory / f"chunk-{j:06d}.npz"

    def _saved_plan(self) -> dict[str, Any] | None:
        """The plan in the store (None without one; a damaged one as a plan that matches nothing)."""
        plan_file = self.directory / PLAN_NAME
        if not plan_file.is_file():
            return None
        try:
            saved = json.loads(plan_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            saved = None
        return saved if isinstance(saved, dict) else {"format": "(damaged plan.json)"}

    def _differences(self, saved: dict[str, Any]) -> str:
        return ", ".join(
            f"{k}={saved.get(k)!r} (now {self.plan.get(k)!r})"
            for k in sorted(set(saved) | set(self.plan))
            if saved.get(k) != self.plan.get(k)
        )

    def open(self, restart: bool = False) -> None:
        """Create the store, or check that the one there holds chunks of the same plan; held until :meth:`close`.

        ``restart``: chunks of another plan are deleted and the store made again (an unsharded run, which
        encodes every chunk itself), unless another process is using them. Without it they are refused.
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"{self.directory} is a file; tokenize keeps its chunks in a folder of that name.")
        ours = (PLAN_NAME, MERGE_LOCK_NAME)
        if self.directory.is_dir() and self._saved_plan() is None:
            foreign = [p.name for p in self.directory.iterdir() if p.name not in ours and not is_temporary(p.name)]
            if foreign and not all(_CHUNK.match(name) for name in foreign):
                raise ValueError(
                    f"{self.directory} exists and was not made by vqtok tokenize (it has no {PLAN_NAME}); nothing "
                    "was changed. Move it away, or pass --out another folder."
                )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.directory, os.O_RDONLY)
        plan = json.loads(json.dumps(self.plan))
        # One process at a time looks at the plan and sets the store up (ranks of one torchrun job arrive
        # together): a lock on the parent folder, held only for this, so no lock file is left anywhere.
        parent = os.open(self.directory.parent, os.O_RDONLY)
        try:
            fcntl.flock(parent, fcntl.LOCK_EX)
            self._set_up(plan, restart)
        finally:
            os.close(parent)  # releases the parent's lock

    def _set_up(self, plan: dict[str, Any], restart: bool) -> None:
        saved = self._saved_plan()
        if saved == plan:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            return
        if saved is not None and not restart:
            self.close()
            raise ValueError(
                f"{self.directory} holds chunks of another tokenize run ({self._differences(saved)}); run with its "
                "tokenizer, split and tokenize.chunk_size, or run without --shard to start the chunks again."
            )
        # A new store, or another plan's chunks to delete: only while no other process works in it.
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.close()
            raise ValueError(
                f"{self.directory} is in use by another tokenize run"
                + (f" ({self._differences(saved)})" if saved is not None else "")
                + "; wait for it to finish, or pass --out another folder."
            ) from None
        if saved is not None:
            print(f"note: {self.directory} held chunks of another tokenize run ({self._differences(saved)}); "
                  "starting them again.", file=sys.stderr)  # fmt: skip
        for entry in self.directory.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        atomic_write_json(self.directory / PLAN_NAME, self.plan)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        """Stop working in the store; one that holds no chunk and that no other process uses is removed."""
        if self._fd is None:
            return
        try:
            if self.directory.is_dir() and not any(self.directory.glob("chunk-*.npz")):
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    shutil.rmtree(self.directory)
        finally:
            os.close(self._fd)
            self._fd = None

    def has(self, j: int) -> bool:
        return self.path(j).is_file()

    def missing(self) -> list[int]:
        return [j for j in range(self.num_chunks) if not self.has(j)]

    def write(self, j: int, arrays: dict[str, np.ndarray]) -> None:
        """Chunk ``j``'s arrays, all at once: a reader (or a resumed job) sees the whole chunk or none."""
        with atomic_path(self.path(j)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def read(self, j: int) -> dict[str, np.ndarray]:
        with np.load(self.path(j)) as archive:
            return {name: archive[name] for name in archive.files}

    def chunks(self) -> Iterator[dict[str, np.ndarray]]:
        """Every chunk's arrays in order."""
        return (self.read(j) for j in range(self.num_chunks))


@dataclass
class ShardProgress:
    """What one tokenize invocation did with the chunks."""

    shard: str  # "i/n" of this process
    chunks: int  # chunks in the whole corpus
    shard_chunks: int  # chunks of this shard
    written: int  # encoded by this invocation
    reused: int  # already written by an earlier (killed) invocation
    missing: int  # chunks of the corpus not written yet (other shards')
    merged: bool  # the corpus directory holds every chunk

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _merge_lock(store: ChunkStore) -> Iterator[bool]:
    """Hold the store's merge lock; yields False when the store is gone (another job merged it)."""
    try:
        handle = open(store.directory / MERGE_LOCK_NAME, "a")
    except FileNotFoundError:
        yield False
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or when a killed holder dies
        yield store.directory.is_dir()


def merge(store: ChunkStore, assemble: Callable[[Path, Iterator[dict[str, np.ndarray]]], None], required: bool) -> bool:
    """Join the chunks into the corpus once all are there; True when the corpus is complete.

    ``assemble(tmp, chunks)`` writes the corpus files into ``tmp`` from the chunks in order; they then
    replace the previous corpus in ``store.out`` (an output folder of ``tokenize``, or of another verb
    with ``store.overwrite``). ``required`` (``--merge``): missing chunks are an error.
    """
    with _merge_lock(store) as present:
        if not present:
            return (store.out / "meta.json").is_file()
        missing = store.missing()
        if missing:
            if required:
                first = store.items(missing[0])[0]
                raise ValueError(
                    f"{len(missing)} of the {store.num_chunks} chunks in {store.directory} are missing (the first "
                    f"starts at item {first}); run the shards that hold them (the same command with --shard I/N) "
                    "before --merge."
                )
            return False
        with (
            OutputFolder(store.out, VERB, overwrite=store.overwrite) as folder,
            folder.staging(last=["meta.json"]) as tmp,
        ):
            assemble(tmp, store.chunks())
        shutil.rmtree(store.directory)
    return True


# Chunk numbers → a generator of (chunk number, its arrays) in any order; closed when a write fails.
EncodeChunks = Callable[[list[int]], Generator[tuple[int, dict[str, np.ndarray]], None, None]]


def tokenize_sharded(
    store: ChunkStore,
    shard_spec: str | None,
    merge_only: bool,
    ranks: Ranks,
    encode: Callable[[int, int], dict[str, np.ndarray]],
    assemble: Callable[[Path, Iterator[dict[str, np.ndarray]]], None],
    desc: str,
    encode_chunks: EncodeChunks | None = None,
) -> ShardProgress:
    """Encode this process's chunks that are not written yet, then merge when every chunk is there.

    ``encode(start, stop)`` returns the arrays of items ``[start, stop)``; ``encode_chunks``, when given,
    encodes the missing chunks instead, elsewhere (``--engine ray``), and this process writes each one
    it yields. Under a process group every rank waits for the others before merging, so the corpus is
    complete when all return. ``store.out`` is checked first (:func:`recipes.engine.outputs.check_folder`),
    before any work.
    """
    check_folder(store.out, VERB, overwrite=store.overwrite)
    shard = choose_shard(shard_spec, ranks)
    mine = shard.chunks(store.num_chunks) if not merge_only else range(0)
    written = reused = 0
    try:
        if not merge_only or store.directory.is_dir():
            store.open(restart=shard_spec is None and not merge_only)
        todo = [j for j in mine if not store.has(j)]
        reused = len(mine) - len(todo)
        encoded = encode_chunks(todo) if encode_chunks else ((j, encode(*store.items(j))) for j in todo)
        with contextlib.closing(encoded):
            for j, arrays in progress(encoded, total=len(mine), initial=reused, desc=f"{desc} [shard {shard}]",
                                      unit="chunk"):  # fmt: skip
                store.write(j, arrays)
                written += 1
        ranks.barrier()
        if merge_only and not store.directory.is_dir() and not (store.out / "meta.json").is_file():
            raise ValueError(f"--merge found no chunks in {store.directory}; run the shards first (--shard I/N).")
        merged = merge(store, assemble, required=merge_only)
        missing = 0 if merged else len(store.missing())
    finally:
        store.close()
    return ShardProgress(str(shard), store.num_chunks, len(mine), written, reused, missing, merged)
