"""A transformer prior over codes, built on Hugging Face ``transformers`` (a causal LM made from a config).

Dimension legend: ``b`` batch, ``n`` codes per item, ``V`` vocabulary size, ``K_l`` level ``l``'s
codebook size, ``C`` classes.

Codes become word-like tokens in one vocabulary::

    ids 0 .. C-1        class tokens (the condition, as a prefix)
    id  C               <bos>: the prefix of an unconditional item
    ids C+1 ..          level 0's codes, then level 1's, ... (each level its own range of K_l ids)

An item is ``[prefix] + level 0 in raster order + level 1 in raster order + ...``, so one model
covers a VQ-VAE-2 hierarchy (every bottom code sees the whole top grid). Sampling runs
``generate()`` with its KV cache and :class:`ValidCodesLogitsProcessor`, which allows at each
position only the ids of that position's level. The saved prior is a plain transformers model
directory (``LlamaForCausalLM.from_pretrained`` reads it); the layout rides along in ``config.json``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList
from transformers.utils import logging as hf_logging

from priors.base import CodeLayout, CodePrior, PriorOutput, SampleResult
from priors.sampling import SamplingConfig
from tokenizers_vq.io import set_umask_mode
from tokenizers_vq.pretrained import DIGEST_KEY, check_weights_file, tensors_digest

CONFIG_KEY = "vqtok_prior"  # the entry of config.json that holds the layout and our settings


def save_causal_lm(model: LlamaForCausalLM, directory: Path) -> None:
    """``model.save_pretrained(directory)`` with the digest of its tensors in config.json (an extra key that
    transformers keeps and ignores), so :func:`load_causal_lm` detects damaged weights."""
    setattr(model.config, DIGEST_KEY, tensors_digest(model.state_dict()))
    with _quiet():
        model.save_pretrained(directory)
    for written in Path(directory).glob("*.safetensors"):  # transformers writes them 0600, the rest follows the umask
        set_umask_mode(written)


def load_causal_lm(directory: Path) -> LlamaForCausalLM:
    """The model of a directory written by :func:`save_causal_lm` (offline), its weights checked against the
    digest when config.json has one."""
    check_weights_file(directory)
    with _quiet():
        return LlamaForCausalLM.from_pretrained(directory, local_files_only=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without transformers' progress bars: a verb's standard error keeps to its own lines (a refusal is one line)."""
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


