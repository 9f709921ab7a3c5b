"""Model directories: ``config.json`` plus ``model.safetensors``, written atomically and read with checks.

The layout follows huggingface_hub's model repositories, so a directory can be pushed to or
downloaded from the Hub unchanged (``huggingface_hub.snapshot_download`` gives a local directory).
``config.json`` holds ``format_version``, the model ``kind`` (e.g. ``"image-tokenizer"``) and the
model's own configuration under ``"config"``, and optional further keys (a tokenizer's ``"data"``: the
data section of the run that trained it).

A model's identity is :func:`content_identity`: a SHA-256 over its config and its tensors (names,
dtypes, shapes and values) in a canonical order, so the same weights saved twice, by any process, have
the same identity, and an edited config has another. Artifacts made from a model record it.
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


def content_identity(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a model's ``config`` (canonical JSON) and tensors (sorted by name: name, dtype, shape, bytes)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"\n{name}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def directory_identity(directory: str | os.PathLike[str], kind: str | None = None) -> str:
    """:func:`content_identity` of the model saved in ``directory``."""
    meta = read_model_config(directory, kind)
    _, state = load_model_directory(directory, str(meta["kind"]))
    return content_identity(meta["config"], state)


def matches_identity(recorded: str | None, directory: str | os.PathLike[str]) -> bool:
    """Whether ``recorded`` names the model in ``directory``: its content identity, or (as artifacts of format
    version 1 recorded it) the SHA-256 of its weights file's bytes."""
    if not recorded:
        return False
    if recorded == directory_identity(directory):
        return True
    return recorded == sha256_file(Path(directory) / WEIGHTS_NAME)


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
    meta = {**(extra or {}), "format_version": FORMAT_VERSION, "kind": kind, "config": config}
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

    Raises as :func:`read_model_config` does, and ``ValueError`` for unreadable weights.
    """
    meta = read_model_config(directory, kind)
    weights_path = Path(directory) / WEIGHTS_NAME
    try:
        state = load_file(str(weights_path), device=str(torch.device(map_location)))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights_path} cannot be read as safetensors ({err}); the directory is damaged.") from err
    return meta["config"], state
