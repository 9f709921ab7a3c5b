"""Which token-space ids may come next in a mixed stream: the grammar a constrained sampler and scorer follow.

Dimension legend: ``n`` tokens of a sequence, ``V`` ids of the token space, ``b`` batch.

A :class:`~tokenizers_vq.token_space.TokenSpace` stream reads::

    <bos> ( <text> piece* </text>  |  <s> [<s:L0>] code* [<s:L1> code* ...] </s> )* <eos>

:class:`SegmentGrammar` adds how many codes each level of each stream holds (an image tokenizer's
fixed grid: 49 codes for 7×7; speech: from a minimum to a maximum number of frames), so a sampler
that masks everything else always produces a stream that parses and decodes, and a scorer can
normalise each prediction over the same choices the sampler had (``masks``). With
``code_after_text`` the text is a prompt: after ``</text>`` only a code segment may open, and the
stream is complete when that segment closes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from tokenizers_vq.text import SPECIAL_TOKENS
from tokenizers_vq.token_space import TokenSpace

PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class _State:
    """Where a prefix stands: ``kind`` is start, top, text, after_text, open (a multi-level segment before
    its first marker), code (inside ``stream``'s ``level`` with ``count`` codes so far), closed or end."""

    kind: str
    stream: str = ""
    level: int = 0
    count: int = 0


class SegmentGrammar:
    """The next-id constraint of mixed streams over ``space`` with per-level code counts ``lengths``.

    >>> grammar = SegmentGrammar(space, {"img": [(49, 49)], "aud": [(2, 64)]})   # doctest: +SKIP
    >>> grammar.allowed_after(space.serialize([CodeSegment("img", [[0] * 49])], eos=False))  # doctest: +SKIP
    tensor([False, False,  True, ...])   # only <eos> (or another segment) after </img>

    Args:
        space: the token space.
        lengths: for each stream, one ``(min, max)`` count of codes per level, top first.
        code_after_text: after ``</text>`` only a code segment may open; ``<eos>`` follows it.
    """

    def __init__(
        self, space: TokenSpace, lengths: Mapping[str, Sequence[tuple[int, int]]], code_after_text: bool = False
    ) -> None:
        missing = sorted(set(space.streams) - set(lengths))
        if missing:
            raise ValueError(f"give a (min, max) code count per level for every stream; missing {missing}.")
        self.lengths: dict[str, list[tuple[int, int]]] = {}
        for name, levels in lengths.items():
            stream = space.streams.get(name)
            if stream is None:
                raise ValueError(f"no stream {name!r} in this token space; it has {sorted(space.streams)}.")
            pairs = [(int(lo), int(hi)) for lo, hi in levels]
            if len(pairs) != stream.num_levels or any(not 0 <= lo <= hi or hi < 1 for lo, hi in pairs):
                raise ValueError(
                    f"stream {name!r} needs {stream.num_levels} (min, max) pairs with 0 <= min <= max, max >= 1; "
                    f"got {levels}."
                )
            self.lengths[name] = pairs
        self.space, self.code_after_text = space, code_after_text
        self._by_begin = {s.begin: s for s in space.streams.values()}
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def vocab_size(self) -> int:
        return self.space.vocab_size

    def max_new_tokens(self, stream: str) -> int:
        """Most ids a segment of ``stream`` takes after its opener: codes, level markers and the closer."""
        markers = len(self.lengths[stream]) if len(self.lengths[stream]) > 1 else 0
        return sum(hi for _, hi in self.lengths[stream]) + markers + 1

    # ---- the state machine ---------------------------------------------------------------------
    def step(self, state: _State, token: int) -> _State:
        """The state after ``token``; ``ValueError`` when the grammar does not allow it there."""
        if token == PAD and state.kind in ("end", "closed"):
            return state  # a finished row of a batch is padded
        if not self._mask(state)[token]:
            raise ValueError(
                f"{self.space.id_to_token(token)} (id {token}) cannot follow here ({state.kind} {state.stream}); "
                "the stream does not fit the grammar."
            )
        space = self.space
        if token == EOS:
            return _State("end")
        if state.kind == "start":
            return _State("top")
        if token == space.text_begin:
            return _State("text")
        if token == space.text_begin + 1:
            return _State("after_text")
        if state.kind == "text":
            return state
        if token in self._by_begin:
            s = self._by_begin[token]
            return _State("open", s.name) if s.num_levels > 1 else _State("code", s.name, 0, 0)
        stream = space.streams[state.stream]
        if token == stream.end:
            return _State("closed")
        next_level = state.level + 1 < stream.num_levels and token == stream.level_marker(state.level + 1)
        if state.kind == "open" or next_level:
            return _State("code", stream.name, 0 if state.kind == "open" else state.level + 1, 0)
        return _State("code", stream.name, state.level, state.count + 1)

    def _mask(self, state: _State) -> torch.Tensor:
        key = self._key(state)
        if key not in self._cache:
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            for start, stop in self._ranges(key):
                mask[start:stop] = True
            self._cache[key] = mask
        return self._cache[key]

    def _key(self, state: _State) -> tuple:
        if state.kind != "code":
            return (state.kind, state.stream)
        lo, hi = self.lengths[state.stream][state.level]
        return ("code", state.stream, state.level, state.count >= lo, state.count >= hi)

    def _ranges(self, key: tuple) -> list[tuple[int, int]]:
        """``[start, stop)`` id ranges allowed in the state of ``key``."""
        space, kind = self.space, key[0]
        openers = [(s.begin, s.begin + 1) for s in space.streams.values()]
        segment_or_end = [*openers, (EOS, EOS + 1)] + (
            [(space.text_begin, space.text_begin + 1)] if space.text_size else []
        )
        if kind == "start":
            return [(BOS, BOS + 1)]
        if kind == "end":
            return [(PAD, PAD + 1)]
        if kind == "top":
            return segment_or_end
        if kind == "text":
            return [(len(SPECIAL_TOKENS), space.text_size), (space.text_begin + 1, space.text_begin + 2)]
        if kind == "after_text":
            return openers if self.code_after_text else segment_or_end
        if kind == "closed":
            return [(EOS, EOS + 1)] if self.code_after_text else segment_or_end
        stream = space.streams[key[1]]
        if kind == "open":
            marker = stream.level_marker(0)
            assert marker is not None, "only multi-level streams have an open state"
            return [(marker, marker + 1)]
        _, _, level, enough, full = key
        ranges = [] if full else [space.level_range(stream.name, level)]
        if enough:
            following = stream.level_marker(level + 1) if level + 1 < stream.num_levels else stream.end
            assert following is not None, "a level below the last is followed by the next level's marker"
            ranges.append((following, following + 1))
        return ranges

    # ---- public checks -------------------------------------------------------------------------------
    def state_of(self, ids: Sequence[int]) -> _State:
        state = _State("start")
        for token in ids:
            state = self.step(state, int(token))
        return state

    def allowed_after(self, prefix: Sequence[int]) -> torch.Tensor:
        """``(V,)`` bool: the ids that may follow ``prefix`` (which starts with ``<bos>``)."""
        return self._mask(self.state_of(prefix)).clone()

    def masks(self, ids: Sequence[int], length: int | None = None) -> torch.Tensor:
        """``(length - 1, V)`` bool: row ``t`` is the ids allowed after ``ids[:t + 1]`` (teacher forcing).

        ``length`` (default ``len(ids)``) pads the result with all-false rows for a padded batch.
        """
        n = len(ids) if length is None else length
        out = torch.zeros((n - 1, self.vocab_size), dtype=torch.bool)
        state = _State("start")
        for t, token in enumerate(ids[:-1]):
            state = self.step(state, int(token))
            out[t] = self._mask(state)
        return out

    def processor(self) -> GrammarLogitsProcessor:
        return GrammarLogitsProcessor(self)


class GrammarLogitsProcessor(LogitsProcessor):
    """For ``generate()``: ids the grammar does not allow after each row's prefix get ``-inf``.

    Rows keep their states between calls, so each step costs one transition per row.
    """

    def __init__(self, grammar: SegmentGrammar) -> None:
        self.grammar = grammar
        self._states: list[_State] = []
        self._length = -1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = input_ids.tolist()
        if len(rows) == len(self._states) and input_ids.shape[1] == self._length + 1:
            self._states = [self.grammar.step(s, row[-1]) for s, row in zip(self._states, rows, strict=True)]
        else:  # a new prompt: read it whole
            self._states = [self.grammar.state_of(row) for row in rows]
        self._length = input_ids.shape[1]
        mask = torch.stack([self.grammar._mask(s) for s in self._states]).to(scores.device)  # (b, V)
        return scores.masked_fill(~mask, float("-inf"))
