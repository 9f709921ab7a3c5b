"""Opening the artifacts a verb is given (a tokenizer today), checked against the config and learning what they are from themselves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from modalities.base import Modality, get_modality, load_tokenizer, tokenizer_modality
from recipes.engine.config import flatten, peek
from tokenizers_vq.corpus import CodeCorpus
from tokenizers_vq.hub import resolve_model
from tokenizers_vq.pretrained import read_model_config
from tokenizers_vq.tokenizer import Tokenizer


def open_tokenizer(cfg: Any, device: torch.device, verb: str) -> tuple[Modality, Tokenizer, Path]:
    """The modality plug-in, the tokenizer at ``cfg.tokenizer`` (eval mode, on ``device``, with the run's
    encoding options) and its directory; clear errors when it is missing or of another modality."""
    if cfg.tokenizer is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = resolve_model(cfg.tokenizer)  # a folder, or the cached snapshot of a Hub repo id
    if not directory.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory {cfg.tokenizer} does not exist; train one with `vqtok train-tokenizer`."
        )
    found = tokenizer_modality(directory)
    if found != cfg.modality:
        raise ValueError(
            f"{directory} holds {'an' if found[0] in 'aeiou' else 'a'} {found} tokenizer but the config is for modality {cfg.modality!r}; "
            f"leave out --config (the tokenizer says what it is) or pass a {found} preset."
        )
    modality = get_modality(found)
    model = modality.prepare(load_tokenizer(directory, map_location=device), cfg)
    return modality, model, directory


# The preset a tokenizer's modality starts from when a verb is given the tokenizer without --config.
MODALITY_PRESETS = {"image": "image_vqvae", "speech": "speech_fsdd"}


def implied_config(overrides: Sequence[str]) -> tuple[str, list[str]] | None:
    """What a verb given ``tokenizer=DIR`` and no ``--config`` learns from the tokenizer itself.

    Returns the preset of the tokenizer's modality and overrides that set the data section it was
    trained on (recorded in its ``config.json``, or for tokenizers saved before that was recorded, the
    ``config.yaml`` of the run folder around it), or None when no tokenizer folder is named. When the
    overrides name a data set themselves (``data.name`` or ``data.root``), only the modality is taken.
    """
    path = peek(None, overrides, "tokenizer", None)
    if path is None:
        return None
    try:
        directory = resolve_model(str(path))
    except FileNotFoundError:
        return None  # a repo id that cannot be fetched: the recipe reports it
    if not directory.is_dir():
        return None  # nothing to learn from; the recipe reports a missing tokenizer
    modality = tokenizer_modality(directory)
    if any(peek(None, overrides, key, None) is not None for key in ("data.name", "data.root")):
        return MODALITY_PRESETS[modality], []
    data = read_model_config(directory).get("data")
    run_config = directory.parent / "config.yaml"
    if not isinstance(data, dict) and run_config.is_file():
        saved = OmegaConf.to_container(OmegaConf.load(run_config), resolve=True)
        if isinstance(saved, dict) and saved.get("modality", "image") == modality:
            data = saved.get("data")
    keys = flatten({"data": data}) if isinstance(data, dict) else {}
    return MODALITY_PRESETS[modality], [f"{key}={json.dumps(value)}" for key, value in keys.items()]


def corpus_tokenizer(corpus: CodeCorpus, device: torch.device) -> Tokenizer:
    """The tokenizer that made ``corpus`` (its path is in ``meta.json``, relative to the corpus), on ``device``."""
    path = corpus.tokenizer_dir
    if path is None or not path.is_dir():
        raise FileNotFoundError(
            f"the corpus {corpus.directory} was made by the tokenizer at {path}, which no longer exists; "
            "decoding samples needs it."
        )
    return load_tokenizer(path, map_location=device)
