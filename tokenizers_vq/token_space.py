"""One vocabulary for text pieces, image codes and audio codes: the token space.

Ids are laid out once and saved, so they stay stable::

    [ text pieces (sentencepiece ids; 0..3 = <pad> <bos> <eos> <unk>) ]   or [ <pad> <bos> <eos> <unk> ]
    [ <text> </text> ]
    [ per code stream, in the order added: <img> </img> <img:L0> <img:L1> | <img0:0> .. <img0:K0-1> | <img1:0> .. ]

A mixed stream serialises as ``<bos> <text> pieces </text> <img> <img:L0> codes <img:L1> codes </img> <eos>``
and parses back exactly. ``export_hf`` writes a ``tokenizer.json`` that
``transformers.AutoTokenizer.from_pretrained`` loads without custom code; codes appear as readable
tokens such as ``<img0:417>`` or ``<aud:33>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokenizers_vq.io import atomic_path, atomic_write_json, atomic_write_text
from tokenizers_vq.text import SPECIAL_TOKENS, load_text_model, save_text_model

FORMAT_VERSION = 1
TEXT_MARKERS = ("<text>", "</text>")


@dataclass
class TextSegment:
    """Text as sentencepiece piece ids (their token-space ids are the same numbers)."""

    pieces: list[int]


@dataclass
class CodeSegment:
    """Codes of one registered stream: one flat list per level, top level first, raster order."""

    stream: str
    levels: list[list[int]]


Segment = TextSegment | CodeSegment


@dataclass
class CodeStream:
    """A tokenizer's codes in the token space: ``levels`` codebooks, each a contiguous id block."""

    name: str
    modality: str
    codebook_sizes: list[int]
    begin: int  # id of <name>; </name> is begin + 1, level markers follow when there are several levels
    code_offsets: list[int] = field(default_factory=list)

    @property
    def num_levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def end(self) -> int:
        return self.begin + 1

    def level_marker(self, level: int) -> int | None:
        return self.begin + 2 + level if self.num_levels > 1 else None

    def code_token(self, level: int, code: int) -> str:
        named_levels = self.num_levels > 1 or self.modality == "image"
        return f"<{self.name}{level}:{code}>" if named_levels else f"<{self.name}:{code}>"


