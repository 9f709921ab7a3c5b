"""``vqtok compress`` for speech: WAV/FLAC → codes → one entropy-coded file, its rate beside the NLL of the same codes.

Dimension legend: ``U`` utterances, ``n_u`` code frames of utterance ``u``, ``T`` positions per row, ``K`` codebook size.

The utterances are a split of the preset's data (``compress.split``: ``train`` or ``eval``, first
``compress.max_items``) or audio files (``compress.input``: a file or a folder of WAV/FLAC). The
tokenizer encodes each one (as ``vqtok tokenize`` does) to ``n_u`` codes; each becomes one row of
``T`` codes followed by the end code ``K``, the convention of the speech priors' corpora
(:mod:`tokenizers_vq.corpus`). The file is the image verb's format (:mod:`tokenizers_vq.entropy`)
with ``end_code = K``: nothing after an utterance's end code is stored. Two rate models:

- ``prior`` (``--prior DIR``): the 1-D prior's sequential pass gives each position's probabilities
  (:mod:`priors.coding`); ``T`` is the prior's row length, and a longer utterance is refused.
  A conditional prior's class labels (FSDD's digit, or ``compress.label``) go into the payload.
- ``unigram`` (no prior): the code frequencies ``vqtok rd`` codes speech with (add-one smoothed,
  fitted on ``compress.fit_items`` utterances of ``data.train``), with the end code counted once per
  utterance. The counts travel in the header (``extra.unigram_counts``); the model hash is theirs.

Figures are those of the image verb (``file_bytes``, ``header_bytes``, ``payload_bits``, ``nll_bits``,
``overhead_percent``, ...), where a "code" is a coded position (each frame and each end code), plus
``rate_model``, ``frames``, ``audio_seconds``, ``bits_per_second`` (whole file), ``payload_bits_per_second``,
``nll_bits_per_second``, ``uniform_bits_per_second`` (``log2 K`` per frame) and ``padding_nll_bits``
(the prior's NLL of the end codes after each end code: in ``vqtok evaluate``'s figure, not in the file).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modalities.speech import SpeechTokenizer, load_audio
from modalities.speech.data import AUDIO_SUFFIXES
from modalities.speech.task import encode_waveforms, load_split, selection_of
from priors import CodeLayout, CodePrior
from recipes.coding.common import (
    CodedChunks,
    check_layout,
    encode_levels,
    encode_unigram,
    make_header,
    model_digest,
    prior_tokenizer_hash,
    table_of,
    unigram_counts,
)
from recipes.coding.compress import CompressResult, input_files, rate_figures
from recipes.coding.config import FILE_SUFFIX, SpeechCodingConfig
from recipes.engine.runtime import evaluation_mode, set_threads, setup_runtime
from recipes.image.common import open_tokenizer
from recipes.priors.common import open_prior
from tokenizers_vq.entropy import write_code_file
from tokenizers_vq.io import sha256_file
from tokenizers_vq.pretrained import WEIGHTS_NAME

MAX_ROW = 65535  # a row's length is a u16 in the header


@dataclass
class Utterances:
    """What goes into one file: waveforms ``(t,)`` at the model's rate, class labels (or None) and file names."""

    waveforms: list[torch.Tensor]
    labels: list[int | None]
    names: list[str] | None  # audio files' names (compress.input); None for a data set split
    stem: str  # the default file's name


def open_speech_tokenizer(cfg: SpeechCodingConfig, verb: str) -> tuple[SpeechTokenizer, Path, torch.device]:
    """The tokenizer at ``cfg.tokenizer`` on ``cfg.device`` with ``cfg.threads``; refuses residual codes."""
    set_threads(cfg.threads)
    device = setup_runtime(cfg)
    model, directory = open_tokenizer(cfg.tokenizer, device, verb)
    if model.config.quantizer != "vq":
        raise ValueError(
            f"{verb} codes one codebook per frame; this tokenizer has {model.config.num_quantizers} residual levels. "
            "Use a single-codebook speech tokenizer (model.quantizer=vq)."
        )
    return model, directory, device


