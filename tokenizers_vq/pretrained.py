"""Model directories: ``config.json`` plus ``model.safetensors``, written atomically and read with checks.

The layout follows huggingface_hub's model repositories, so a directory can be pushed to or
downloaded from the Hub unchanged (``huggingface_hub.snapshot_download`` gives a local directory).
``config.json`` holds ``format_version``, the model ``kind`` (e.g. ``"image-tokenizer"``) and the
model's own configuration under ``"config"``, and optional further keys (a tokenizer's ``"data"``: the
data section of the run that trained it).

A model's identity is :func:`content_identity`: a SHA-256 over its config and its tensors (names,
dtypes, shapes and values) in a canonical order, so the same weights saved twice, by any process, have
the same identity, and an edited config has another. Artifacts made from a model record it.

``config.json`` also holds ``tensors_sha256``, the digest of the tensors alone (:func:`tensors_digest`);
loading checks it, so weights whose bytes were damaged are refused instead of loading wrong. Folders
saved before it was recorded still load. Transformers directories (the transformer priors) carry the
same key, and :func:`directory_identity` reads them too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tokenizers_vq.io import atomic_path, atomic_write_json, read_json, sha256_file

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def check_known_fields(config_cls: type, values: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming any key of ``values`` that is not a field of the dataclass ``config_cls``."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} field(s) {unknown}; known fields are {sorted(known)}.")


DIGEST_KEY = "tensors_sha256"  # in config.json: the digest of the tensors, checked when they are loaded
# Keys of a transformers config.json that say who saved it, not what the model is.
_SAVER_KEYS = ("transformers_version", "_name_or_path", DIGEST_KEY)


def _hash_tensors(digest: Any, state_dict: Mapping[str, torch.Tensor]) -> Any:
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"\n{name}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest


def content_identity(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a model's ``config`` (canonical JSON) and tensors (sorted by name: name, dtype, shape, bytes)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode())
    return _hash_tensors(digest, state_dict).hexdigest()


def tensors_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of the tensors alone (as :func:`content_identity` hashes them): what ``config.json`` stores
    under ``tensors_sha256`` to detect damaged weights."""
    return _hash_tensors(hashlib.sha256(b"tensors"), state_dict).hexdigest()


