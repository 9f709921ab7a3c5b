"""Where verbs write: only into a new folder or one that vqtok made, one writer at a time, nothing of the user's removed.

Every folder a verb writes (a training run, a code corpus, decompressed items, samples, a report, ...)
holds a marker that names the verb and the entries it wrote::

    .vqtok-output.json   {"format": "tokenizers-vq/output", "verb": "tokenize", "files": ["codes_level0.npy", ...]}
    .vqtok.lock          while a process writes the folder: its pid (an advisory lock, see FolderLock)

The rules, the same for every verb:

- a folder that does not exist or is empty is made; one that the same verb made is written again; one
  that another verb made needs ``--overwrite`` (and a training run is replaced only by a training verb);
  any other folder is refused and left as it is.
- writing a folder again (or ``--overwrite``) removes only the entries its marker lists: a user's
  ``thesis.txt`` beside them stays.
- a folder is locked while a process writes it; the lock dies with the process however it ends (even
  SIGKILL), so a lock left by a dead process is simply taken over, and a second writer is refused.
- a verb that writes one file (``compress``'s ``.vqc``, ``evaluate``'s JSON, ``convert``'s WAV) does not
  replace an existing file unless ``--overwrite``, and then only a file of the kind it writes.

Refusals are :class:`OutputRefused` (a ``FileExistsError``: one line on the command line, exit status 2),
raised before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tokenizers_vq.entropy import MAGIC
from tokenizers_vq.io import atomic_write_json, is_temporary, set_umask_mode

MARKER_NAME = ".vqtok-output.json"
LOCK_NAME = ".vqtok.lock"
MARKER_FORMAT = "tokenizers-vq/output"
_STAGING_PREFIX = ".vqtok-staging."
_STAGING_SUFFIX = ".tmpdir"  # a temporary by tokenizers_vq.io's naming, so stale ones are recognised as such


class OutputRefused(FileExistsError):
    """An output that would replace what vqtok did not write, or that another process is writing."""


def _bookkeeping(name: str) -> bool:
    """Entries of an output folder that are vqtok's own machinery, not outputs: the marker, the lock, temporaries."""
    return name in (MARKER_NAME, LOCK_NAME) or is_temporary(name)


def _plain_names(names: Iterable[Any]) -> list[str]:
    """The entry names of a marker that name an entry of the folder itself (never ``..``, ``a/b`` or ``/x``)."""
    return sorted(
        {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\0" not in n}
    )


def read_marker(folder: Path) -> tuple[str, list[str]] | None:
    """The verb and the entries recorded in ``folder``'s marker; None without one. ``ValueError`` for a damaged one."""
    path = folder / MARKER_NAME
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        marker, reason = None, str(err)
    else:
        reason = "not a vqtok output marker"
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT or not isinstance(marker.get("verb"), str):
        raise ValueError(
            f"{path} is damaged ({reason}), so vqtok cannot tell which files in {folder} it wrote; nothing was changed. "
            "Pass --out a new folder, or remove the folder yourself."
        )
    files = marker.get("files")
    return marker["verb"], _plain_names(files if isinstance(files, list) else [])


def write_marker(folder: Path, verb: str, files: Iterable[str]) -> None:
    atomic_write_json(folder / MARKER_NAME, {"format": MARKER_FORMAT, "verb": verb, "files": _plain_names(files)})


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_folder(
    folder: Path, verb: str, *, overwrite: bool = False, legacy: Callable[[Path], list[str] | None] | None = None
) -> list[str]:
    """Raise :class:`OutputRefused` unless ``verb`` may write ``folder``; return the entries vqtok wrote there before.

    ``legacy(folder)``, when given, recognises a folder that this verb wrote before folders had markers
    (returning its entries, None when it is not one). Only reads: safe on every rank of a process group.
    """
    if folder.exists() and not folder.is_dir():
        raise OutputRefused(
            f"{folder} is a file, not a folder; `vqtok {verb}` writes a folder: pass --out a folder path."
        )
    if not folder.is_dir():
        return []
    marker = read_marker(folder)
    if marker is None:
        if not [p for p in folder.iterdir() if not _bookkeeping(p.name)]:
            return []
        recognise = legacy or _before_markers(verb)
        known = recognise(folder) if recognise is not None else None
        if known is not None:
            return known
        raise OutputRefused(
            f"{folder} already exists and was not written by vqtok (it has no {MARKER_NAME}); nothing in it was "
            "changed. Pass --out a new or empty folder."
        )
    made_by, files = marker
    if made_by != verb and _is_run(made_by) and not _is_run(verb):
        raise OutputRefused(
            f"{folder} holds a training run (`vqtok {made_by}`), which `vqtok {verb}` never replaces, not even with "
            "--overwrite; pass --out another folder (a new one inside the run is fine)."
        )
    if made_by != verb and not overwrite:
        raise OutputRefused(
            f"{folder} holds the output of `vqtok {made_by}`; pass --overwrite to replace it (only the files vqtok "
            "wrote are removed), or --out another folder."
        )
    return files


# What the verbs wrote before folders had markers: a folder holding one of the signs (a file, and text it
# contains) is that verb's output, and its entries matching the patterns are what it wrote (a user's
# thesis.txt beside them is not). Training runs: recipes.engine.checkpoint.legacy_run.
_BEFORE_MARKERS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "tokenize": ((("meta.json", "tokenizers-vq/code-corpus"),), ("meta.json", "config.yaml", "*.npy", "*.jsonl")),
    "decompress": ((("images.npy", ""), ("utterances.jsonl", "")), ("*.npy", "*.png", "*.wav", "utterances.jsonl")),
    "reconstruct": ((("reconstructions.json", ""), ("figures.json", "log_mel")),
                    ("config.yaml", "reconstructions.*", "figures.json", "*.png", "*.wav", "*.jsonl")),
    "sample": ((("samples.json", ""),), ("config.yaml", "samples.*", "*.npy", "*.png", "*.wav")),
    "rd": ((("rd.json", ""),), ("rd.json", "rd.png")),
    "phones": ((("figures.json", "mapping_accuracy"),), ("figures.json", "confusion.png")),
    "report": ((("index.html", "vqtok report"),), ("index.html", "*.png", "*.wav", "audio", "spectrograms")),
    "bpe": ((("unit_bpe.model", ""),), ("unit_bpe.model", "figures.json", "config.yaml", "prior_*")),
}  # fmt: skip


