"""Files on disk: atomic writes, whole directories published atomically, JSON-lines logs, hashes.

A reader never sees a half-written file, and a crash never destroys the old one. A single file goes
through :func:`atomic_path` (temporary file, fsync, rename); a directory that must appear complete or
not at all (a code corpus) is built under a temporary name beside its target and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def set_umask_mode(path: str | os.PathLike[str]) -> None:
    """Give a file (or folder) the mode a new one gets under the umask (0644, 0755 under 022), whatever its writer chose.

    safetensors writes its files 0600 (and so does transformers' ``save_pretrained`` through it), mkstemp and
    mkdtemp make private ones: another user of a shared machine could list a model folder but not read it.
    """
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    >>> with atomic_path("model.safetensors") as tmp:   # doctest: +SKIP
    ...     save_file(tensors, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # After the writer, not before: mkstemp makes 0600, and writers that replace the file they are given
        # (safetensors' save_file does) make it 0600 again. Published files get the umask's mode.
        set_umask_mode(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# Names of the temporaries made here and by tokenizers_vq.io.atomic_path (".NAME.XXXX.tmp").
_TMP_DIR_SUFFIX = ".tmpdir"
_TMP_FILE_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``path`` once the block succeeds.

    On success every file is fsynced, an existing ``path`` is moved aside, the new directory is
    renamed onto ``path`` and the old one deleted; on an exception the temporary directory is
    removed and ``path`` is untouched. A reader never sees a partial directory: it finds the old one,
    the complete new one, or (for the instant between the two renames) none.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot write a directory at {path}: a file of that name exists.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=_TMP_DIR_SUFFIX, dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the published directory follows the umask
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=_TMP_DIR_SUFFIX, dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of the temporaries made here or by :func:`atomic_path` (``.NAME.XXXX.tmp``, ``.tmpdir``)."""
    return name.startswith(".") and name.endswith((_TMP_FILE_SUFFIX, _TMP_DIR_SUFFIX)) and name.count(".") >= 3


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries that a killed process left in ``directory`` (recursively); returns them.

    Only names this module and :func:`tokenizers_vq.io.atomic_path` create (``.NAME.XXXX.tmp``,
    ``.NAME.XXXX.tmpdir``) are touched. Call it only when no other process writes there.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.rglob(".*") if is_temporary(p.name)]
    for p in sorted(stale, key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
    return stale


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with one JSON object per line."""
    atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON value in ``path``; ``ValueError`` saying ``what`` is damaged when the file is not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {what} is damaged.") from err


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; an absent file has none."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