def speech_prior(
    cfg: SpeechCodingConfig, device: torch.device, tokenizer_dir: Path, verb: str
) -> tuple[CodePrior, Path]:
    """The prior ``cfg.prior``, checked to model this tokenizer's codes (1-D rows of ``K`` codes and the end code)."""
    prior, prior_dir = open_prior(cfg, device, verb)
    try:
        trained_on = prior_tokenizer_hash(prior_dir)
    except (ValueError, FileNotFoundError, KeyError):
        trained_on = None  # a prior without its run's corpus: the layout check below is all we can do
    if trained_on is not None and trained_on != sha256_file(tokenizer_dir / WEIGHTS_NAME):
        raise ValueError(
            f"the prior {cfg.prior} was trained on codes of a different tokenizer (weights sha256 {trained_on[:16]}…) "
            f"than {cfg.tokenizer}. Pass the prior that was trained on this tokenizer's codes."
        )
    return prior, prior_dir


def row_length(prior: CodePrior, codebook_size: int) -> int:
    """The prior's positions per utterance ``T``, after checking that it models ``K`` codes plus the end code."""
    if prior.layout.ndim != 1:
        raise ValueError(f"speech codes need a 1-D prior; this one models grids {prior.layout.shapes}.")
    T = prior.layout.shapes[0][0]
    check_layout(prior, [(T,)], [codebook_size + 1], f"the tokenizer (K = {codebook_size} codes and an end code)")
    return T


def pad_rows(codes: list[np.ndarray], T: int, end_code: int, names: list[str]) -> torch.Tensor:
    """Codes ``(n_u,)`` of each utterance → int64 rows ``(U, T)``, each followed by end codes; refuses ``n_u > T``."""
    rows = torch.full((len(codes), T), end_code, dtype=torch.long)
    for u, c in enumerate(codes):
        if c.shape[0] > T:
            raise ValueError(
                f"{names[u]} has {c.shape[0]} code frames; the prior models at most {T} per utterance (the longest "
                "of its training corpus, plus the end code). Compress it without --prior (code frequencies), or "
                "train a prior on a corpus with longer utterances."
            )
        rows[u, : c.shape[0]] = torch.from_numpy(c.astype(np.int64))
    return rows


def _read_files(path: str, sample_rate: int) -> tuple[list[torch.Tensor], list[str]]:
    files = input_files(path, AUDIO_SUFFIXES, "audio")
    return [load_audio(f, sample_rate)[0] for f in files], [f.name for f in files]


def input_utterances(cfg: SpeechCodingConfig, sample_rate: int) -> Utterances:
    """The utterances to compress (a split of ``cfg.data`` or ``compress.input``) at ``sample_rate``."""
    c = cfg.compress
    if c.input is None:
        split = load_split(cfg.data, selection_of(cfg.data, c.split), sample_rate, c.max_items)
        labels = [c.label if c.label is not None else (int(u.label) if u.label is not None else None)
                  for u in split.utterances]  # fmt: skip
        data = Path(cfg.data.root).name if cfg.data.root else cfg.data.name
        return Utterances(split.waveforms, labels, None, f"{data}_{c.split}")
    waveforms, names = _read_files(c.input, sample_rate)
    return Utterances(waveforms, [c.label] * len(names), names, Path(c.input).expanduser().stem)


def class_labels(utterances: Utterances, num_classes: int) -> torch.Tensor | None:
    """The labels a conditional prior needs ``(U,)``, checked; None for an unconditional one."""
    if not num_classes:
        return None
    for i, label in enumerate(utterances.labels):
        name = utterances.names[i] if utterances.names else f"utterance {i}"
        if label is None:
            raise ValueError(
                f"the prior is class-conditional ({num_classes} classes) but {name} has no label; pass compress.label=N."
            )
        if not 0 <= label < num_classes:
            raise ValueError(f"the label of {name} is {label}; this prior knows classes 0..{num_classes - 1}.")
    return torch.tensor(utterances.labels, dtype=torch.long)


def counts_digest(counts: np.ndarray) -> str:
    """Hex SHA-256 naming a code-frequency model: its counts as little-endian int64."""
    return hashlib.sha256(np.ascontiguousarray(counts, dtype="<i8").tobytes()).hexdigest()


