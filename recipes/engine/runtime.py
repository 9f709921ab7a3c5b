"""Device, precision, threads, seeding, RNG state and process groups: run-time choices of recipes, never of modules."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tokenizers_vq import distributed


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available) → a ``torch.device``.

    Raises ``ValueError`` when CUDA is asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name} was asked for but CUDA is not available here; use device=cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name} does not exist; this machine has {torch.cuda.device_count()} GPU(s).")
    return device


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch's operators (``None`` keeps torch's default)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def setup_runtime(cfg: Any) -> torch.device:
    """Apply a recipe config's run-time choices (``threads``, a ``precision`` the device can take); return its device."""
    device = resolve_device(cfg.device)
    check_precision(getattr(cfg, "precision", "fp32"), device)
    set_threads(getattr(cfg, "threads", None))
    return device


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN on this CPU runs bf16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ``ValueError`` for a precision this device cannot autocast to at speed."""
    if precision != "bf16":
        return
    if device.type == "cpu" and not cpu_has_bf16():
        raise ValueError(
            "precision=bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX) or a CUDA device; "
            "this CPU would emulate it, slower than fp32. Use precision=fp32."
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"precision=bf16 is autocast on CPU or CUDA; got device {device}. Use precision=fp32.")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's autocast context: bf16 on CUDA or a bf16-capable CPU when asked, otherwise nothing.

    The quantizers force their distances and EMA statistics to fp32 inside, so only the encoder and
    decoder layers run in bf16.
    """
    if precision == "bf16":
        check_precision(precision, device)
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    # The legacy global NumPy generator, on purpose: it is the one third-party code draws from.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global generators' states, in a form ``torch.load(weights_only=True)`` can read back."""
    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global generator, see seed_everything)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside, the previous training flag restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def join_process_group(device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1) unless one is already up.

    Returns this rank's device (``cuda:LOCAL_RANK`` for CUDA) and whether the group was created here.
    """
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    if device.type == "cuda" and distributed.is_distributed() and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", distributed.rank() % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return device, created


def agree(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank, so all ranks stop at the same step."""
    if not distributed.is_distributed():
        return flag
    value = torch.tensor([float(flag)], device=device)
    return bool(distributed.broadcast(value).item())
