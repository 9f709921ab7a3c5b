"""Models on the Hugging Face Hub: a repo id resolves to a local folder, a folder is published with a model card.

A model directory (``config.json`` + ``model.safetensors``, or a transformers directory for a
transformer prior) is exactly what a Hub model repository holds, so loading by repo id is
``huggingface_hub.snapshot_download`` into its cache (which honours ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` and ``HF_TOKEN``) followed by the usual folder loader. Where a name is both a
local folder and a repo id, the local folder wins.

    >>> tok = ImageTokenizer.from_pretrained("org/fashion-mnist-vqvae", revision="v1")   # doctest: +SKIP
    >>> push_to_hub("runs/fm/tokenizer", "org/fashion-mnist-vqvae")                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tokenizers_vq.io import atomic_write_text, read_jsonl

# "namespace/name": letters, digits, '-', '_', '.', as the Hub allows; one slash, nothing else.
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
CARD_NAME = "README.md"
CARD_MARK = "<!-- model card written by tokenizers-vq -->"  # a card without it is the user's and is kept


def is_repo_id(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` reads as a Hub repo id (``org/name``) and is not an existing local path."""
    text = str(name)
    return bool(REPO_ID.match(text)) and not Path(text).expanduser().exists()


def resolve_model(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """The local folder of a model: ``name_or_path`` itself, or the cached snapshot of a Hub repo id.

    Raises ``FileNotFoundError`` naming the id and the reason when a repo id cannot be fetched (offline
    and not cached, no such repository or revision, no network).
    """
    if not is_repo_id(name_or_path):
        if revision is not None:
            raise ValueError(f"revision={revision!r} is for Hub repo ids; {name_or_path} is a local folder.")
        return Path(name_or_path).expanduser()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return Path(snapshot_download(str(name_or_path), revision=revision, library_name="tokenizers-vq"))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        raise FileNotFoundError(
            f"{name_or_path} is not a local folder, and as a Hub repo id it is not in the cache "
            f"({type(err).__name__}); connect and unset HF_HUB_OFFLINE to download it, or pass a folder."
        ) from err
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{name_or_path} is not a local folder and cannot be fetched from the Hub: {' '.join(str(err).split())}"
        ) from err


def model_card(folder: str | os.PathLike[str], repo_id: str, license: str = "apache-2.0") -> str:
    """A model card for the model in ``folder``: what it is, the data it was trained on, the figures its run
    measured (the last evaluation in ``metrics.jsonl`` beside it), how to load it, and its licence."""
    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    kind = str(meta.get("kind") or meta.get("model_type") or "model")
    data = meta.get("data") or {}
    data_name = data.get("name", "unknown") if isinstance(data, dict) else "unknown"
    evals = [row for row in read_jsonl(folder.parent / "metrics.jsonl") if row.get("kind") == "eval"]
    figures = {k: v for k, v in (evals[-1] if evals else {}).items() if isinstance(v, int | float) and k != "kind"}
    loader = {
        "image-tokenizer": "from modalities.image import ImageTokenizer\nmodel = ImageTokenizer.from_pretrained",
        "speech-tokenizer": "from modalities.speech import SpeechTokenizer\nmodel = SpeechTokenizer.from_pretrained",
    }.get(kind, "from priors import load_prior\nmodel = load_prior")
    lines = [
        "---",
        f"license: {license}",
        "library_name: tokenizers-vq",
        "tags: [vector-quantization, discrete-tokens, " + kind + "]",
        "---",
        CARD_MARK,
        f"# {repo_id}",
        "",
        f"A `{kind}` made with tokenizers-vq: it turns inputs into discrete codes and back"
        if kind.endswith("tokenizer")
        else f"A `{kind}` prior over discrete codes, made with tokenizers-vq.",
        "",
        f"**Data:** `{data_name}`" + (f" (`{json.dumps(data, sort_keys=True)}`)" if data else ""),
        "",
    ]
    if figures:
        lines += [
            "**Measured on held-out data at the end of its training run:**",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(figures.items())]
        lines.append("")
    lines += ["## Use", "", "```python", f'{loader}("{repo_id}")', "```", "", f"Licence: {license}.", ""]
    return "\n".join(lines)


def push_to_hub(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    license: str = "apache-2.0",
    commit_message: str = "Upload model with tokenizers-vq",
    api: Any = None,
) -> str:
    """Publish the model directory ``folder`` as the Hub repository ``repo_id`` with a generated model card.

    The card (``README.md``) is written into ``folder`` unless the folder holds a card of its own. The
    repository is created when missing. ``api`` is a ``huggingface_hub.HfApi`` (the default; tests pass
    their own). Returns the URL of the commit.
    """
    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a model directory (config.json is missing); pass the folder to publish."
        )
    if not REPO_ID.match(repo_id):
        raise ValueError(f"repo id {repo_id!r} must read 'namespace/name' (letters, digits, '-', '_', '.').")
    card = folder / CARD_NAME
    if not card.exists() or CARD_MARK in card.read_text(encoding="utf-8", errors="replace"):
        atomic_write_text(card, model_card(folder, repo_id, license))
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=commit_message,
        ignore_patterns=[".*", "*.tmp"],
    )  # fmt: skip
    return str(getattr(info, "commit_url", info))
