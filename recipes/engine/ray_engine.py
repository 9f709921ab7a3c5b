"""``vqtok tokenize --engine ray``: the missing chunks of a corpus encoded by a Ray Data job.

The batch-inference pattern of Ray Data, over the chunks of :mod:`recipes.engine.shards`::

    chunk numbers ──▶ read tasks (CPU) ──────────▶ encode actors ───────────▶ this process
    (the missing      the plug-in's read: items     each holds the tokenizer;   writes each chunk into
     ones)            read, decoded, preprocessed   encode_inputs on a chunk    the ChunkStore as it comes

Only the work moves: the chunks are the ones a one-process run makes, encoded by the same plug-in
functions (:class:`modalities.base.CorpusSource` ``read`` and ``encode_inputs``) and written by this
process through the same :class:`~recipes.engine.shards.ChunkStore`, so a killed job run again encodes
only the chunks it had not written, and the merged corpus equals the one-process corpus byte for byte
(on the same kind of device, at the same precision).

Each actor loads the tokenizer from its folder (the same path on every node: a shared file system)
and refuses it unless its content identity is the one the chunks are recorded as codes of. There is
one actor per GPU when ``device`` is not ``cpu`` and the cluster has GPUs, else up to four CPU actors
sharing half the CPUs; the read tasks use the rest. ``ray`` is imported here only, when used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modalities.base import CorpusSource, get_modality, load_tokenizer
from recipes.engine.runtime import autocast, check_precision, evaluation_mode, set_threads

MAX_CPU_ACTORS = 4  # more CPU actors only split the same CPUs into smaller shares of threads
IN, OUT = "in.", "out."  # column prefixes of a chunk's model inputs and of its encoded arrays
_CONNECT_SECONDS = 5.0
_RAY_RETRY_NOTE = re.compile(r"\n?Failed to [^\n]* after \d+/\d+ attempts .*", re.S)  # Ray Data's, see _user_error

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class EncoderSpec:
    """What an actor needs to hold the tokenizer: where it is, what it must be, and the run's encoding options."""

    modality: str
    directory: str  # the tokenizer folder, the same path on every node
    content_id: str  # the identity the chunks record; a folder that holds another tokenizer is refused
    cfg: Any  # the recipe config (device, precision, modality.prepare's options)


@dataclass(frozen=True)
class ActorPlan:
    """How many encode actors, and what each asks Ray for."""

    size: int
    num_gpus: int  # 1: the actor's GPU (Ray sets CUDA_VISIBLE_DEVICES to it), 0: a CPU actor
    num_cpus: int  # also its torch threads

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if self.num_gpus else "cpu")


