"""``vqtok decompress``: a code file → the exact codes → images or speech, with the models it was made with.

The header names the tokenizer and the entropy model by hash: a file coded with a prior needs that
prior (``--prior``), one coded with code frequencies carries them and takes no prior; another
tokenizer or prior is refused before anything is decoded, and the decoded codes are checked against
the header's digest. The output directory (``--out``, default the file's path without ``.vqc``)
appears complete or not at all. It holds the codes as a code corpus does (:mod:`tokenizers_vq.corpus`):
``codes_level{l}.npy`` (images ``(n, *grid_l)``; speech ``(N,)`` frames end to end with ``offsets.npy``
``(U + 1,)`` and ``utterances.jsonl``, each one's name and frames), ``labels.npy`` (a conditional
prior's class labels), and what the modality decodes: images ``images.npy`` (uint8 ``(n, c, h, w)``)
and, with ``decompress.png``, one PNG per image; speech, with ``decompress.wav`` or
``decompress.speaker``, one WAV per utterance in that training speaker's voice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities.base import ItemCodes
from priors.code_file import (
    UNIGRAM,
    check_codebooks,
    check_layout,
    check_models,
    decode_levels,
    decode_unigram,
    read_code_file,
)
from recipes.coding.compress import RateResult, open_prior
from recipes.engine.artifacts import open_tokenizer
from recipes.engine.outputs import OutputFolder
from recipes.engine.runtime import evaluation_mode, setup_runtime
from tokenizers_vq.corpus import save_array, trim_at_end
from tokenizers_vq.io import write_jsonl


class DecompressResult(RateResult):
    """Where the decoded data went and what it holds."""

    verb = "decompress"


def output_stems(names: list[str] | None, n: int) -> list[str]:
    """File names (without suffix) of the decoded items: the input files' stems when they are distinct, else numbers."""
    stems = [Path(name).stem for name in names or []]
    if len(stems) == n and len(set(stems)) == n:
        return stems
    width = len(str(max(n - 1, 0)))
    return [f"{i:0{width}d}" for i in range(n)]


def save_codes(directory: Path, codes: ItemCodes, labels: torch.Tensor | None, names: list[str]) -> dict[str, Any]:
    """The codes (and labels) as a code corpus holds them; returns the figures they add."""
    if labels is not None:
        save_array(directory / "labels.npy", labels.numpy())
    if codes.lengths is None:
        for i, grid in enumerate(codes.levels):
            save_array(directory / f"codes_level{i}.npy", grid.numpy())
        return {}
    for i, rows in enumerate(codes.levels):
        frames = torch.cat([row[:n] for row, n in zip(rows, codes.lengths, strict=True)])  # (N,)
        save_array(directory / f"codes_level{i}.npy", frames.numpy())
    save_array(directory / "offsets.npy", np.concatenate([[0], np.cumsum(codes.lengths)]).astype(np.int64))
    rows = [{"name": name, "frames": n} for name, n in zip(names, codes.lengths, strict=True)]
    write_jsonl(directory / "utterances.jsonl", rows)
    return {"frames": sum(codes.lengths)}


def run(cfg: Any, *, overwrite: bool = False) -> DecompressResult:
    """Decode the code file ``cfg.decompress.input`` with ``cfg.tokenizer`` (and ``cfg.prior`` when it needs one).

    The output folder is new or one that ``decompress`` wrote (``overwrite``: or another verb); its previous
    output is replaced whole, and nothing else in it (:mod:`recipes.engine.outputs`).
    """
    if cfg.decompress.input is None:
        raise ValueError("decompress needs a code file: pass --input FILE (decompress.input=FILE).")
    source = Path(cfg.decompress.input).expanduser()
    out = Path(cfg.out).expanduser() if cfg.out else source.with_suffix("")
    folder = OutputFolder(out, "decompress", overwrite=overwrite)  # checked before any work
    header, payload = read_code_file(source)
    kind = header.extra.get("modality", "image")
    if kind != cfg.modality:
        raise ValueError(f"{source} holds {kind} codes; decompress it with a {kind} preset (--config).")
    device = setup_runtime(cfg)
    modality, model, tokenizer_dir = open_tokenizer(cfg, device, "decompress")
    modality.check_output(model, cfg.decompress)
    rate_model = header.extra.get("rate_model", "prior")
    start = time.perf_counter()
    if rate_model == UNIGRAM:
        if cfg.prior is not None:
            raise ValueError(f"{source.name} was coded with code frequencies, not a prior; drop --prior.")
        check_models(header, tokenizer_dir, None)
        check_codebooks(header, model.codebook_sizes)
        levels, labels = decode_unigram(header, payload), None
    else:
        if cfg.prior is None:
            raise ValueError(
                f"{source.name} was coded with a prior (sha256 {header.model_sha256[:16]}…): pass --prior DIR, "
                "the prior it was compressed with."
            )
        prior, prior_dir = open_prior(cfg, device, tokenizer_dir)
        check_models(header, tokenizer_dir, prior_dir)
        check_layout(prior, header.shapes, header.codebook_sizes, f"the file {source.name}", header.num_classes)
        levels, labels = decode_levels(prior, header, payload)
    seconds = time.perf_counter() - start
    end = header.end_code
    lengths = None if end is None else [len(row) for row in trim_at_end(levels[0], end)]
    sizes = header.codebook_sizes if end is None else [end] * len(levels)
    codes = ItemCodes(levels, sizes, lengths)
    names = header.extra.get("names")
    stems = output_stems(names, header.num_items)
    figures = {"items": header.num_items, "file_bytes": source.stat().st_size, "rate_model": rate_model,
               "decode_seconds": seconds}  # fmt: skip
    with evaluation_mode(model), folder, folder.staging() as tmp:
        figures.update(save_codes(tmp, codes, labels, names or stems))
        figures.update(modality.write_outputs(model, codes, stems, tmp, cfg.decompress))
    return DecompressResult(str(out), figures)
