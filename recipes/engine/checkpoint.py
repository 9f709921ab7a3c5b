"""Training run directories: their layout, data order, checkpoints, and the checks before a (re)start.

A run directory holds::

    config.yaml           the resolved config of the run
    metrics.jsonl         one JSON row per log interval, per evaluation and per checkpoint
    tensorboard/          the same rows as TensorBoard scalars (recipes.engine.runlog)
    tokenizer/            the published model (save_pretrained), refreshed at every checkpoint; prior/ for priors
    checkpoint/state.pt   training state: model, optimizer, step, RNG states, data-order position

Every file is replaced atomically and ``state.pt`` last, so a run killed at any moment (even by
SIGKILL) resumes from its last checkpoint, losing at most the steps since. Shared by every
training recipe (tokenizers of each modality, priors) through :func:`recipes.engine.trainer.fit`.

The folder is an output folder of :mod:`recipes.engine.outputs` (a marker naming the training verb and
these entries; locked while a process trains in it). Nothing is written or removed before every check
has passed and training has produced its first row: a run that is refused or fails at once (a bad
override, data that does not fit, a non-finite first loss) leaves the folder as it was, the old run
of ``--overwrite`` and the ``config.yaml`` of ``--resume`` included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from recipes.engine.config import config_to_dict, flatten, load_config, save_config
from recipes.engine.outputs import OutputFolder, check_folder
from recipes.engine.runtime import rng_state, set_rng_state
from tokenizers_vq.io import atomic_path, is_temporary, read_jsonl, remove_stale_temporaries, write_jsonl

CHECKPOINT_VERSION = 1
# Keys a resumed run must share with the run it continues; the rest (steps, budget, logging) may change.
RESUME_FIXED = ("seed", "data.", "model.")


class Publishable(Protocol):
    """A model that :func:`save_checkpoint` can publish: a state dict and ``save_pretrained``."""

    def state_dict(self) -> dict[str, Any]: ...

    def save_pretrained(self, directory: Any) -> Any: ...


@dataclass(frozen=True)
class RunPaths:
    """Where a training run keeps its files."""

    root: Path
    weights_name: str = "tokenizer"  # the published model's folder: "tokenizer", or "prior" for priors
    verb: str | None = None  # the verb recorded in the folder's marker; default "train-<weights_name>"

    @property
    def maker(self) -> str:
        """The verb that trains in this folder, e.g. ``"train-tokenizer"``: another verb's folder needs --overwrite."""
        return self.verb or f"train-{self.weights_name}"

    @property
    def entries(self) -> tuple[str, ...]:
        """The names a run writes in its folder; ``--overwrite`` removes these and nothing else."""
        return (self.config.name, self.metrics.name, self.tensorboard.name, self.checkpoint.name, self.weights_name)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def weights(self) -> Path:
        """The published model (``save_pretrained``): a tokenizer, or whatever the recipe trains."""
        return self.root / self.weights_name

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def state(self) -> Path:
        return self.checkpoint / "state.pt"


def run_dir(cfg: Any) -> Path:
    """The run directory of a recipe config with ``out`` and ``name``: ``out``, or ``runs/<name>``."""
    return Path(cfg.out).expanduser() if cfg.out else Path("runs") / cfg.name


