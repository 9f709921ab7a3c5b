"""``vqtok push MODEL_DIR --repo org/name``: publish a tokenizer or prior folder on the Hugging Face Hub with a model card.

The card (``README.md``, written into the folder unless it holds a card of its own) says what the
model is, the data it was trained on, the figures its run measured and how to load it; see
:func:`tokenizers_vq.hub.push_to_hub`. Authentication is huggingface_hub's (``HF_TOKEN`` or
``huggingface-cli login``). Any verb that takes ``--tokenizer`` or ``--prior`` then takes the repo id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.engine.config import RunConfig
from recipes.engine.results import Figures
from tokenizers_vq.hub import REPO_ID, push_to_hub


@dataclass
class PushConfig(RunConfig):
    """What to publish and where."""

    modality: str = "hub"
    name: str = "push"
    model: str | None = None  # the folder to publish (a run's tokenizer/ or prior/ folder; the positional MODEL_DIR)
    repo: str | None = None  # the Hub repository, "namespace/name"
    private: bool = False  # create the repository as private
    revision: str | None = None  # a branch to push to; null: main
    license: str = "apache-2.0"  # the licence the model card states

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.repo is not None and not REPO_ID.match(self.repo):
            raise ValueError(f"repo must read 'namespace/name' (letters, digits, '-', '_', '.'); got {self.repo!r}.")


def run(cfg: PushConfig) -> Figures:
    """Publish ``cfg.model`` as ``cfg.repo``."""
    if cfg.model is None or cfg.repo is None:
        raise ValueError("push needs a model folder and a repository: vqtok push MODEL_DIR --repo namespace/name.")
    folder = Path(cfg.model).expanduser()
    url = push_to_hub(folder, cfg.repo, private=cfg.private, revision=cfg.revision, license=cfg.license)
    return Figures("push", {"model": str(folder), "repo": cfg.repo}, {"commit_url": url})
