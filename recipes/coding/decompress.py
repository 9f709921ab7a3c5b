"""``vqtok decompress``: a code file → the exact codes → images, with the tokenizer and prior it was made with.

Dimension legend: ``n`` images, ``c``/``h``/``w`` image channels and size.

The header names the tokenizer and prior by hash; other ones are refused before anything is
decoded. The codes come back bit-exact (checked against the digest the header holds) and are
decoded to images. The output directory (``--out``, default the file's name without ``.vqc``) holds
``codes_level{l}.npy``, ``labels.npy`` (a conditional prior), ``images.npy`` (uint8 ``(n, c, h, w)``)
and, with ``decompress.png``, one PNG per image; it appears complete or not at all.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from modalities.image import ImageCodes, to_uint8
from recipes.coding.common import RateResult, check_layout, decode_levels, model_digest
from recipes.coding.config import ImageCodingConfig
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode
from recipes.image.common import open_tokenizer, setup_runtime
from recipes.priors.common import open_prior
from tokenizers_vq.entropy import read_code_file
from tokenizers_vq.io import atomic_directory


class DecompressResult(RateResult):
    """Where the decoded data went and what it holds."""

    def format(self) -> str:
        return format_figures(self.to_dict(), title="decompress")


def save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def run(cfg: ImageCodingConfig) -> DecompressResult:
    """Decode the code file ``cfg.decompress.input`` with ``cfg.tokenizer`` and ``cfg.prior``."""
    if cfg.decompress.input is None:
        raise ValueError("decompress needs a code file: pass --input FILE (decompress.input=FILE).")
    source = Path(cfg.decompress.input).expanduser()
    header, payload = read_code_file(source)
    modality = header.extra.get("modality")
    if modality != "image":
        raise ValueError(f"{source} holds {modality} codes; decompress it with a {modality} preset (--config).")
    device = setup_runtime(cfg)
    model, tokenizer_dir = open_tokenizer(cfg.tokenizer, device, "decompress")
    prior, prior_dir = open_prior(cfg, device, "decompress")
    header.check_identity(model_digest(tokenizer_dir), model_digest(prior_dir))
    check_layout(prior, header.shapes, header.codebook_sizes, f"the file {source.name}")
    start = time.perf_counter()
    levels, labels = decode_levels(prior, header, payload)
    seconds = time.perf_counter() - start
    with evaluation_mode(model):
        images = [to_uint8(model.decode(ImageCodes([g[s : s + 256].to(device) for g in levels]))).cpu()
                  for s in range(0, header.num_items, 256)]  # fmt: skip
    array = np.concatenate([i.numpy() for i in images])
    out = Path(cfg.out).expanduser() if cfg.out else source.with_suffix("")
    with atomic_directory(out) as tmp:
        for i, grid in enumerate(levels):
            save_array(tmp / f"codes_level{i}.npy", grid.numpy())
        if labels is not None:
            save_array(tmp / "labels.npy", labels.numpy())
        save_array(tmp / "images.npy", array)
        if cfg.decompress.png:
            width = len(str(max(len(array) - 1, 0)))
            for i, image in enumerate(array):
                Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(
                    tmp / f"{i:0{width}d}.png"
                )
    figures = {"items": header.num_items, "file_bytes": source.stat().st_size, "decode_seconds": seconds,
               "image_shape": list(array.shape[1:])}  # fmt: skip
    return DecompressResult(str(out), figures)