def fit_counts(cfg: SpeechCodingConfig, model: SpeechTokenizer) -> np.ndarray:
    """Add-one code counts ``(K + 1,)`` of ``compress.fit_items`` training utterances, the end code once per utterance."""
    train = load_split(cfg.data, cfg.data.train, model.sample_rate, cfg.compress.fit_items)
    k = model.config.codebook_size
    with evaluation_mode(model):
        codes = encode_waveforms(model, train.waveforms)
    stream = np.concatenate([np.append(c.astype(np.int64), k) for c in codes])
    return unigram_counts([stream], [k + 1])[0]


def unigram_stream(rows: torch.Tensor, end_code: int) -> torch.Tensor:
    """Rows ``(U, T)`` → each utterance's codes and its end code, end to end (what the unigram payload holds)."""
    return torch.cat([torch.cat([r[r != end_code], r.new_tensor([end_code])]) for r in rows])


def encode_unigram_rows(rows: torch.Tensor, counts: np.ndarray, end_code: int) -> CodedChunks:
    """Range-code rows ``(U, T)`` with the fixed table of ``counts``: real bytes and their ideal length."""
    start = time.perf_counter()
    stream = unigram_stream(rows, end_code)
    table = table_of(counts)
    payload = encode_unigram([stream], [table])
    bits = float(-np.log2(table[stream.numpy()]).sum())
    return CodedChunks(payload, bits, bits, 0.0, time.perf_counter() - start)


def run(cfg: SpeechCodingConfig) -> CompressResult:
    """Compress the configured utterances with ``cfg.tokenizer`` and ``cfg.prior`` (or code frequencies)."""
    model, tokenizer_dir, device = open_speech_tokenizer(cfg, "compress")
    k = model.config.codebook_size
    prior = prior_dir = None
    if cfg.prior is not None:
        prior, prior_dir = speech_prior(cfg, device, tokenizer_dir, "compress")
        row_length(prior, k)
    utterances = input_utterances(cfg, model.sample_rate)
    labels = class_labels(utterances, prior.layout.num_classes) if prior is not None else None
    with evaluation_mode(model):
        codes = encode_waveforms(model, utterances.waveforms)
    names = utterances.names or [f"utterance {i}" for i in range(len(codes))]
    frames = sum(c.shape[0] for c in codes)
    extra = {"modality": "speech", "sample_rate": model.sample_rate, "frame_rate": model.frame_rate}
    if utterances.names:
        extra["names"] = utterances.names
    if prior is not None:
        rows = pad_rows(codes, prior.layout.shapes[0][0], k, names)
        coded = encode_levels(prior, [rows], labels, cfg.compress.chunk_size, end_code=k)
        extra["rate_model"] = "prior"
        header = make_header(tokenizer_dir, model_digest(prior_dir), prior.layout, [rows], labels,
                             cfg.compress.chunk_size, extra, end_code=k)  # fmt: skip
    else:
        longest = max(c.shape[0] for c in codes) + 1
        if longest > MAX_ROW:
            raise ValueError(f"an utterance has {longest - 1} code frames; a code file holds at most {MAX_ROW - 1}.")
        rows = pad_rows(codes, longest, k, names)
        counts = fit_counts(cfg, model)
        coded = encode_unigram_rows(rows, counts, k)
        extra.update(rate_model="unigram", unigram_counts=counts.tolist())
        layout = CodeLayout(shapes=[(longest,)], codebook_sizes=[k + 1])
        header = make_header(tokenizer_dir, counts_digest(counts), layout, [rows], None, len(codes), extra, k)
    out = Path(cfg.out).expanduser() if cfg.out else tokenizer_dir.resolve().parent / f"{utterances.stem}{FILE_SUFFIX}"
    file_bytes = write_code_file(out, header, coded.payload)
    positions = int((rows != k).sum()) + int((rows == k).any(dim=1).sum())  # frames, and each end code that is coded
    figures = rate_figures(coded, file_bytes, len(codes), positions)
    seconds = sum(w.shape[-1] for w in utterances.waveforms) / model.sample_rate
    figures.update(
        rate_model=extra["rate_model"],
        frames=frames,
        audio_seconds=seconds,
        bits_per_second=8 * file_bytes / seconds,
        payload_bits_per_second=figures["payload_bits"] / seconds,
        nll_bits_per_second=(coded.nll_bits + coded.label_bits) / seconds,
        uniform_bits_per_second=frames * math.log2(k) / seconds,
        padding_nll_bits=coded.padding_nll_bits,
    )
    return CompressResult(str(out), figures)