def plan_actors(resources: dict[str, float], device: str, chunks: int) -> ActorPlan:
    """The encode actors for a cluster of ``resources`` (``ray.cluster_resources()``) and ``cfg.device``.

    E.g. 2 CPUs, ``device=cpu`` → one actor of 1 CPU; 64 CPUs and 8 GPUs, ``device=auto`` → 8 GPU actors.
    Never more actors than ``chunks``.
    """
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if device != "cpu" and gpus > 0:
        return ActorPlan(size=max(1, min(gpus, chunks)), num_gpus=1, num_cpus=1)
    if device.startswith("cuda"):
        raise ValueError(
            f"device={device} but the Ray cluster has no GPU ({cpus} CPUs); pass device=cpu (or auto), "
            "or add GPU nodes to the cluster."
        )
    encode_cpus = max(1, cpus // 2)  # the other half reads and decodes
    size = max(1, min(MAX_CPU_ACTORS, encode_cpus, chunks))
    return ActorPlan(size=size, num_gpus=0, num_cpus=max(1, encode_cpus // size))


def _check_reachable(address: str) -> None:
    """A one-line ``ValueError`` unless something answers at ``HOST:PORT`` (``ray.init`` would retry for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            "tokenize.ray_address must be auto, HOST:PORT (the head's GCS, 6379 by default) or ray://HOST:PORT; "
            f"got {address!r}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_SECONDS).close()
    except OSError as err:
        raise ValueError(
            f"no Ray cluster answers at --ray-address {address} ({err.strerror or err}); start one there with "
            "`ray start --head`, or leave out --ray-address to start a local Ray."
        ) from None


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, connected to ``address`` (None: a new local Ray) until the block ends.

    ``auto`` is the cluster that ``$RAY_ADDRESS`` names, else the one ``ray start`` started on this machine.
    A process that already called ``ray.init`` (a program, a test) keeps that connection, and it is not
    shut down after; a ``HOST:PORT`` that nothing answers at is refused either way.
    """
    import ray
    import ray.data

    target = address or "local"
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        target = os.environ["RAY_ADDRESS"]
    if target not in ("auto", "local"):
        _check_reachable(target)
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=target, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as err:
        raise ValueError(
            f"could not connect to Ray at --ray-address {address}: {err} Start one with `ray start --head`, "
            "or leave out --ray-address to start a local Ray."
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _reader(source: CorpusSource) -> Any:
    read = source.read  # not `source` itself: its other functions close over the model

    def read_chunk(row: dict[str, Any]) -> dict[str, Any]:
        inputs = read(int(row["start"]), int(row["stop"]))
        return {"chunk": int(row["chunk"]), **{IN + name: array for name, array in inputs.items()}}

    return read_chunk


class ChunkEncoder:
    """A Ray actor: the tokenizer loaded once, then one chunk's read inputs → its arrays per call."""

    def __init__(self, spec: EncoderSpec, encode_inputs: Any, plan: ActorPlan) -> None:
        set_threads(plan.num_cpus)
        self.device, self.precision = plan.device, spec.cfg.precision
        self.encode_inputs = encode_inputs
        modality = get_modality(spec.modality)
        self.model = modality.prepare(load_tokenizer(spec.directory, map_location=self.device), spec.cfg)
        found = self.model.content_id()
        self.refusal = None  # raised by the first call: Ray keeps only the text of an error in a constructor
        if found != spec.content_id:
            self.refusal = ValueError(
                f"the tokenizer at {spec.directory} on a Ray node ({found[:12]}) is not the one being tokenized "
                f"with ({spec.content_id[:12]}); give every node the same folder (a shared file system)."
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.refusal is not None:
            raise self.refusal
        # One chunk per batch; np.array copies, since Ray hands out read-only views of its object store.
        inputs = {name.removeprefix(IN): np.array(column[0]) for name, column in batch.items() if name.startswith(IN)}
        with evaluation_mode(self.model), autocast(self.precision, self.device):
            arrays = self.encode_inputs(self.model, inputs)
        return {"chunk": batch["chunk"], **{OUT + name: [array] for name, array in arrays.items()}}


@contextlib.contextmanager
def _ray_data_settings(ray: Any) -> Iterator[None]:
    """Ray Data as this job wants it, the previous settings restored after (a program may use Ray Data too)."""
    context = ray.data.DataContext.get_current()
    wanted = {
        "enable_progress_bars": False,  # this process draws one bar over the chunks
        "print_on_execution_start": False,
        "raise_original_map_exception": True,  # a bad file's own ValueError, not "UDF failed" without its cause
    }
    wanted = {name: value for name, value in wanted.items() if hasattr(context, name)}  # older Rays lack some
    before = {name: getattr(context, name) for name in wanted}
    loggers = {name: logging.getLogger(name) for name in ("ray.data", "ray.data._internal.progress")}
    levels = {name: logger.level for name, logger in loggers.items()}
    loggers["ray.data"].setLevel(logging.WARNING)  # its INFO lines narrate the execution plan
    loggers["ray.data._internal.progress"].setLevel(logging.ERROR)  # "progress bars disabled": ours are on
    for name, value in wanted.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(context, name, value)
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def _user_error(err: BaseException) -> BaseException | None:
    """The error a read or an encode raised, if Ray raised it as such (``RayTaskError(ValueError)``),
    without the note on retries that Ray Data appends to its message."""
    cause = getattr(err, "cause", None)
    if not isinstance(cause, (ValueError, TypeError, OSError)):
        return None
    args = [_RAY_RETRY_NOTE.sub("", a) if isinstance(a, str) else a for a in cause.args]
    cause.args = tuple(a for a in args if a != "")
    return cause


def encode_on_ray(
    source: CorpusSource, spec: EncoderSpec, chunks: list[tuple[int, int, int]], address: str | None
) -> Generator[tuple[int, Arrays], None, None]:
    """Yield ``(j, arrays)`` for every chunk ``(j, start, stop)``, in the order Ray finishes them.

    A read or encode that raises ``ValueError``, ``TypeError`` or ``OSError`` (a file that cannot be
    decoded, a tokenizer folder that differs on a node) fails the job with that error.
    """
    if not chunks:
        return
    if source.read is None or source.encode_inputs is None:
        raise ValueError(f"the {spec.modality} modality cannot tokenize on Ray (its CorpusSource has no read).")
    with connected(address) as ray, _ray_data_settings(ray):
        plan = plan_actors(ray.cluster_resources(), spec.cfg.device, len(chunks))
        check_precision(spec.cfg.precision, plan.device)
        rows = [{"chunk": j, "start": start, "stop": stop} for j, start, stop in chunks]
        data = ray.data.from_items(rows, override_num_blocks=len(rows))
        # Half a CPU per read task: reading waits on files as much as it decodes, and a request unlike the
        # actors' keeps Ray Data from fusing the reads into the actors (it fuses maps of equal resources).
        data = data.map(_reader(source), num_cpus=0.5)
        data = data.map_batches(
            ChunkEncoder,
            fn_constructor_args=(spec, source.encode_inputs, plan),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.size),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
        )
        results = iter(data.iter_rows())
        try:
            for row in results:
                yield (
                    int(row["chunk"]),
                    {k.removeprefix(OUT): np.asarray(v) for k, v in row.items() if k.startswith(OUT)},
                )
        except Exception as err:
            original = _user_error(err)
            if original is None:
                raise
            raise original from None
        finally:
            with contextlib.suppress(Exception):
                results.close()  # type: ignore[attr-defined]  (stops the execution when the caller stops early)
