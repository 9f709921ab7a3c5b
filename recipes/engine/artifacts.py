"""Opening the artifacts a verb is given (a tokenizer today), checked against the config and learning what they are from themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modalities.base import Modality, get_modality, load_tokenizer, tokenizer_modality
from tokenizers_vq.tokenizer import Tokenizer


def open_tokenizer(cfg: Any, device: torch.device, verb: str) -> tuple[Modality, Tokenizer, Path]:
    """The modality plug-in, the tokenizer at ``cfg.tokenizer`` (eval mode, on ``device``, with the run's
    encoding options) and its directory; clear errors when it is missing or of another modality."""
    if cfg.tokenizer is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = Path(cfg.tokenizer).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory {cfg.tokenizer} does not exist; train one with `vqtok train-tokenizer`."
        )
    found = tokenizer_modality(directory)
    if found != cfg.modality:
        raise ValueError(
            f"{directory} holds a {found} tokenizer but the config is for modality {cfg.modality!r}; "
            f"leave out --config (the tokenizer says what it is) or pass a {found} preset."
        )
    modality = get_modality(found)
    model = modality.prepare(load_tokenizer(directory, map_location=device), cfg)
    return modality, model, directory
