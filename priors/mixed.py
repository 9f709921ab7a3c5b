"""One transformer prior over a token space: text, image codes and audio codes in one stream.

Dimension legend: ``b`` batch, ``n`` tokens of a sequence, ``V`` ids of the token space.

Sequences are :class:`~tokenizers_vq.token_space.TokenSpace` streams such as
``<bos><text>an image of a sneaker</text><img><img0:17>…<img0:3></img><eos>`` or
``<bos><text>the spoken word seven</text><aud><aud:33>…</aud><eos>``; the model is a plain
``LlamaForCausalLM`` trained on every token (full softmax). Sampling starts from a text prompt and
follows a :class:`~priors.grammar.SegmentGrammar`: the model chooses which code segment opens after
``</text>``, then only that stream's codes (a fixed grid for images, a range of frames for audio)
and its closing marker are allowed, so every sample parses and decodes. Held-out scores use the same
grammar, each prediction normalised over the ids allowed there.

The saved directory holds the model (``config.json`` with the grammar's lengths under
``vqtok_mixed``, ``model.safetensors``) and the token space (``tokenizer.json``,
``tokenizer_config.json``, ``token_space.json``, ``text.model``): ``AutoModelForCausalLM`` and
``AutoTokenizer.from_pretrained(dir)`` read it without custom code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import GenerationConfig, LlamaForCausalLM, LogitsProcessorList

from priors.grammar import BOS, EOS, PAD, SegmentGrammar
from priors.sampling import SamplingConfig
from priors.sequence import build_causal_lm, sequence_nll
from priors.transformer import TransformerConfig, load_causal_lm, save_causal_lm, seeded_generate
from tokenizers_vq.token_space import CodeSegment, TokenSpace

CONFIG_KEY = "vqtok_mixed"


class MixedPrior(nn.Module):
    """A causal LM over ``space`` whose code segments have the per-level ``lengths`` (``(min, max)`` codes).

    Args:
        space: the token space (text model and code streams).
        lengths: for each stream, one ``(min, max)`` pair per level, e.g. ``{"img": [(49, 49)], "aud": [(2, 64)]}``.
        config: the architecture; ignored when ``model`` is given.
        model: an existing ``LlamaForCausalLM`` (e.g. from ``from_pretrained``).
    """

    def __init__(
        self,
        space: TokenSpace,
        lengths: Mapping[str, Sequence[tuple[int, int]]],
        config: TransformerConfig | None = None,
        model: LlamaForCausalLM | None = None,
    ) -> None:
        super().__init__()
        self.space, self.config = space, config or TransformerConfig()
        self.grammar = SegmentGrammar(space, lengths)
        self.prompt_grammar = SegmentGrammar(space, lengths, code_after_text=True)
        if model is None:
            longest = 64 + max(self.grammar.max_new_tokens(s) for s in space.streams)  # a prompt of up to 60 pieces
            model = build_causal_lm(space.vocab_size, longest, self.config, BOS, EOS, PAD)
            settings = {"lengths": self.grammar.lengths, "model": asdict(self.config)}
            setattr(model.config, CONFIG_KEY, settings)
        if model.config.vocab_size != space.vocab_size:
            raise ValueError(
                f"the model has {model.config.vocab_size} ids but the token space {space.vocab_size}; "
                "load both from the same directory."
            )
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> list[np.ndarray]:
        """Per-token NLL in nats of each sequence, normalised over the ids the grammar allows at each position."""
        return sequence_nll(self.model, sequences, PAD, batch_size, allowed=self.grammar.masks)

    def prompt_ids(self, text: str, stream: str | None = None) -> list[int]:
        """``<bos><text>…</text>`` for ``text``, and the opener of ``stream`` when given (the model's choice otherwise)."""
        ids = self.space.serialize([self.space.text_segment(text)], eos=False)
        return ids + ([self.space.streams[stream].begin] if stream is not None else [])

    @torch.no_grad()
    def generate(
        self, text: str, num_samples: int, sampling: SamplingConfig | None = None, stream: str | None = None
    ) -> tuple[list[CodeSegment], float]:
        """``num_samples`` code segments drawn after the text prompt (KV-cached ``generate()``); and the seconds taken.

        Without ``stream`` the model picks the segment's stream itself after ``</text>``.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive; got {num_samples}.")
        sampling = sampling or SamplingConfig()
        prompt = torch.tensor([self.prompt_ids(text, stream)] * num_samples, device=self.device)
        closers = [s.end for s in self.space.streams.values()]
        longest = 1 + max(self.grammar.max_new_tokens(s) for s in self.space.streams)
        generation = GenerationConfig(
            do_sample=True, max_new_tokens=longest, use_cache=True, top_k=None, top_p=None, temperature=None,
            bos_token_id=BOS, pad_token_id=PAD, eos_token_id=closers,  # stop when the segment closes
        )  # fmt: skip
        processors = LogitsProcessorList([self.prompt_grammar.processor(), *sampling.warpers()])
        ids, seconds = seeded_generate(self, self.model, prompt, generation, processors, sampling.seed)
        segments = []
        for row in ids.tolist():
            parsed = self.space.parse([t for t in row if t != PAD] + [EOS])
            code = parsed[-1]
            assert isinstance(code, CodeSegment), "the grammar ends every sample with a closed code segment"
            segments.append(code)
        return segments, seconds

    # ---- saving -----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """The model and the token space in one directory (see the module docstring)."""
        directory = Path(directory)
        save_causal_lm(self.model, directory)
        self.space.export_hf(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> MixedPrior:
        """Load a prior written by :meth:`save_pretrained` (offline), in eval mode."""
        directory = Path(directory)
        if not (directory / "config.json").is_file() or not (directory / "token_space.json").is_file():
            raise FileNotFoundError(
                f"{directory} is not a mixed prior directory (config.json and token_space.json); train one with "
                "`vqtok train-mixed`."
            )
        model = load_causal_lm(directory)
        settings = getattr(model.config, CONFIG_KEY, None)
        if not isinstance(settings, dict):
            raise ValueError(f"{directory} holds a transformers model but not a mixed prior (no {CONFIG_KEY!r}).")
        lengths = {name: [tuple(p) for p in pairs] for name, pairs in settings["lengths"].items()}
        prior = cls(TokenSpace.load(directory), lengths, TransformerConfig(**settings["model"]), model=model)
        return prior.to(map_location).eval()
