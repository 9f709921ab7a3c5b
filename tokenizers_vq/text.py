"""Sentencepiece models for the token space: text pieces, and BPE over code streams ("unit BPE").

Text models are trained with an identity normaliser and the token space's special tokens at fixed
ids (pad 0, bos 1, eos 2, unk 3), so a piece's sentencepiece id is its id in the token space and a
Hugging Face ``tokenizers`` Unigram model with the same scores segments text identically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

from tokenizers_vq.io import atomic_write_bytes

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3 wherever a text model allows it

# Unit BPE maps code c to the character UNIT_BASE + c: a private-use plane, so no code collides
# with whitespace or a character sentencepiece normalises.
UNIT_BASE = 0xF0000
UNIT_MAX = 0xFFFFD - UNIT_BASE


def _train(sentences: Iterable[str], **options) -> spm.SentencePieceProcessor:
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=buf, minloglevel=2, **options)
    return spm.SentencePieceProcessor(model_proto=buf.getvalue())


def train_text_model(
    sentences: Iterable[str], vocab_size: int, model_type: str = "unigram", seed_sentences: int = 1_000_000
) -> spm.SentencePieceProcessor:
    """Train a sentencepiece text model whose ids 0..3 are ``<pad> <bos> <eos> <unk>``.

    The normaliser is the identity (text round-trips byte for byte, and the Hugging Face export
    needs no normaliser). E.g. ``train_text_model(["a sneaker", "a bag"], vocab_size=40)``.
    """
    sentences = list(sentences)
    if not sentences:
        raise ValueError("train_text_model needs at least one sentence of text")
    return _train(
        sentences,
        vocab_size=vocab_size,
        model_type=model_type,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece=SPECIAL_TOKENS[0],
        bos_piece=SPECIAL_TOKENS[1],
        eos_piece=SPECIAL_TOKENS[2],
        unk_piece=SPECIAL_TOKENS[3],
        normalization_rule_name="identity",
        character_coverage=1.0,
        hard_vocab_limit=False,
        input_sentence_size=seed_sentences,
    )


def load_text_model(path: str | os.PathLike[str]) -> spm.SentencePieceProcessor:
    """Load a sentencepiece ``.model`` file, with an error that names the file when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sentencepiece model {str(path)!r} does not exist; train one or pass a .model file")
    sp = spm.SentencePieceProcessor()
    try:
        sp.load(str(path))
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{str(path)!r} is not a sentencepiece model: {err}") from err
    return sp


def save_text_model(sp: spm.SentencePieceProcessor, path: str | os.PathLike[str]) -> None:
    atomic_write_bytes(path, sp.serialized_model_proto())


def codes_to_units(codes: Sequence[int] | np.ndarray) -> str:
    """One character per code (``UNIT_BASE + code``); the exact inverse is :func:`units_to_codes`."""
    arr = np.asarray(codes, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() > UNIT_MAX):
        raise ValueError(f"unit BPE takes codes in [0, {UNIT_MAX}]; got {arr.min()}..{arr.max()}")
    return "".join(map(chr, (arr + UNIT_BASE).tolist()))


def units_to_codes(text: str) -> np.ndarray:
    return np.fromiter((ord(ch) - UNIT_BASE for ch in text), dtype=np.int64, count=len(text))


class UnitBPE:
    """BPE (or unigram) over code sequences, as speech-unit language models use: merges frequent runs.

    >>> bpe = UnitBPE.train([[1, 2, 3, 1, 2, 3]] * 50, vocab_size=8)   # doctest: +SKIP
    >>> ids = bpe.encode([1, 2, 3]); bpe.decode(ids)                     # doctest: +SKIP
    array([1, 2, 3])

    ``decode(encode(codes))`` is exactly ``codes`` for every code sequence (each code is one
    character and every character is in the vocabulary).
    """

    def __init__(self, processor: spm.SentencePieceProcessor, codebook_size: int) -> None:
        self.sp = processor
        self.codebook_size = codebook_size

    @classmethod
    def train(
        cls,
        sequences: Iterable[Sequence[int]],
        vocab_size: int,
        codebook_size: int | None = None,
        model_type: str = "bpe",
    ) -> UnitBPE:
        seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
        if not seqs or not any(len(s) for s in seqs):
            raise ValueError("UnitBPE.train needs at least one non-empty code sequence")
        k = codebook_size if codebook_size is not None else int(max(int(s.max()) for s in seqs if len(s)) + 1)
        # Every code appears once in an extra training line, so codes unseen in the corpus still have
        # a piece and encoding stays exactly invertible.
        alphabet = codes_to_units(np.arange(k))
        sp = _train(
            [alphabet, *(codes_to_units(s) for s in seqs if len(s))],
            vocab_size=max(vocab_size, k + 4),
            model_type=model_type,
            pad_id=-1,
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            split_by_whitespace=False,
            split_by_unicode_script=False,
            character_coverage=1.0,
            max_sentencepiece_length=16,
            max_sentence_length=1 << 20,
            hard_vocab_limit=False,
        )
        return cls(sp, k)

    @classmethod
    def load(cls, path: str | os.PathLike[str], codebook_size: int) -> UnitBPE:
        return cls(load_text_model(path), codebook_size)

    def save(self, path: str | os.PathLike[str]) -> None:
        save_text_model(self.sp, path)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, codes: Sequence[int] | np.ndarray) -> list[int]:
        arr = np.asarray(codes).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size - 1}]; got {arr.min()}..{arr.max()}")
        return self.sp.encode(codes_to_units(arr))

    def decode(self, ids: Sequence[int]) -> np.ndarray:
        return units_to_codes(self.sp.decode(list(ids)))

    def codes_per_token(self, sequences: Iterable[Sequence[int]]) -> float:
        """Average number of codes each BPE token stands for (the compression ratio)."""
        n_codes = n_tokens = 0
        for s in sequences:
            n_codes += len(s)
            n_tokens += len(self.encode(s))
        return n_codes / max(n_tokens, 1)
