"""``vqtok reconstruct``: round-trip held-out items through a tokenizer, for people to look at or listen to.

Images: ``reconstructions.png`` (originals above reconstructions) and ``reconstructions.json`` (MSE,
PSNR, SSIM of those images, their indices). Speech: per utterance the original, its vocoder ceiling,
its decoding from codes and a voice conversion as WAV files, ``reconstructions.png`` (log-mel
spectrograms, originals above reconstructions) and ``figures.json``. Both get ``config.yaml``. The output directory is ``out``, default ``<tokenizer dir>/../reconstructions``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recipes.engine.artifacts import open_tokenizer
from recipes.engine.config import save_config
from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_figures
from recipes.engine.runtime import autocast, evaluation_mode, setup_runtime
from tokenizers_vq.io import atomic_write_json


@dataclass
class ReconstructResult:
    """Where the outputs went and how close each reconstruction is (the modality's figures)."""

    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.figures

    def format(self) -> str:
        shown = {k: (len(v) if k in ("files", "indices") else v) for k, v in self.figures.items()}
        return format_figures(shown, title="reconstruct")


def run(cfg: Any, *, overwrite: bool = False) -> ReconstructResult:
    """Write the reconstructions described in the module docstring, into an output folder of
    :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote)."""
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "reconstruct")
    cfg = replace(cfg, model=model.config)
    out = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.resolve().parent / "reconstructions"
    folder = OutputFolder(out, "reconstruct", overwrite=overwrite)
    with folder, folder.staging() as tmp:
        with evaluation_mode(model), autocast(cfg.precision, device):
            figures = folder.final(modality.reconstruct(model, cfg, tmp), tmp)  # paths where the files will be
        figures = {**figures, "tokenizer": str(tokenizer_dir)}
        atomic_write_json(tmp / modality.reconstruction_figures, figures)
        save_config(cfg, tmp / "config.yaml")
    return ReconstructResult(figures)
