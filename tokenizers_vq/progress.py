"""Progress of long work, one helper for every verb: a tqdm bar on a terminal, a plain line every ~10 s elsewhere.

On a terminal :func:`progress` draws tqdm's bar. When standard error is not a terminal (a log file,
CI) a bar would fill the log with carriage returns, so it writes instead one line every
``$VQTOK_PROGRESS_SECONDS`` seconds (default 10), and a last one at the end when it wrote any::

    loading fsdd (train): 1200/2250 utterances (53%), 66.1 utterances/s, 00:18 elapsed, 00:15 left

Usage is tqdm's: iterate over ``progress(items, desc=..., unit=...)``, or ``update(n)`` a
``progress(total=..., ...)`` used as a context manager; ``set_postfix`` adds figures to the line
and ``write`` prints a line without breaking the bar.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

from tqdm import tqdm

__all__ = ["INTERVAL_ENV", "Progress", "interval_seconds", "progress", "quiet_library_bars"]

INTERVAL_ENV = "VQTOK_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 10.0
T = TypeVar("T")


def interval_seconds() -> float:
    """Seconds between two progress lines off a terminal: ``$VQTOK_PROGRESS_SECONDS``, else 10."""
    value = os.environ.get(INTERVAL_ENV)
    if value is None or not value.strip():
        return DEFAULT_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV} must be a number of seconds, e.g. 10; got {value!r}.") from None
    if not seconds >= 0:
        raise ValueError(f"{INTERVAL_ENV} must be >= 0 seconds; got {value!r}.")
    return seconds


def _is_terminal(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A counter of ``total`` steps (None: unknown) shown as a bar on a terminal or as timed lines elsewhere."""

    def __init__(
        self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
        initial: int = 0, enabled: bool = True, file: IO[str] | None = None,
    ) -> None:  # fmt: skip
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled
        self.postfix = ""
        self._bar: tqdm | None = None
        if enabled and _is_terminal(self.file):
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=self.file)
        self.interval = interval_seconds()
        self._start = self._last = time.monotonic()
        self._start_n = initial
        self._lines = 0
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this Progress was made without an iterable; call update(n) instead.")
        stopped = True
        try:
            for item in self.iterable:
                yield item
                self.update(1)
            stopped = False
        finally:
            self.close(stopped=stopped)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(stopped=exc_type is not None)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done; off a terminal, write a line when the interval has passed."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, figures: Mapping[str, Any]) -> None:
        """Figures shown after the count, e.g. ``{"loss": "0.123"}``."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in figures.items())
        if self._bar is not None:
            self._bar.set_postfix(figures, refresh=False)

    def write(self, line: str) -> None:
        """Print ``line`` on its own (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self, stopped: bool = False) -> None:
        """End the bar; off a terminal, a last line when any was written (so a log shows that the work ended):
        ``done``, or ``stopped`` when ``stopped`` (an exception or an interruption ended the work early)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self._lines:
            self._line(done="stopped" if stopped else "done")

    def describe(self, done: str = "") -> str:
        """The plain line: what, how far, how fast, how long left."""
        elapsed = time.monotonic() - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        units = _plural(self.unit)
        count = f"{self.n}/{self.total} {units}" if self.total is not None else f"{self.n} {units}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        parts = [count, f"{rate:.3g} {units}/s", f"{tqdm.format_interval(elapsed)} elapsed"]
        if done:
            parts.append(done)
        elif self.total is not None and rate > 0:
            parts.append(f"{tqdm.format_interval(max(self.total - self.n, 0) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: {', '.join(parts)}" if self.desc else ", ".join(parts)

    def _line(self, done: str = "") -> None:
        print(self.describe(done), file=self.file, flush=True)
        self._last = time.monotonic()
        self._lines += 1


def quiet_library_bars(file: IO[str] | None = None) -> None:
    """Off a terminal, turn off the tqdm bars of huggingface_hub, transformers and datasets (saving a model, a
    dataset), which would fill a log with carriage returns; on a terminal leave them be."""
    if _is_terminal(file if file is not None else sys.stderr):
        return
    # Read when the libraries are imported; the calls below cover the ones imported already.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def _plural(unit: str) -> str:
    if unit.endswith("s"):
        return unit
    return f"{unit}es" if unit.endswith(("ch", "sh", "x")) else f"{unit}s"


def progress(
    iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
    initial: int = 0, enabled: bool = True, file: IO[str] | None = None,
) -> Progress:  # fmt: skip
    """Show the progress of ``iterable`` (or of ``update`` calls up to ``total``) on ``file`` (default stderr).

    E.g. ``for path in progress(paths, desc="loading fsdd", unit="file"): ...`` draws a bar on a
    terminal and, in a log, writes ``loading fsdd: 120/2250 files (5%), 66.1 files/s, ...`` every
    ``$VQTOK_PROGRESS_SECONDS`` seconds. ``enabled=False`` shows nothing (ranks other than the first).
    """
    return Progress(iterable, total=total, desc=desc, unit=unit, initial=initial, enabled=enabled, file=file)