@dataclass
class TransformerConfig:
    """Architecture of the transformer prior (a Llama decoder: RMSNorm, rotary positions, SwiGLU)."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384  # SwiGLU width; ~3x hidden_size keeps the MLP near a 4x GELU MLP in size
    attention_dropout: float = 0.0
    label_dropout: float = 0.0  # training: replace the class token by <bos> this often (unconditional samples too)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer; got {value!r}.")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"model.num_heads ({self.num_heads}) must divide model.hidden_size ({self.hidden_size}) into an even "
                "head size (rotary positions rotate pairs of channels)."
            )
        for name in ("attention_dropout", "label_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1); got {getattr(self, name)}.")


@dataclass(frozen=True)
class TokenLayout:
    """Where each level's codes and the prefix tokens sit in the vocabulary (see the module docstring)."""

    layout: CodeLayout

    @property
    def bos(self) -> int:
        return self.layout.num_classes

    def offset(self, level: int) -> int:
        """Id of code 0 of ``level``."""
        return self.layout.num_classes + 1 + sum(self.layout.codebook_sizes[:level])

    @property
    def vocab_size(self) -> int:
        return self.offset(self.layout.num_levels)

    def level_of_positions(self) -> torch.Tensor:
        """Level of each of the ``n`` code positions, ``(n,)`` int64."""
        return torch.cat([torch.full((m,), lvl) for lvl, m in enumerate(self.layout.level_lengths)])

    def allowed(self) -> torch.Tensor:
        """``(n, V)`` bool: which ids may appear at each code position."""
        ids = torch.arange(self.vocab_size)
        lo = torch.tensor([self.offset(lvl) for lvl in range(self.layout.num_levels)])
        hi = lo + torch.tensor(self.layout.codebook_sizes)
        levels = self.level_of_positions()
        return (ids[None] >= lo[levels, None]) & (ids[None] < hi[levels, None])

    def prefix(self, labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Prefix ids ``(b, 1)``: the class token of each label, or ``<bos>``."""
        if labels is None:
            return torch.full((batch, 1), self.bos, dtype=torch.long, device=device)
        return labels.to(device).long()[:, None]

    def to_ids(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Codes (one ``(b, *grid)`` per level) → ids ``(b, n)``."""
        return torch.cat([g.flatten(1).long() + self.offset(lvl) for lvl, g in enumerate(levels)], dim=1)

    def to_codes(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Ids ``(b, n)`` (prefix removed) → codes, one ``(b, *grid)`` per level."""
        parts = torch.split(ids, self.layout.level_lengths, dim=1)
        return [
            (p - self.offset(lvl)).reshape(ids.shape[0], *shape)
            for lvl, (p, shape) in enumerate(zip(parts, self.layout.shapes, strict=True))
        ]


def seeded_generate(
    owner: nn.Module,
    model: LlamaForCausalLM,
    prompt: torch.Tensor,
    generation: GenerationConfig,
    processors: LogitsProcessorList,
    seed: int,
) -> tuple[torch.Tensor, float]:
    """``model.generate`` from ``prompt`` ``(b, n)`` with ``owner`` in eval mode; the ids ``(b, n + new)`` and seconds.

    generate() draws from the global generator: it is seeded with ``seed`` inside a fork, so the
    caller's random streams are untouched and the same seed gives the same samples.
    """
    was_training = owner.training
    owner.eval()
    devices = [prompt.device] if prompt.device.type == "cuda" else []
    start = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            ids = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                 generation_config=generation, logits_processor=processors)  # fmt: skip
    finally:
        owner.train(was_training)
    return ids, time.perf_counter() - start


class ValidCodesLogitsProcessor(LogitsProcessor):
    """Allows only the ids of the right level at each generated position (all others get ``-inf``).

    ``prefix_length`` is the number of prompt tokens before the first code; the position being
    generated is ``input_ids.shape[1] - prefix_length``. ``allowed`` is :meth:`TokenLayout.allowed`.
    """

    def __init__(self, allowed: torch.Tensor, prefix_length: int = 1) -> None:
        self.allowed, self.prefix_length = allowed, prefix_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        position = input_ids.shape[1] - self.prefix_length
        if not 0 <= position < self.allowed.shape[0]:
            raise ValueError(
                f"generation went to code position {position}, outside the {self.allowed.shape[0]} positions of the layout."
            )
        mask = self.allowed[position].to(scores.device)
        return scores.masked_fill(~mask, float("-inf"))


class TransformerPrior(CodePrior):
    """A causal transformer over codes as tokens; conditioning as a prefix token.

    Shape contract for ``CodeLayout(shapes=[(7, 7)], codebook_sizes=[64], num_classes=10)``: ids are
    ``(b, 1 + 49)``; ``forward([codes (b, 7, 7)], labels (b,))`` → logits ``[(b, 7, 7, 64)]`` (each
    position's scores over its own level's codes) and NLL ``(b, 49)``.

    Args:
        layout: the codes to model.
        config: the architecture; ignored when ``model`` is given.
        model: an existing ``LlamaForCausalLM`` (e.g. from ``from_pretrained``).
    """

    def __init__(
        self, layout: CodeLayout, config: TransformerConfig | None = None, model: LlamaForCausalLM | None = None
    ) -> None:
        super().__init__()
        self.layout, self.config = layout, config or TransformerConfig()
        self.tokens = TokenLayout(layout)
        if model is None:
            c = self.config
            hf_config = LlamaConfig(
                vocab_size=self.tokens.vocab_size,
                hidden_size=c.hidden_size,
                intermediate_size=c.intermediate_size,
                num_hidden_layers=c.num_layers,
                num_attention_heads=c.num_heads,
                num_key_value_heads=c.num_heads,
                max_position_embeddings=1 + layout.codes_per_item,
                attention_dropout=c.attention_dropout,
                bos_token_id=self.tokens.bos,
                eos_token_id=None,
                # Never emitted (no EOS ends a sequence early); set only because generate() wants one.
                pad_token_id=self.tokens.offset(0),
                tie_word_embeddings=False,
            )
            setattr(hf_config, CONFIG_KEY, {"layout": layout.to_dict(), "model": asdict(self.config)})
            model = LlamaForCausalLM(hf_config)
        self.model = model
        self.register_buffer("_allowed", self.tokens.allowed(), persistent=False)

    def _prefix(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
        if labels is not None and self.training and self.config.label_dropout > 0:
            drop = torch.rand(batch, device=labels.device) < self.config.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.tokens.bos), labels)
        return self.tokens.prefix(labels, batch, self._allowed.device)

    def forward(self, levels: Sequence[torch.Tensor], labels: torch.Tensor | None = None) -> PriorOutput:
        batch = self.layout.check(levels, labels)
        device = self._allowed.device
        levels = [g.to(device).long() for g in levels]
        ids = torch.cat([self._prefix(labels, batch), self.tokens.to_ids(levels)], dim=1)  # (b, 1 + n)
        logits = self.model(input_ids=ids[:, :-1]).logits  # (b, n, V): position i predicts code i
        per_level, start = [], 0
        for lvl, (length, shape, k) in enumerate(
            zip(self.layout.level_lengths, self.layout.shapes, self.layout.codebook_sizes, strict=True)
        ):
            lo = self.tokens.offset(lvl)
            # Only the level's own ids: the likelihood is normalised over the codes valid there.
            per_level.append(logits[:, start : start + length, lo : lo + k].reshape(batch, *shape, k))
            start += length
        return PriorOutput.from_logits(per_level, levels)

    def _sample(
        self, labels: torch.Tensor | None, batch_size: int | None, sampling: SamplingConfig, cached: bool
    ) -> SampleResult:
        """Codes of every level, top first, drawn with ``generate()`` (``cached``: with its KV cache).

        ``labels`` ``(b,)`` start each item from its class token; ``labels=None`` with ``batch_size``
        starts from ``<bos>`` (an unconditional prior, or a conditional one trained with ``label_dropout``).
        """
        if labels is not None:
            self.layout.check_labels(labels, labels.shape[0])
            batch = labels.shape[0]
        elif batch_size is None or batch_size < 1:
            raise ValueError("sample needs labels (b,) or batch_size >= 1.")
        else:
            batch = batch_size
        n = self.layout.codes_per_item
        generation = GenerationConfig(
            do_sample=True, max_new_tokens=n, min_new_tokens=n, use_cache=cached,
            top_k=None, top_p=None, temperature=None,  # our own warpers run after the validity mask
            bos_token_id=self.tokens.bos, pad_token_id=self.tokens.offset(0), eos_token_id=None,
        )  # fmt: skip
        processors = LogitsProcessorList([ValidCodesLogitsProcessor(self._allowed), *sampling.warpers()])
        prompt = self.tokens.prefix(labels, batch, self._allowed.device)
        ids, seconds = seeded_generate(self, self.model, prompt, generation, processors, sampling.seed)
        return SampleResult(levels=self.tokens.to_codes(ids[:, 1:]), labels=labels, seconds=seconds)

    # ---- saving -----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """A plain transformers directory (``config.json``, ``model.safetensors``, ``generation_config.json``)."""
        directory = Path(directory)
        save_causal_lm(self.model, directory)
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> TransformerPrior:
        """Load a prior written by :meth:`save_pretrained` (offline: nothing is downloaded), in eval mode."""
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} is not a transformer prior directory: config.json is missing.")
        model = load_causal_lm(directory)
        settings = getattr(model.config, CONFIG_KEY, None)
        if not isinstance(settings, dict):
            raise ValueError(
                f"{directory} is a transformers model but not a code prior: its config.json has no {CONFIG_KEY!r} entry."
            )
        prior = cls(CodeLayout.from_dict(settings["layout"]), TransformerConfig(**settings["model"]), model=model)
        return prior.to(map_location).eval()
