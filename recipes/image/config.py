"""The config schema shared by the image recipes (train-tokenizer, tokenize, reconstruct, evaluate, quickstart).

One schema for every image verb, so one preset (``tiny``, ``image_vqvae``, ...) serves them all; each
recipe reads the sections it needs. ``model`` is :class:`modalities.image.ImageTokenizerConfig`
itself, so its fields and checks are defined once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from modalities.image import ImageTokenizerConfig
from recipes.engine.config import check_positive, check_run_fields
from recipes.engine.shards import parse_shard


@dataclass
class DataConfig:
    """Which images: a dataset name understood by ``modalities.image.load_image_dataset`` and its splits."""

    name: str = "digits"  # digits (bundled, offline), fashion_mnist, cifar10_subset, mnist, cifar10, imagefolder
    root: str | None = None  # folder holding the files; null: $VQTOK_DATA or the loader's default place
    download: bool = False  # allow fetching from the network (never by default)
    train_split: str = "train"
    eval_split: str = "test"  # held-out images for evaluation, reconstructions and the quickstart figures
    max_train_images: int | None = None  # a seeded random subset of the training split; null: all of it

    def __post_init__(self) -> None:
        check_positive("data", self, "max_train_images", optional=True)


@dataclass
class TrainConfig:
    """Step-based Adam training with periodic evaluation and checkpoints."""

    steps: int = 2000  # optimizer steps in total; a resumed run continues up to this count
    batch_size: int = 64
    lr: float = 3e-4
    schedule: str = "constant"  # "constant", or "cosine": decays to 0 at train.steps (set steps to fit the budget)
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these first steps
    weight_decay: float = 0.0
    adam_beta2: float = 0.999  # Adam's second-moment decay; 0.99 adapts faster, which helps small batches
    grad_clip: float | None = 1.0  # max global gradient norm; null: no clipping
    max_minutes: float | None = None  # wall-clock budget per invocation; stops early with a checkpoint
    log_every: int = 25  # steps between training rows of metrics.jsonl (means over the interval)
    eval_every: int = 500  # steps between evaluations on the held-out split (and one at the end)
    eval_images: int | None = 512  # evaluate on the first N held-out images during training; null: all
    checkpoint_every: int = 200  # steps between checkpoints (and one at the end)

    def __post_init__(self) -> None:
        check_positive("train", self, "steps", "batch_size", "lr", "log_every", "eval_every", "checkpoint_every")
        check_positive("train", self, "grad_clip", "max_minutes", "eval_images", optional=True)
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0; got {self.weight_decay}.")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"train.schedule must be 'constant' or 'cosine'; got {self.schedule!r}.")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0; got {self.warmup_steps}.")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ValueError(f"train.adam_beta2 must be in (0, 1); got {self.adam_beta2}.")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based); a function of the step alone, so resumes match."""
        scale = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "cosine":
            scale *= 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return self.lr * scale


@dataclass
class EvalConfig:
    """The ``evaluate`` verb and the final figures of ``quickstart``."""

    split: str | None = None  # null: data.eval_split
    batch_size: int = 256
    max_images: int | None = None  # the first N images of the split; null: all

    def __post_init__(self) -> None:
        check_positive("eval", self, "batch_size")
        check_positive("eval", self, "max_images", optional=True)


@dataclass
class TokenizeConfig:
    """The ``tokenize`` verb: a split to a code corpus on disk."""

    split: str = "train"
    batch_size: int = 256
    chunk_size: int = 2048  # images per chunk: the unit written atomically, resumed after a kill, and merged
    shard: str | None = None  # "I/N": encode only the I-th of N equal runs of chunks (0-based); null: all
    merge: bool = False  # only merge the chunks earlier shard runs wrote (an error while some are missing)

    def __post_init__(self) -> None:
        check_positive("tokenize", self, "batch_size", "chunk_size")
        parse_shard(self.shard)


@dataclass
class ReconstructConfig:
    """The ``reconstruct`` verb: a PNG grid of held-out images above their reconstructions."""

    split: str | None = None  # null: data.eval_split
    num_images: int = 16  # drawn at random (seeded) from the split
    per_row: int = 8
    min_cell: int = 64  # small images are enlarged (nearest neighbour) to at least this many pixels

    def __post_init__(self) -> None:
        check_positive("reconstruct", self, "num_images", "per_row", "min_cell")


@dataclass
class ImageRecipeConfig:
    """Everything an image recipe needs; see the sections for the fields."""

    modality: str = "image"  # picks the recipes of a verb; speech recipes will have their own schema
    name: str = "image"  # run name; train-tokenizer writes to runs/<name> unless out is set
    seed: int = 0  # seeds weights, data order and sampling; codebook seeding is model.seed
    device: str = "cpu"  # cpu, cuda, cuda:N, or auto (CUDA when available)
    threads: int | None = None  # CPU threads for torch; null: torch's default. Small models on a busy
    # machine run much faster on 1 thread: a second one mostly waits at every parallel region.
    precision: str = "fp32"  # fp32, or bf16 autocast (CUDA, or a CPU with native bf16; codebooks stay fp32)
    out: str | None = None  # output: a run dir, corpus dir, reconstruction dir or JSON file (per verb)
    tokenizer: str | None = None  # tokenizer directory read by tokenize, reconstruct and evaluate
    data: DataConfig = field(default_factory=DataConfig)
    model: ImageTokenizerConfig = field(default_factory=ImageTokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)

    def __post_init__(self) -> None:
        check_run_fields(self, "image")
