"""Tokenizer directories: ``config.json`` plus ``model.safetensors``, written atomically and read with checks.

The layout follows huggingface_hub's model repositories, so a directory can be pushed to or
downloaded from the Hub unchanged (``huggingface_hub.snapshot_download`` gives a local directory).
``config.json`` holds ``format_version``, the model ``kind`` (e.g. ``"image-tokenizer"``) and the
model's own configuration under ``"config"``.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tokenizers_vq.io import atomic_path, atomic_write_json

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def check_known_fields(config_cls: type, values: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming any key of ``values`` that is not a field of the dataclass ``config_cls``."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} field(s) {unknown}; known fields are {sorted(known)}.")


def save_model_directory(
    directory: str | os.PathLike[str], kind: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor]
) -> Path:
    """Write ``state_dict`` and ``config`` into ``directory`` (created if needed); returns its path.

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
    atomic_write_json(directory / CONFIG_NAME, {"format_version": FORMAT_VERSION, "kind": kind, "config": config})
    return directory


def load_model_directory(
    directory: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read the ``config`` dict and the state dict (on ``map_location``) saved by :func:`save_model_directory`.

    Raises ``FileNotFoundError`` for a missing directory or file and ``ValueError`` for a directory
    of another kind or format version, or unreadable files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"no {kind} directory at {directory}: it does not exist or is not a directory. Pass the folder "
            f"that save_pretrained wrote (it holds {CONFIG_NAME} and {WEIGHTS_NAME}); for a Hugging Face Hub "
            "repository download it first with huggingface_hub.snapshot_download(repo_id)."
        )
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a complete {kind} directory: {path.name} is missing.")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path} is not valid JSON ({err}); the directory is damaged.") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{config_path} must be a JSON object with a 'config' object inside.")
    if meta.get("kind") != kind:
        raise ValueError(f"{directory} holds a {meta.get('kind')!r}, not a {kind!r}; load it with the matching class.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{config_path} has format_version {version!r}; this version of tokenizers-vq reads "
            f"format_version {FORMAT_VERSION}. Re-save the model with a matching version of the package."
        )
    try:
        state = load_file(str(weights_path), device=str(torch.device(map_location)))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights_path} cannot be read as safetensors ({err}); the directory is damaged.") from err
    return meta["config"], state