def _before_markers(verb: str) -> Callable[[Path], list[str] | None] | None:
    """Recognises ``verb``'s folders written before markers (see ``_BEFORE_MARKERS``); None for verbs without any."""
    if verb not in _BEFORE_MARKERS:
        return None
    signs, patterns = _BEFORE_MARKERS[verb]

    def entries(folder: Path) -> list[str] | None:
        for name, text in signs:
            try:
                found = (folder / name).is_file() and text in (folder / name).read_text(errors="replace")[:100_000]
            except OSError:
                found = False
            if found:
                return sorted(p.name for p in folder.iterdir() if any(fnmatch.fnmatchcase(p.name, x) for x in patterns))
        return None

    return entries


def _is_run(verb: str) -> bool:
    """Whether ``verb`` trains (its folder holds a training run: hours of work that no other verb's output replaces)."""
    return verb.startswith("train-")


class FolderLock:
    """An advisory lock on a folder: ``flock`` on ``.vqtok.lock`` inside it, which holds the holder's pid.

    The kernel drops the lock when the process ends, however it ends (SIGKILL included), so a lock file
    that a dead process left behind is free and simply taken over; the file is removed on release.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputRefused` naming the folder (and the holder's pid)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise OutputRefused(
                    f"{self.folder} is being written by another vqtok process{pid}; wait for it to finish, or pass "
                    "--out another folder."
                ) from None
            # The last holder removes the file on release: when the file we locked is no longer the one at the
            # path, someone may lock the new one, so lock again.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        set_umask_mode(self.path)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before unlocking: whoever opened this file meanwhile sees it gone and retries
        os.close(self._fd)
        self._fd = None


class OutputFolder:
    """A folder a verb writes, claimed for the block: checked, locked, and its marker kept up to date.

    Two ways to write it:

    - :meth:`staging`: build the outputs in a temporary folder inside it, published when the block
      succeeds (the entries of the previous output removed, the new ones renamed in, ``last`` last); a
      failure leaves the folder as it was. Paths in results come from :meth:`final`.
    - :meth:`begin` then plain writes: for a folder filled as the work goes (a training run).

    Args:
        path: the folder; made when it does not exist (and removed again when it stays empty).
        verb: the verb that writes it, recorded in the marker.
        overwrite: replace the output of another verb (``--overwrite``).
        legacy: recognises this verb's folders from before markers; see :func:`check_folder`.
        lock: lock the folder (False on ranks other than 0, which never write).
    """

    def __init__(self, path: str | os.PathLike[str], verb: str, *, overwrite: bool = False,
                 legacy: Callable[[Path], list[str] | None] | None = None, lock: bool = True) -> None:  # fmt: skip
        self.path = Path(path)
        self.verb = verb
        self.overwrite = overwrite
        self.legacy = legacy
        self.previous = check_folder(self.path, verb, overwrite=overwrite, legacy=legacy)
        self._lock = FolderLock(self.path) if lock else None
        self._created = self._held = False

    def __enter__(self) -> OutputFolder:
        return self.claim()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def claim(self) -> OutputFolder:
        """Make the folder if need be and lock it (again nothing when this object holds it already)."""
        if self._lock is None or self._held:
            return self
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
            # Again under the lock: another process may have written the folder since the first look.
            self.previous = check_folder(self.path, self.verb, overwrite=self.overwrite, legacy=self.legacy)
        except BaseException:
            self._lock.release()
            self._remove_if_empty()
            raise
        self._held = True
        return self

    def release(self) -> None:
        """Unlock; a folder made by :meth:`claim` that stayed empty is removed."""
        if self._lock is not None and self._held:
            self._lock.release()
            self._held = False
            self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def final(self, value: Any, staging: Path) -> Any:
        """``value`` with paths (strings or ``Path``s, in lists and dicts too) under ``staging`` moved to the folder."""
        if isinstance(value, dict):
            return {k: self.final(v, staging) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.final(v, staging) for v in value)
        if isinstance(value, str | Path):
            try:
                moved = self.path / Path(value).relative_to(staging)
            except ValueError:
                return value
            return moved if isinstance(value, Path) else str(moved)
        return value

    @contextlib.contextmanager
    def staging(self, last: Iterable[str] = ()) -> Iterator[Path]:
        """Yield an empty temporary folder inside this one; on success its entries replace the previous output.

        ``last``: entries published last and removed first (a corpus's ``meta.json``), so that a reader
        finds the old output, none, or the new one, never a mixture.
        """
        for stale in self.path.glob(f"{_STAGING_PREFIX}*{_STAGING_SUFFIX}"):  # a killed writer's (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, suffix=_STAGING_SUFFIX, dir=self.path))
        set_umask_mode(tmp)  # mkdtemp makes it private; the published entries follow the umask
        try:
            yield tmp
            self._publish(tmp, set(last))
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def _publish(self, tmp: Path, last: set[str]) -> None:
        for file in tmp.rglob("*"):
            if file.is_file() and not file.is_symlink():
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
        new = sorted(p.name for p in tmp.iterdir())
        foreign = [n for n in new if n not in self.previous and os.path.lexists(self.path / n)]
        if foreign:
            raise OutputRefused(
                f"{self.path / foreign[0]} was not written by vqtok and would be replaced; nothing was changed. Move "
                "it away, or pass --out another folder."
            )
        write_marker(self.path, self.verb, [*self.previous, *new])  # first: whatever is there of ours is listed
        for name in sorted(self.previous, key=lambda n: n not in last):
            _remove(self.path / name)
        for name in sorted(new, key=lambda n: n in last):
            os.replace(tmp / name, self.path / name)
        write_marker(self.path, self.verb, new)
        self.previous = new

    def begin(self, entries: Iterable[str], *, replace: bool) -> None:
        """Record ``entries`` as this verb's before they are written; ``replace``: remove the previous output first.

        Without ``replace`` the previous entries stay and stay listed (a resumed run continues them).
        """
        kept = [] if replace else self.previous
        write_marker(self.path, self.verb, [*self.previous, *entries])
        if replace:
            for name in self.previous:
                _remove(self.path / name)
        self.previous = _plain_names([*kept, *entries])
        write_marker(self.path, self.verb, self.previous)


# ---------------------------------------------------------------------------------------------
# Single files


def check_output_file(path: Path, verb: str, *, overwrite: bool, recognise: Callable[[Path], bool], what: str) -> None:
    """Raise :class:`OutputRefused` unless ``verb`` may write the file ``path``.

    A new path is fine; an existing file needs ``overwrite`` and must be ``what`` by ``recognise`` (the
    kind of file this verb writes), so that ``--overwrite`` never replaces a file of another kind.
    """
    if path.is_dir():
        raise OutputRefused(f"{path} is a folder; `vqtok {verb}` writes one file: pass --out a file path.")
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise OutputRefused(f"{path} already exists; pass --overwrite to replace it, or --out another file.")
    if path.is_symlink() or not path.is_file() or not recognise(path):
        raise OutputRefused(
            f"{path} is not {what}, so --overwrite leaves it as it is (it replaces only files that `vqtok {verb}` "
            "writes); pass --out another file."
        )


def figures_file(out: str | None, verb: str, overwrite: bool) -> Path | None:
    """The JSON file of figures that ``out`` names (``evaluate --out``, ``cas --out``), checked; None when unset.

    Call it before the work, so that a refused path costs nothing; :func:`write_figures_file` writes it.
    """
    if not out:
        return None
    path = Path(out).expanduser()
    check_output_file(path, verb, overwrite=overwrite, recognise=is_figures_json, what="a JSON file of figures")
    return path


def write_figures_file(path: Path | None, verb: str, figures: dict[str, Any], overwrite: bool) -> None:
    """Write ``figures`` to ``path`` (from :func:`figures_file`; nothing when None), checked again first."""
    if path is not None:
        check_output_file(path, verb, overwrite=overwrite, recognise=is_figures_json, what="a JSON file of figures")
        atomic_write_json(path, figures)


def is_figures_json(path: Path) -> bool:
    """Whether ``path`` holds a JSON object exactly as vqtok writes one (two-space indents, sorted keys)."""
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(value, dict) and text == json.dumps(value, indent=2, sort_keys=True) + "\n"


def is_code_file(path: Path) -> bool:
    """Whether ``path`` starts like a code file of ``vqtok compress`` (its magic bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def is_wav(path: Path) -> bool:
    """Whether ``path`` starts like a WAV file (``RIFF....WAVE``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