class TokenSpace:
    """Joins special tokens, text pieces and the codes of every image/speech tokenizer in one id space.

    >>> space = TokenSpace()
    >>> img = space.add_stream("img", "image", [512, 512])   # a two-level VQ-VAE-2
    >>> aud = space.add_stream("aud", "audio", [128])
    >>> ids = space.serialize([CodeSegment("aud", [[3, 3, 7]])])
    >>> space.parse(ids)
    [CodeSegment(stream='aud', levels=[[3, 3, 7]])]
    >>> space.id_to_token(ids[3])
    '<aud:3>'
    """

    def __init__(self, text_model=None) -> None:
        self.text_model = text_model
        if text_model is not None:
            self._check_text_model(text_model)
            self.text_size = text_model.get_piece_size()
            self._tokens: list[str] = []  # tokens after the text block, in id order
            self._base = self.text_size
        else:
            self.text_size = 0
            self._tokens = list(SPECIAL_TOKENS)
            self._base = 0
        self.text_begin = self._append(TEXT_MARKERS[0])
        self._append(TEXT_MARKERS[1])
        self.streams: dict[str, CodeStream] = {}

    @staticmethod
    def _check_text_model(sp) -> None:
        got = [sp.id_to_piece(i) for i in range(len(SPECIAL_TOKENS))]
        if got != list(SPECIAL_TOKENS):
            raise ValueError(
                f"the text model's first ids must be {list(SPECIAL_TOKENS)}; got {got}. "
                "Train it with tokenizers_vq.text.train_text_model (or sentencepiece with pad_id=0, bos_id=1, "
                "eos_id=2, unk_id=3 and those piece names)."
            )

    def _append(self, token: str) -> int:
        self._tokens.append(token)
        return self._base + len(self._tokens) - 1

    # ---- building ------------------------------------------------------------------------------
    def add_stream(self, name: str, modality: str, codebook_sizes: Sequence[int]) -> CodeStream:
        """Register a tokenizer's codes (one entry per level, top first); returns its id layout."""
        if name in self.streams or name == "text":
            raise ValueError(f"a stream named {name!r} is already in this token space; pick another name")
        if not name.isidentifier() or not codebook_sizes or any(int(k) <= 0 for k in codebook_sizes):
            raise ValueError(
                f"add_stream needs an identifier name and positive codebook sizes; got {name!r}, {codebook_sizes}"
            )
        stream = CodeStream(name, modality, [int(k) for k in codebook_sizes], begin=self._append(f"<{name}>"))
        self._append(f"</{name}>")
        if stream.num_levels > 1:
            for level in range(stream.num_levels):
                self._append(f"<{name}:L{level}>")
        for level, k in enumerate(stream.codebook_sizes):
            stream.code_offsets.append(self._base + len(self._tokens))
            self._tokens.extend(stream.code_token(level, c) for c in range(k))
        self.streams[name] = stream
        return stream

    # ---- ids ----------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._base + len(self._tokens)

    def special_id(self, name: str) -> int:
        """Id of ``"pad"``, ``"bos"``, ``"eos"`` or ``"unk"`` (always 0..3)."""
        return ("pad", "bos", "eos", "unk").index(name)

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is outside this token space's [0, {self.vocab_size})")
        return self.text_model.id_to_piece(i) if i < self._base else self._tokens[i - self._base]

    def level_range(self, stream: str, level: int = 0) -> tuple[int, int]:
        """``[start, stop)`` ids of one level's codes: what a prior may emit at that level's positions."""
        s = self._stream(stream)
        if not 0 <= level < s.num_levels:
            raise ValueError(f"stream {stream!r} has levels 0..{s.num_levels - 1}; got {level}")
        return s.code_offsets[level], s.code_offsets[level] + s.codebook_sizes[level]

    def codes_to_ids(self, stream: str, level: int, codes) -> np.ndarray:
        start, stop = self.level_range(stream, level)
        arr = np.asarray(codes, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= stop - start):
            raise ValueError(
                f"{stream} level {level} codes must lie in [0, {stop - start - 1}]; got {arr.min()}..{arr.max()}"
            )
        return arr + start

    def ids_to_codes(self, stream: str, level: int, ids) -> np.ndarray:
        start, stop = self.level_range(stream, level)
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < start or arr.max() >= stop):
            raise ValueError(f"ids {arr.min()}..{arr.max()} are not all {stream} level {level} codes [{start}, {stop})")
        return arr - start

    def _stream(self, name: str) -> CodeStream:
        if name not in self.streams:
            raise ValueError(f"no code stream named {name!r}; this token space has {sorted(self.streams)}")
        return self.streams[name]

    # ---- mixed streams ---------------------------------------------------------------------------
    def text_segment(self, text: str) -> TextSegment:
        if self.text_model is None:
            raise ValueError("this token space has no text model; build it with TokenSpace(text_model)")
        return TextSegment(list(self.text_model.encode(text)))

    def serialize(self, segments: Sequence[Segment], bos: bool = True, eos: bool = True) -> list[int]:
        """Segments → one id sequence (``<bos>`` … ``<eos>``), exactly invertible by :meth:`parse`."""
        ids: list[int] = [self.special_id("bos")] if bos else []
        for seg in segments:
            if isinstance(seg, TextSegment):
                bad = [p for p in seg.pieces if not len(SPECIAL_TOKENS) <= p < self.text_size]
                if bad:
                    raise ValueError(f"text piece ids must lie in [4, {self.text_size}); got {bad[:5]}")
                ids += [self.text_begin, *seg.pieces, self.text_begin + 1]
            elif isinstance(seg, CodeSegment):
                s = self._stream(seg.stream)
                if len(seg.levels) != s.num_levels:
                    raise ValueError(f"stream {s.name!r} has {s.num_levels} levels; the segment has {len(seg.levels)}")
                ids.append(s.begin)
                for level, codes in enumerate(seg.levels):
                    marker = s.level_marker(level)
                    if marker is not None:
                        ids.append(marker)
                    ids += self.codes_to_ids(s.name, level, codes).tolist()
                ids.append(s.end)
            else:
                raise TypeError(f"segments must be TextSegment or CodeSegment; got {type(seg).__name__}")
        if eos:
            ids.append(self.special_id("eos"))
        return ids

    def parse(self, ids: Sequence[int]) -> list[Segment]:
        """Id sequence → segments; ``<bos>``/``<eos>``/``<pad>`` between segments are skipped.

        Raises ``ValueError`` naming the position of anything that does not fit (an unclosed
        segment, a code of the wrong level, a text piece outside ``<text>``).
        """
        ids = [int(i) for i in ids]
        by_begin = {s.begin: s for s in self.streams.values()}
        segments: list[Segment] = []
        i = 0
        while i < len(ids):
            tok = ids[i]
            if tok in (0, 1, 2):
                i += 1
            elif tok == self.text_begin:
                j = self._find(ids, i + 1, self.text_begin + 1, "</text>")
                pieces = ids[i + 1 : j]
                if any(not len(SPECIAL_TOKENS) <= p < self.text_size for p in pieces):
                    raise ValueError(f"non-text id inside <text> at position {i}")
                segments.append(TextSegment(pieces))
                i = j + 1
            elif tok in by_begin:
                s = by_begin[tok]
                j = self._find(ids, i + 1, s.end, f"</{s.name}>")
                segments.append(CodeSegment(s.name, self._parse_levels(s, ids[i + 1 : j], i)))
                i = j + 1
            else:
                raise ValueError(f"id {tok} ({self.id_to_token(tok)}) at position {i} is outside any segment")
        return segments

    @staticmethod
    def _find(ids: list[int], start: int, token: int, name: str) -> int:
        try:
            return ids.index(token, start)
        except ValueError:
            raise ValueError(f"segment opened at position {start - 1} is never closed by {name}") from None

    def _parse_levels(self, s: CodeStream, body: list[int], pos: int) -> list[list[int]]:
        if s.num_levels == 1:
            return [self.ids_to_codes(s.name, 0, body).tolist()]
        levels: list[list[int]] = []
        marks = [k for k, t in enumerate(body) if s.begin + 2 <= t < s.begin + 2 + s.num_levels]
        if [body[k] - s.begin - 2 for k in marks] != list(range(s.num_levels)):
            raise ValueError(
                f"{s.name} segment at position {pos} must hold level markers L0..L{s.num_levels - 1} in order"
            )
        for n, k in enumerate(marks):
            stop = marks[n + 1] if n + 1 < len(marks) else len(body)
            levels.append(self.ids_to_codes(s.name, n, body[k + 1 : stop]).tolist())
        return levels

    def to_string(self, ids: Sequence[int]) -> str:
        """Readable form: code and marker tokens as written, text pieces decoded to text."""
        out: list[str] = []
        text: list[int] = []
        for i in ids:
            if self.text_model is not None and len(SPECIAL_TOKENS) <= i < self.text_size:
                text.append(int(i))
                continue
            if text:
                out.append(self.text_model.decode(text))
                text = []
            out.append(self.id_to_token(int(i)))
        if text:
            out.append(self.text_model.decode(text))
        return "".join(out)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``token_space.json`` (and ``text.model``) so :meth:`load` rebuilds the same ids."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.text_model is not None:
            save_text_model(self.text_model, directory / "text.model")
        atomic_write_json(
            directory / "token_space.json",
            {
                "format_version": FORMAT_VERSION,
                "kind": "token-space",
                "text_model": "text.model" if self.text_model is not None else None,
                "text_size": self.text_size,
                "streams": [
                    {"name": s.name, "modality": s.modality, "codebook_sizes": s.codebook_sizes, "begin": s.begin}
                    for s in self.streams.values()
                ],
                "vocab_size": self.vocab_size,
            },
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TokenSpace:
        directory = Path(directory)
        path = directory / "token_space.json"
        if not path.is_file():
            raise ValueError(f"{str(directory)!r} holds no token_space.json; save a TokenSpace there first")
        meta = json.loads(path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"token space format {meta.get('format_version')} is not {FORMAT_VERSION}; re-export it")
        space = cls(load_text_model(directory / meta["text_model"]) if meta["text_model"] else None)
        for s in meta["streams"]:
            stream = space.add_stream(s["name"], s["modality"], s["codebook_sizes"])
            if stream.begin != s["begin"]:
                raise ValueError(f"stream {s['name']!r} would start at id {stream.begin}, saved at {s['begin']}")
        if space.vocab_size != meta["vocab_size"]:
            raise ValueError(f"rebuilt vocabulary has {space.vocab_size} ids; the saved one had {meta['vocab_size']}")
        return space

    def export_hf(self, directory: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json`` + ``tokenizer_config.json`` for ``AutoTokenizer.from_pretrained``."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        if self.text_model is not None:
            sp = self.text_model
            scores = [sp.get_score(i) for i in range(self.text_size)]
            floor = min(scores) - 10.0
            vocab = [
                (sp.id_to_piece(i), floor if sp.is_control(i) or sp.is_unknown(i) else scores[i])
                for i in range(self.text_size)
            ]
            tok = Tokenizer(models.Unigram(vocab, unk_id=self.special_id("unk"), byte_fallback=False))
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
            rest = self._tokens
        else:
            tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_token="<unk>"))
            tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            rest = self._tokens[len(SPECIAL_TOKENS) :]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in rest])
        for probe in (self.text_begin, self.vocab_size - 1):
            if tok.token_to_id(self.id_to_token(probe)) != probe:
                raise RuntimeError(f"tokenizer.json would give {self.id_to_token(probe)} another id than {probe}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "tokenizer.json") as tmp:
            tok.save(str(tmp))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "pad_token": SPECIAL_TOKENS[0],
            "bos_token": SPECIAL_TOKENS[1],
            "eos_token": SPECIAL_TOKENS[2],
            "unk_token": SPECIAL_TOKENS[3],
            "model_max_length": 1_000_000,
            "clean_up_tokenization_spaces": False,
        }
        atomic_write_text(directory / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
        self.save(directory)
