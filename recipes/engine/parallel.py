"""Many processes: each rank's share of a global batch, who writes, and whether the codebooks agree.

Under ``torchrun --nproc_per_node N`` (or inside a process group that is already up) a training
recipe joins the group (gloo on the CPU, nccl on CUDA), wraps its model in DistributedDataParallel
and takes a contiguous share of every global batch: gathered in rank order, the shares are the batch
one process would take, so N processes train the model one process trains. Rank 0 alone evaluates
and writes files. At every checkpoint each rank hashes its quantizers' codebooks; the hashes are
gathered and compared, and a mismatch stops every rank.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from recipes.engine.checkpoint import RESUME_FIXED, RunPaths, open_run, run_folder
from recipes.engine.outputs import OutputFolder, OutputRefused
from recipes.engine.runtime import agree, join_process_group
from tokenizers_vq import distributed
from tokenizers_vq.base import Quantizer

# Hex digits of the codebook checksum kept in logs (64 bits: a mismatch cannot hide in a collision).
CHECKSUM_CHARS = 16


class CodebookMismatchError(RuntimeError):
    """The ranks of a distributed run hold different codebooks (a bug, never bad input)."""


@dataclass
class Ranks:
    """This process's place in a run: its device, rank and the number of ranks (1 without a group)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    created: bool = False  # this process created the group, so it destroys it at the end

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates and writes."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int, key: str = "train.batch_size") -> None:
        """Raise ``ValueError`` unless every rank can take an equal share of a batch of ``batch_size``."""
        if batch_size % self.world:
            raise ValueError(
                f"{key}={batch_size} must be a multiple of the {self.world} processes; "
                f"pass {key}={batch_size - batch_size % self.world or self.world} or another multiple."
            )

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global ``batch`` (first dimension), e.g. indices ``(b,)`` → ``(b / world,)``."""
        n = len(batch) // self.world
        return batch[self.rank * n : (self.rank + 1) * n]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks, else ``model`` itself."""
        if self.world == 1:
            return model
        # A grey-image first convolution (in_channels = 1) gets gradients whose size-1 dimension has
        # another stride than its weight: the same memory layout, which DDP still warns about.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        # The quantizers all-reduce their own statistics, so DDP need not broadcast buffers every step.
        return DistributedDataParallel(model, broadcast_buffers=False)

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (for decisions such as stopping on a time budget)."""
        return agree(flag, self.device)

    def all_finite(self, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every rank: one rank's NaN stops them all, none is left waiting in backward."""
        finite = torch.isfinite(value.detach()).all().reshape(1).float()
        if self.world > 1:
            finite = distributed.all_reduce_sum(finite)
        return int(finite.item()) == self.world

    def out_of_time(self, seconds: float, max_minutes: float | None, step: int, steps: int) -> bool:
        """Whether to stop early after ``seconds`` of a ``max_minutes`` budget (rank 0's clock decides for all)."""
        if max_minutes is None:
            return False
        return self.agree(seconds >= 60.0 * max_minutes and step < steps)

    def open_run(self, paths: RunPaths, cfg: Any, batch_size: int, resume: bool, overwrite: bool,
                 fixed: tuple[str, ...] = RESUME_FIXED) -> tuple[bool, OutputFolder]:  # fmt: skip
        """:func:`recipes.engine.checkpoint.open_run` on every rank, then the run folder locked by rank 0.

        Checks first that ``batch_size`` splits into equal shares. Returns whether there is a checkpoint to
        resume, and the folder, entered (locked) on rank 0: the caller leaves it (``with folder:``). When rank 0
        cannot lock it (another process trains there), every rank raises, so none waits for the others.
        """
        self.check_batch_size(batch_size)
        has_state = open_run(paths, cfg, resume, overwrite, fixed=fixed)
        folder = run_folder(paths, overwrite, main=self.is_main)
        refused: Exception | None = None
        try:
            folder.claim()
        except Exception as err:  # told to the other ranks before it is raised, or they would wait forever
            refused = err
        if not self.agree(refused is None):
            raise refused or OutputRefused(f"{paths.root}: rank 0 could not take the run folder; see its error.")
        return has_state, folder

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def join(device: torch.device) -> Ranks:
    """Join the process group ``torchrun`` describes (if any) and return this process's :class:`Ranks`."""
    device, created = join_process_group(device)
    return Ranks(device, distributed.rank(), distributed.world_size(), created)


@contextlib.contextmanager
def joined(device: torch.device) -> Iterator[Ranks]:
    """:func:`join` for the block; after it every rank waits for the others and a group created here is left.

    On an exception the group is left without waiting (the other ranks may never get there).
    """
    ranks = join(device)
    try:
        yield ranks
        ranks.barrier()
    finally:
        if ranks.created and dist.is_initialized():
            dist.destroy_process_group()


def codebook_digest(model: torch.nn.Module) -> bytes | None:
    """SHA-256 over every quantizer's state (codebook, EMA statistics, counters); None without quantizers."""
    quantizers = [m for m in model.modules() if isinstance(m, Quantizer)]
    if not quantizers:
        return None
    digest = hashlib.sha256()
    for q in quantizers:
        for name, tensor in q.state_dict().items():
            digest.update(name.encode())
            # The raw bytes: equal digests mean bit-identical codebooks, not merely close ones.
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def codebook_check(model: torch.nn.Module, ranks: Ranks, step: int) -> dict[str, Any] | None:
    """Every rank's codebook checksum, gathered and compared: a ``"checkpoint"`` metrics row (None without quantizers).

    Every rank must call it at the same step. The row holds ``codebook_checksum`` (rank 0's, 16 hex
    digits), ``ranks_agree`` and ``world_size``; when the ranks disagree also ``rank_checksums``.
    """
    digest = codebook_digest(model)
    if digest is None:
        return None
    mine = torch.tensor(list(digest), dtype=torch.int64, device=ranks.device)[None]  # (1, 32)
    every = distributed.all_gather_rows(mine).cpu()  # (world, 32), rank order
    same = bool((every == every[0]).all())
    row: dict[str, Any] = {
        "kind": "checkpoint",
        "step": step,
        "world_size": ranks.world,
        "codebook_checksum": bytes(every[0].tolist()).hex()[:CHECKSUM_CHARS],
        "ranks_agree": same,
    }
    if not same:
        row["rank_checksums"] = [bytes(r.tolist()).hex()[:CHECKSUM_CHARS] for r in every]
    return row


def raise_if_disagree(row: dict[str, Any] | None) -> None:
    """Raise :class:`CodebookMismatchError` when a :func:`codebook_check` row says the ranks disagree."""
    if row is not None and not row["ranks_agree"]:
        raise CodebookMismatchError(
            f"at step {row['step']} the {row['world_size']} ranks hold different codebooks "
            f"(checksums by rank: {', '.join(row['rank_checksums'])}); the quantizers' statistics were not "
            "all-reduced. The last good checkpoint is the one before this step."
        )
