"""``vqtok bpe``: unit BPE over a code corpus, its compression, and a prior's bits per original code with and without it.

Dimension legend: ``n`` codes of one sequence, ``m`` its BPE tokens.

1. The training corpus's code sequences (speech: each utterance's frames; images: each item's codes,
   levels one after another), with ``bpe.dedup`` each run of a repeated code merged into one unit
   first (the deduplicated units of speech-unit language models; durations are then lost).
2. A sentencepiece BPE (or unigram) model over them, one character per code
   (:class:`tokenizers_vq.text.UnitBPE`, exactly invertible), and its codes per token on the held-out
   corpus: the compression.
3. Two transformer priors of the same architecture and training (steps, sequences per batch, learning
   rate), one over the codes and one over the BPE tokens; each sequence reads ``<bos> ids <eos>``.
4. Each prior's held-out NLL, ``<eos>`` included, divided by the held-out sequences' codes: bits per
   original code, one unit for both. For BPE this is the NLL of the one segmentation BPE produces, an
   upper bound on ``-log2 p(codes)`` under that prior (other segmentations of the same codes also get mass).

The output directory (``out``, default ``runs/<name>``) gets ``unit_bpe.model``, ``figures.json``,
``config.yaml``, ``sources.json`` (the corpora and their tokenizer by content identity) and the two priors'
training runs (``prior_codes/``, ``prior_bpe/``: run directories of :func:`recipes.engine.trainer.fit`, started
afresh each time, each with its transformers model directory in ``prior/``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from priors.sequence import build_causal_lm, sequence_nll
from recipes.engine.artifacts import check_same_tokenizer, write_sources
from recipes.engine.checkpoint import RunPaths, run_dir
from recipes.engine.config import save_config
from recipes.engine.outputs import OutputFolder, check_folder
from recipes.engine.parallel import Ranks
from recipes.engine.results import format_figures
from recipes.engine.runtime import resolve_device, seed_everything, set_threads
from recipes.engine.sequence import SequenceTask
from recipes.engine.trainer import adam, fit
from recipes.units.config import BPERecipeConfig
from tokenizers_vq.corpus import code_sequences, open_corpus
from tokenizers_vq.io import atomic_write_json
from tokenizers_vq.text import UnitBPE

PAD, BOS, EOS = 0, 1, 2
FIRST = 3  # id of token 0 (a code, or a BPE piece) in a prior's vocabulary
LN2 = math.log(2.0)


@dataclass
class PriorFigures:
    """One prior of the comparison: over the codes themselves or over their BPE tokens."""

    tokens: str  # "codes" or "bpe"
    vocab_size: int
    parameters: int
    tokens_per_sequence: float  # held-out, <eos> not counted
    train_seconds: float
    train_bits_per_token: float  # mean over the last log interval
    bits_per_token: float  # held-out, <eos> included
    bits_per_code: float  # held-out bits per original code


@dataclass
class BPEResult:
    """Compression of the unit BPE and the two priors' held-out figures."""

    out_dir: str
    corpus: str
    eval_corpus: str
    dedup: bool
    codebook_size: int
    bpe_vocab_size: int
    train_sequences: int
    eval_sequences: int
    codes_per_sequence: float  # held-out, after dedup when on
    codes_per_token: float  # held-out compression
    train_codes_per_token: float
    priors: list[PriorFigures] = field(default_factory=list)

    @property
    def bits_per_code_ratio(self) -> float:
        """Bits per original code with BPE over without (below 1: BPE helps the prior)."""
        by = {p.tokens: p.bits_per_code for p in self.priors}
        return by["bpe"] / by["codes"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bits_per_code_ratio"] = self.bits_per_code_ratio
        return out

    def format(self) -> str:
        return format_figures(self.to_dict(), title="bpe")


def dedup(sequence: np.ndarray) -> np.ndarray:
    """``[5, 5, 5, 2, 2, 5]`` → ``[5, 2, 5]``: each run of one code becomes one unit."""
    if sequence.size == 0:
        return sequence
    return sequence[np.concatenate([[True], sequence[1:] != sequence[:-1]])]


def _train_prior(
    cfg: BPERecipeConfig, paths: RunPaths, sequences: list[list[int]], vocab_size: int, max_length: int,
    device: torch.device,
) -> tuple[torch.nn.Module, float, float]:  # fmt: skip
    """A fresh causal LM fitted to ``sequences`` (``<bos> … <eos>`` id lists) in the run directory ``paths``.

    Returns it, the training seconds and the bits per token of the last log interval.
    """
    seed_everything(cfg.seed)
    model = build_causal_lm(vocab_size, max_length, cfg.model, BOS, EOS, PAD).to(device).train()
    train = replace(cfg.train, batch_size=min(cfg.train.batch_size, len(sequences)))
    ranks = Ranks(device)  # one process: every rank of a torchrun would train the same priors
    task = SequenceTask(sequences.__getitem__, len(sequences), ranks, pad=PAD)
    outcome = fit(task, model, adam(model, train), train, paths, ranks, seed=cfg.seed, config=cfg, overwrite=True,
                  desc=f"bpe {paths.root.name}")  # fmt: skip
    assert outcome.train_row is not None, "a fresh run logs its last step"
    return model.eval(), outcome.seconds, outcome.train_row["bits_per_token"]


def run(cfg: BPERecipeConfig, *, overwrite: bool = False) -> BPEResult:
    """Train the unit BPE and both priors on ``cfg.corpus``; score them on ``cfg.eval_corpus``.

    The output is a folder of :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote).
    """
    check_folder(run_dir(cfg), "bpe", overwrite=overwrite)  # before any work
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    train_corpus = open_corpus(cfg.corpus, "corpus")
    held_out = open_corpus(cfg.eval_corpus, "eval_corpus")
    check_same_tokenizer({"corpus": train_corpus, "eval_corpus": held_out})
    k = int(train_corpus.meta["levels"][0]["codebook_size"])
    if any(int(lv["codebook_size"]) != k for lv in [*train_corpus.meta["levels"], *held_out.meta["levels"]]):
        raise ValueError(
            "unit BPE maps every code to one symbol, so corpus and eval_corpus must share one codebook size; "
            "tokenize both with the same single-codebook tokenizer."
        )
    prepare = dedup if cfg.bpe.dedup else (lambda s: s)
    train_seqs = [prepare(s) for s in code_sequences(train_corpus, cfg.max_items)]
    eval_seqs = [prepare(s) for s in code_sequences(held_out, cfg.eval_items)]
    train_seqs, eval_seqs = [s for s in train_seqs if s.size], [s for s in eval_seqs if s.size]
    if not train_seqs or not eval_seqs:
        raise ValueError("corpus and eval_corpus must each hold at least one non-empty code sequence.")

    bpe = UnitBPE.train(train_seqs, cfg.bpe.vocab_size, codebook_size=k, model_type=cfg.bpe.model_type)
    variants = {
        "codes": (k, lambda s: s.tolist()),
        "bpe": (bpe.vocab_size, bpe.encode),
    }
    eval_codes = sum(len(s) for s in eval_seqs)
    figures: list[PriorFigures] = []
    folder = OutputFolder(run_dir(cfg), "bpe", overwrite=overwrite)
    with folder, folder.staging() as staged:  # the priors train in a staging folder, published whole at the end
        for name, (size, encode) in variants.items():
            train_ids = [[BOS, *(FIRST + t for t in encode(s)), EOS] for s in train_seqs]
            eval_ids = [[BOS, *(FIRST + t for t in encode(s)), EOS] for s in eval_seqs]
            longest = max(len(s) for s in [*train_ids, *eval_ids])
            model, seconds, train_bits = _train_prior(cfg, RunPaths(staged / f"prior_{name}", "prior"), train_ids, FIRST + size, longest,
                                          device)  # fmt: skip
            nats = sum(float(x.sum()) for x in sequence_nll(model, eval_ids, PAD, cfg.eval_batch_size))
            eval_tokens = sum(len(s) - 1 for s in eval_ids)  # every id after <bos>, <eos> included
            figures.append(
                PriorFigures(
                    tokens=name,
                    vocab_size=FIRST + size,
                    parameters=sum(p.numel() for p in model.parameters()),
                    tokens_per_sequence=(eval_tokens - len(eval_ids)) / len(eval_ids),
                    train_seconds=seconds,
                    train_bits_per_token=train_bits,
                    bits_per_token=nats / LN2 / eval_tokens,
                    bits_per_code=nats / LN2 / eval_codes,
                )
            )
        bpe.save(staged / "unit_bpe.model")
        result = BPEResult(
            out_dir=str(folder.path),
            corpus=str(train_corpus.directory),
            eval_corpus=str(held_out.directory),
            dedup=cfg.bpe.dedup,
            codebook_size=k,
            bpe_vocab_size=bpe.vocab_size,
            train_sequences=len(train_seqs),
            eval_sequences=len(eval_seqs),
            codes_per_sequence=eval_codes / len(eval_seqs),
            codes_per_token=bpe.codes_per_token(eval_seqs),
            train_codes_per_token=bpe.codes_per_token(train_seqs),
            priors=figures,
        )
        save_config(cfg, staged / "config.yaml")
        write_sources(staged, train_corpus, held_out, final=folder.path)  # the corpora and their tokenizer
        atomic_write_json(staged / "figures.json", result.to_dict())
    return result