def check_tensors(path: str | os.PathLike[str], recorded: Any, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``ValueError`` when ``state_dict`` (read from the weights file ``path``) is not what the recorded
    :func:`tensors_digest` names; a None ``recorded`` (a folder saved before the digest) passes."""
    if recorded is None:
        return
    if recorded != tensors_digest(state_dict):
        raise ValueError(
            f"{path} is damaged: its tensors do not match the {DIGEST_KEY} recorded in {CONFIG_NAME}. "
            "Re-save the model from its training run (or re-download it)."
        )


def check_weights_file(directory: str | os.PathLike[str]) -> None:
    """Raise ``ValueError`` when the weights in ``directory`` are not those its config.json's ``tensors_sha256``
    names (for folders that other libraries load, such as transformers directories)."""
    directory = Path(directory)
    meta = read_json(directory / CONFIG_NAME, "the model directory")
    recorded = meta.get(DIGEST_KEY) if isinstance(meta, dict) else None
    if recorded is not None and (directory / WEIGHTS_NAME).is_file():
        check_tensors(directory / WEIGHTS_NAME, recorded, _read_weights(directory / WEIGHTS_NAME))


def directory_identity(directory: str | os.PathLike[str], kind: str | None = None) -> str:
    """:func:`content_identity` of the model saved in ``directory`` (damaged weights raise ``ValueError``).

    A model directory of this package is identified by its ``config`` and tensors; a transformers directory
    (``model_type`` in its config.json, e.g. a transformer prior) by its whole config.json, less the keys that
    say who saved it, and its tensors.
    """
    directory = Path(directory)
    meta = read_json(directory / CONFIG_NAME, "the model directory") if (directory / CONFIG_NAME).is_file() else None
    if isinstance(meta, dict) and "model_type" in meta and "format_version" not in meta and kind is None:
        return _cached_identity(directory, _transformers_identity)
    return _cached_identity(directory, lambda d: _own_identity(d, kind))


def _own_identity(directory: Path, kind: str | None) -> str:
    meta = read_model_config(directory, kind)
    config, state = load_model_directory(directory, str(meta["kind"]))
    return content_identity(config, state)


def _transformers_identity(directory: Path) -> str:
    meta = read_json(directory / CONFIG_NAME, "the model directory")
    state = _read_weights(directory / WEIGHTS_NAME)
    check_tensors(directory / WEIGHTS_NAME, meta.get(DIGEST_KEY), state)
    return content_identity({k: v for k, v in meta.items() if k not in _SAVER_KEYS}, state)


_IDENTITIES: dict[tuple, str] = {}  # (folder, its files' stat) → identity: each verb asks several times


def _cached_identity(directory: Path, compute: Any) -> str:
    stamp = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            st = (directory / name).stat()
            stamp.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append(None)
    key = (str(directory.resolve()), *stamp)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = compute(directory)
    return _IDENTITIES[key]


def legacy_identities(directory: str | os.PathLike[str]) -> set[str]:
    """How artifacts of earlier formats named the model in ``directory``: the SHA-256 of its weights file (code
    corpora of format 1), and a SHA-256 of the SHA-256s of its config.json and weights file (code files of
    format 1)."""
    directory = Path(directory)
    hashes = {}
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            return set()
        hashes[name] = sha256_file(directory / name)
    files = hashlib.sha256("".join(f"{name}\0{h}\n" for name, h in hashes.items()).encode()).hexdigest()
    return {hashes[WEIGHTS_NAME], files}


def matches_identity(recorded: str | None, directory: str | os.PathLike[str]) -> bool:
    """Whether ``recorded`` names the model in ``directory``: its content identity, or (as artifacts of format
    version 1 recorded it) one of its :func:`legacy_identities`. Damaged weights raise ``ValueError``."""
    if not recorded or not isinstance(recorded, str):
        return False
    if recorded == directory_identity(directory):
        return True
    return recorded in legacy_identities(directory)


def save_model_directory(
    directory: str | os.PathLike[str],
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` and ``config`` (and ``extra`` top-level keys) into ``directory``; returns its path.

    Each file is replaced atomically; the weights go first, so a directory whose config.json is
    new never pairs it with half-written weights.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"cannot save a model into {directory}: it exists and is not a directory.")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "kind": kind})
    meta = {**(extra or {}), "format_version": FORMAT_VERSION, "kind": kind, "config": config,
            DIGEST_KEY: tensors_digest(tensors)}  # fmt: skip
    atomic_write_json(directory / CONFIG_NAME, meta)
    return directory


def read_model_config(directory: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """The checked ``config.json`` of a model directory (of ``kind``, when given) as a dict.

    Raises ``FileNotFoundError`` for a missing directory or file and ``ValueError`` for a directory
    of another kind or format version, or an unreadable config.
    """
    directory = Path(directory)
    what = kind or "model"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no {what} directory at {directory}: it does not exist or is not a directory. Pass the folder "
            f"that save_pretrained wrote (it holds {CONFIG_NAME} and {WEIGHTS_NAME}); for a Hugging Face Hub "
            "repository download it first with huggingface_hub.snapshot_download(repo_id)."
        )
    config_path = directory / CONFIG_NAME
    for path in (config_path, directory / WEIGHTS_NAME):
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a complete {what} directory: {path.name} is missing.")
    meta = read_json(config_path, "the directory")
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{config_path} must be a JSON object with a 'config' object inside.")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{directory} holds a {meta.get('kind')!r}, not a {kind!r}; load it with the matching class.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{config_path} has format_version {version!r}; this version of tokenizers-vq reads "
            f"format_version {FORMAT_VERSION}. Re-save the model with a matching version of the package."
        )
    return meta


def load_model_directory(
    directory: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read the ``config`` dict and the state dict (on ``map_location``) saved by :func:`save_model_directory`.

    Raises as :func:`read_model_config` does, and ``ValueError`` for unreadable weights or weights that are
    not the ones saved (their digest in ``config.json`` differs).
    """
    meta = read_model_config(directory, kind)
    weights_path = Path(directory) / WEIGHTS_NAME
    state = _read_weights(weights_path, map_location)
    check_tensors(weights_path, meta.get(DIGEST_KEY), state)
    return meta["config"], state


def _read_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(torch.device(map_location)))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} cannot be read as safetensors ({err}); the directory is damaged.") from err