class BatchOrder:
    """Seeded data order: a fresh permutation of the ``n`` images every epoch, cut into batches.

    Its position, ``(epoch, offset)`` with ``offset`` the images of this epoch already used, is part
    of the checkpoint. The last partial batch of an epoch is dropped, so every batch has
    ``batch_size`` images; permutations come from their own generator, not the global RNG.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int = 0, offset: int = 0) -> None:
        if batch_size > n:
            raise ValueError(
                f"train.batch_size={batch_size} is larger than the {n} training images; lower train.batch_size."
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.offset = epoch, offset
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._perm is None:
            # A distinct stream per (seed, epoch); 1_000_003 (a prime) keeps the seeds apart.
            self._perm = torch.randperm(
                self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            )
        return self._perm

    def next(self) -> torch.Tensor:
        """Indices ``(batch_size,)`` of the next batch."""
        if self.offset + self.batch_size > self.n:
            self.epoch, self.offset, self._perm = self.epoch + 1, 0, None
        batch = self._permutation()[self.offset : self.offset + self.batch_size]
        self.offset += self.batch_size
        return batch

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}


def legacy_run(paths: RunPaths) -> Callable[[Path], list[str] | None]:
    """Recognises a run folder written before folders had markers: its run entries, or None when it is not one.

    A folder with ``checkpoint/``, or one with ``config.yaml`` whose every entry is a run entry (a run killed
    before its first checkpoint), is a run.
    """

    def entries(folder: Path) -> list[str] | None:
        names = {p.name for p in folder.iterdir() if not is_temporary(p.name)}
        if (folder / paths.checkpoint.name).is_dir() or (paths.config.name in names and names <= set(paths.entries)):
            return sorted(names & set(paths.entries))
        return None

    return entries


def check_run_dir(paths: RunPaths, resume: bool, overwrite: bool) -> bool:
    """Refuse to clobber a run (or any other folder) by accident; True when there is a checkpoint to resume from."""
    check_folder(paths.root, paths.maker, overwrite=overwrite, legacy=legacy_run(paths))
    has_state = paths.state.exists()
    if has_state and not (resume or overwrite):
        raise FileExistsError(
            f"{paths.root} already holds a training run; pass --resume to continue it, --overwrite to start "
            "it again, or --out another directory."
        )
    return has_state and not overwrite


def run_folder(paths: RunPaths, overwrite: bool, *, main: bool = True) -> OutputFolder:
    """The run directory as an output folder (checked now; made and locked on entering it, by rank 0: ``main``)."""
    return OutputFolder(paths.root, paths.maker, overwrite=overwrite, legacy=legacy_run(paths), lock=main)


def prepare_run_dir(folder: OutputFolder, paths: RunPaths, cfg: Any, overwrite: bool) -> None:
    """Just before a run writes its first file: remove the old run when overwriting (its entries, nothing else),
    drop a killed run's temporaries, save ``cfg``. Rank 0 only, holding the folder's lock."""
    folder.begin(paths.entries, replace=overwrite)
    for name in paths.entries:  # only the run's own temporaries: other verbs may be writing beside it
        remove_stale_temporaries(paths.root / name)
        for stale in paths.root.glob(f".{name}.*"):
            if is_temporary(stale.name) and stale.is_file():
                stale.unlink()
    save_config(cfg, paths.config)


def check_same_run(paths: RunPaths, cfg: Any, fixed: tuple[str, ...] = RESUME_FIXED) -> None:
    """Raise ``ValueError`` when ``cfg`` would change what the checkpointed run is (its model, data, ...)."""
    if not paths.config.exists():
        return
    saved = flatten(config_to_dict(load_config(type(cfg), paths.config)))
    now = flatten(config_to_dict(cfg))
    changed = [k for k in now if k.startswith(fixed) and saved.get(k) != now[k]]
    if changed:
        diffs = ", ".join(f"{k}={saved.get(k)!r} (now {now[k]!r})" for k in changed)
        raise ValueError(
            f"{paths.root} holds a run with {diffs}; resume it with its own values, "
            "or pass --overwrite (or another --out) to start a new run."
        )


def open_run(
    paths: RunPaths, cfg: Any, resume: bool, overwrite: bool, *, fixed: tuple[str, ...] = RESUME_FIXED
) -> bool:
    """The checks before a (re)start; True when there is a checkpoint to resume.

    They only read, so every rank runs them and a refusal stops all ranks alike. Nothing is written here:
    :func:`prepare_run_dir` runs when the run writes its first file.
    """
    has_state = check_run_dir(paths, resume, overwrite)
    if has_state:
        check_same_run(paths, cfg, fixed)
    return has_state


def save_checkpoint(
    paths: RunPaths,
    model: Publishable,
    optimizer: torch.optim.Optimizer,
    step: int,
    order: BatchOrder,
    seconds: float,
    rows: list[dict[str, Any]],
) -> None:
    """Write ``rows`` to metrics.jsonl, publish ``model`` to ``paths.weights``, then the training state.

    The state holds the model and optimizer, ``step``, the global RNG states, the data-order
    position and the wall time spent so far.
    """
    # Order matters: metrics and published weights first, state.pt last. A kill in between leaves
    # the previous state.pt, and the newer files are rewritten when the resumed run gets there.
    write_jsonl(paths.metrics, rows)
    model.save_pretrained(paths.weights)
    state = {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
        "data_position": order.position(),
        "seconds": seconds,
    }
    state[DIGEST_KEY] = state_digest(state)
    with atomic_path(paths.state) as tmp:
        torch.save(state, tmp)


DIGEST_KEY = "digest"  # in state.pt: state_digest of everything else, checked on --resume


def state_digest(value: Any) -> str:
    """Hex SHA-256 of a nested training state (dicts in key order, lists, tensors by dtype, shape and bytes, and
    plain values), so a damaged ``state.pt`` that still unpickles is told from a good one."""
    digest = hashlib.sha256()

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().to("cpu").contiguous()
            digest.update(f"T{t.dtype}{list(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, dict):
            digest.update(f"D{len(v)}|".encode())
            for key in sorted(v, key=repr):
                digest.update(f"{key!r}:".encode())
                walk(v[key])
        elif isinstance(v, list | tuple):
            digest.update(f"L{len(v)}|".encode())
            for item in v:
                walk(item)
        else:
            digest.update(f"{v!r}|".encode())

    walk(value)
    return digest.hexdigest()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The training state saved in ``checkpoint/state.pt`` (on the CPU), checked against its digest.

    A file that cannot be read (empty, truncated, not a checkpoint) or whose content is not what was saved
    raises a one-line ``ValueError`` that says so and what to do.
    """
    what_to_do = "restore it from a copy, or start the run again with --overwrite"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # zip, pickle and EOF errors alike: whatever it is, the file is not a checkpoint
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} cannot be read as a checkpoint ({reason}): it is damaged; {what_to_do}.") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a training state: it is damaged; {what_to_do}.")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {state.get('version')!r}; expected {CHECKPOINT_VERSION}.")
    recorded = state.pop(DIGEST_KEY, None)  # checkpoints written before the digest have none
    if recorded is not None and recorded != state_digest(state):
        raise ValueError(f"{path} is damaged: its content does not match the digest saved with it; {what_to_do}.")
    return state


