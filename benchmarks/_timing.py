"""Timing helpers shared by the benchmarks: wall-clock seconds of a call, medians, interleaved runs, the machine.

The benchmarks are scripts (``python benchmarks/NAME.py``), so this module is imported as a sibling
(``from _timing import ...``); on CUDA every timed call ends with a synchronisation, so the time
covers the kernels and not just their launch.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device | None = None) -> tuple[float, T]:
    """Seconds one call of ``fn`` takes (synchronised on CUDA), and what it returned."""
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


def median_seconds(fn: Callable[[], Any], repeats: int, device: torch.device | None = None) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one untimed warm-up call (allocator, kernels, caches)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}.")
    fn()
    _sync(device)
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def interleaved_medians(
    fns: Mapping[str, Callable[[], Any]], repeats: int, device: torch.device | None = None, warm_up: bool = True
) -> dict[str, float]:
    """Median seconds of each function, run in turns (a, b, c, a, b, c, ...) so that load on a shared
    machine falls on all of them alike; one untimed warm-up call each first unless ``warm_up=False``."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}.")
    if warm_up:
        for fn in fns.values():
            fn()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def machine(device: torch.device | None = None) -> dict[str, Any]:
    """What the figures were measured on: device name, torch threads, CPU count, torch and Python versions."""
    device = device or torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return {
        "device": name,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
