"""The config schema of ``vqtok bpe``: which corpora, the unit BPE, and the two priors it compares."""

from __future__ import annotations

from dataclasses import dataclass, field

from priors import TransformerConfig
from recipes.engine.config import RunConfig, check_positive
from recipes.engine.schedule import TrainConfig

_MODEL_TYPES = ("bpe", "unigram")


@dataclass
class UnitBPEConfig:
    """The sentencepiece model over codes (one character per code)."""

    vocab_size: int = 512  # pieces in all, the single codes included (at least codebook size + 4)
    model_type: str = "bpe"  # bpe or unigram
    dedup: bool = False  # merge each run of a repeated code into one unit first (speech-unit LMs' deduplicated units)

    def __post_init__(self) -> None:
        if self.model_type not in _MODEL_TYPES:
            raise ValueError(f"bpe.model_type must be one of {_MODEL_TYPES}; got {self.model_type!r}.")
        if self.vocab_size < 8:
            raise ValueError(f"bpe.vocab_size must be at least 8; got {self.vocab_size}.")


@dataclass
class BPERecipeConfig(RunConfig):
    """Everything ``vqtok bpe`` needs; the two priors share ``model`` and ``train``."""

    modality: str = "bpe"  # picks the bpe recipe
    name: str = "bpe"  # run name; results go to runs/<name> unless out is set
    corpus: str | None = None  # training code corpus (`vqtok tokenize`): BPE and both priors learn from it
    eval_corpus: str | None = None  # held-out code corpus: compression and bits per original code
    max_items: int | None = None  # use the first N training items; null: all
    eval_items: int | None = None  # score the first N held-out items; null: all
    bpe: UnitBPEConfig = field(default_factory=UnitBPEConfig)
    model: TransformerConfig = field(default_factory=TransformerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("", self, "max_items", "eval_items", optional=True)
        check_positive("", self, "eval_batch_size")