@dataclass
class TrainingStart:
    """Where a training loop begins: step 0, or the state of the run's last checkpoint."""

    order: BatchOrder
    step: int = 0
    seconds_before: float = 0.0  # wall time the run had already spent before this invocation
    resumed_from: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics rows up to ``step``


def start_training(
    paths: RunPaths,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    num_items: int,
    batch_size: int,
    seed: int,
    resume: bool,
) -> TrainingStart:
    """A fresh start, or (``resume``) the checkpoint restored into ``model`` and ``optimizer``.

    Restores the data order, the metrics rows logged up to the checkpoint (later rows belong to
    steps about to be redone) and, last, the RNG states, so nothing draws from them before the loop.
    """
    if not resume:
        return TrainingStart(order=BatchOrder(num_items, batch_size, seed))
    state = load_checkpoint(paths.state)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        order = BatchOrder(num_items, batch_size, seed, **state["data_position"])
        seconds = state["seconds"]
    except (RuntimeError, ValueError, KeyError, TypeError) as err:  # a state of another model, or of no run at all
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{paths.state} does not fit this run ({reason}): it was saved by another model or run. Put back the "
            "run's own checkpoint, or start again with --overwrite."
        ) from err
    start = TrainingStart(
        order=order,
        step=step,
        seconds_before=seconds,
        resumed_from=step,
        rows=[r for r in read_jsonl(paths.metrics) if r["step"] <= step],
    )
    set_rng_state(state["rng"])
    return start
