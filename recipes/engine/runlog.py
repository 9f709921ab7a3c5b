"""A training run's log: metrics.jsonl rows and, from the same rows, TensorBoard scalars.

Every row (``{"kind": "train" | "eval" | "checkpoint", "step": ..., figures...}``) goes to
``metrics.jsonl`` and each of its numbers to ``tensorboard/`` as the scalar ``KIND/KEY`` (lists and
nested dicts as ``KIND/KEY/INDEX/...``, e.g. ``train/usage/0``, ``eval/levels/0/perplexity``) at
that step. Only rank 0 writes; on the other ranks a log keeps nothing.

metrics.jsonl is replaced atomically; TensorBoard appends to its event files. A resumed run keeps
the rows up to its checkpoint and opens a new event file that purges the later steps of the old
ones, so TensorBoard, like metrics.jsonl, shows each step once. Nothing is written before the first
row: then ``prepare`` runs once (the run folder made ready, :func:`recipes.engine.checkpoint.prepare_run_dir`)
and the event file is opened, so a run that fails before its first row leaves the folder as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from recipes.engine.checkpoint import BatchOrder, Publishable, RunPaths, save_checkpoint
from tokenizers_vq.io import write_jsonl

# Row keys that are not figures.
_NOT_SCALARS = ("kind", "step")


def due(step: int, every: int, last: bool) -> bool:
    """Whether periodic work with period ``every`` falls on ``step`` (it always does on the last step)."""
    return step % every == 0 or last


def scalars(row: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """The numbers of a metrics row as ``(tag, value)`` pairs, e.g. ``("train/usage/0", 0.93)``; text is skipped."""
    kind = str(row.get("kind", "train"))
    for key, value in row.items():
        if key not in _NOT_SCALARS:
            yield from _walk(f"{kind}/{key}", value)


def _walk(tag: str, value: Any) -> Iterator[tuple[str, float]]:
    if isinstance(value, (bool, int, float)):
        yield tag, float(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(f"{tag}/{key}", item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(f"{tag}/{i}", item)


class RunLog:
    """The rows of a run, written to ``metrics.jsonl`` and TensorBoard by rank 0 (``enabled``).

    Args:
        paths: the run directory.
        rows: the rows logged so far (a resumed run's rows up to its checkpoint).
        resumed_from: the checkpoint step a resumed run starts from (None for a fresh start).
        enabled: write files (rank 0); False keeps nothing.
        prepare: called once, before the first file is written.
    """

    def __init__(
        self,
        paths: RunPaths,
        rows: list[dict[str, Any]],
        resumed_from: int | None,
        enabled: bool = True,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.paths = paths
        self.enabled = enabled
        self.rows = rows if enabled else []
        self.resumed_from = resumed_from
        self._prepare = prepare
        self._writer: Any = None

    def ready(self) -> None:
        """Make the run folder ready for writing (once); the caller is about to write into it."""
        if self.enabled and self._prepare is not None:
            prepare, self._prepare = self._prepare, None
            prepare()

    def add(self, row: dict[str, Any]) -> None:
        """Append ``row`` (written to metrics.jsonl at the next :meth:`write` or :meth:`checkpoint`)."""
        if not self.enabled:
            return
        self.ready()
        self.rows.append(row)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imported only by the process that writes

            # purge_step hides the events a killed run wrote after its checkpoint: those steps are redone.
            purge = None if self.resumed_from is None else self.resumed_from + 1
            self._writer = SummaryWriter(log_dir=str(self.paths.tensorboard), purge_step=purge)
        for tag, value in scalars(row):
            self._writer.add_scalar(tag, value, global_step=int(row["step"]))

    def write(self) -> None:
        """Replace metrics.jsonl with the rows so far and flush the TensorBoard events."""
        if self.enabled:
            self.ready()
            write_jsonl(self.paths.metrics, self.rows)
            self._flush()

    def checkpoint(
        self,
        model: Publishable,
        optimizer: torch.optim.Optimizer,
        step: int,
        order: BatchOrder,
        seconds: float,
    ) -> None:
        """:func:`recipes.engine.checkpoint.save_checkpoint` with these rows, then flush the TensorBoard events."""
        if self.enabled:
            self.ready()
            save_checkpoint(self.paths, model, optimizer, step, order, seconds, self.rows)
            self._flush()

    def _flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
