"""The config schema shared by the prior recipes (train-prior, sample, evaluate, cas).

One schema for every prior verb, so one preset (``prior_pixelcnn``, ``prior_transformer``, ...) serves
them all. ``modality: prior`` makes the CLI pick these recipes; whether the codes are images or
speech comes from the code corpus itself (its ``meta.json``). The architectures are the library's
own config classes (:class:`priors.ConvNetConfig`, :class:`priors.TransformerConfig`), and so are
the sampling controls and the CAS classifier, so their fields and checks are defined once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from priors import ClassifierConfig, ConvNetConfig, SamplingConfig, TransformerConfig
from recipes.engine.config import RunConfig, check_positive
from recipes.engine.schedule import TrainConfig

_KINDS = ("pixelcnn", "transformer")


@dataclass
class PriorModelConfig:
    """Which prior and its architecture: ``kind`` picks the section that is used."""

    kind: str = "pixelcnn"  # pixelcnn (gated PixelCNN; WaveNet-like for speech) or transformer
    conditional: bool = True  # condition on the corpus labels (image class, spoken digit) when it has them
    max_length: int | None = None  # speech: codes per utterance (pad/cut); null: the longest training utterance
    pixelcnn: ConvNetConfig = field(default_factory=ConvNetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"model.kind must be one of {_KINDS}; got {self.kind!r}.")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"model.max_length must be at least 2 or null; got {self.max_length}.")


@dataclass
class SampleConfig:
    """The ``sample`` verb: how many, for which classes, how, and what to write."""

    num_samples: int = 16  # per class for a conditional prior (classes: all, or `classes`); in all otherwise
    classes: list[int] | None = None  # class indices to sample; null: every class
    batch_size: int = 64
    cached: bool = True  # cached PixelCNN / KV-cached transformer sampling; false: one full pass per code
    decode: bool = True  # decode with the corpus's tokenizer to a PNG grid (images) or WAV files (speech)
    per_row: int | None = None  # images per grid row; null: num_samples (one row per class)
    min_cell: int = 56  # small images are enlarged (nearest neighbour) to at least this many pixels
    speaker: str | None = None  # speech: the voice to decode with (a training speaker); null: the first
    rejection_threshold: float | None = None  # keep samples a real-data classifier gives p(class) > this
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        check_positive("sample", self, "num_samples", "batch_size", "min_cell")
        check_positive("sample", self, "per_row", optional=True)
        if self.rejection_threshold is not None and not 0.0 <= self.rejection_threshold < 1.0:
            raise ValueError(f"sample.rejection_threshold must be in [0, 1) or null; got {self.rejection_threshold}.")


@dataclass
class PriorEvalConfig:
    """The ``evaluate`` verb: held-out bits per code and bits/dim."""

    batch_size: int = 256
    max_items: int | None = None  # the first N items of the held-out corpus; null: all
    distortion: bool = True  # images: add the decoder's term for an upper bound on the image NLL (elbo_bits_per_dim)
    distortion_fit_items: int = 2000  # training images used to fit the decoder Gaussian's sigma

    def __post_init__(self) -> None:
        check_positive("eval", self, "batch_size", "distortion_fit_items")
        check_positive("eval", self, "max_items", optional=True)


@dataclass
class CASConfig:
    """The ``cas`` verb: Classification Accuracy Score of class-conditional samples, with optional rejection."""

    samples_per_class: int = 500
    real_train_items: int | None = 5000  # real training images for the reference classifier; null: all
    test_items: int | None = None  # real held-out images to test on; null: the whole held-out split
    rejection_threshold: float | None = None  # also report CAS on samples that pass this classifier threshold
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        check_positive("cas", self, "samples_per_class")
        if self.rejection_threshold is not None and not 0.0 <= self.rejection_threshold < 1.0:
            raise ValueError(f"cas.rejection_threshold must be in [0, 1) or null; got {self.rejection_threshold}.")


@dataclass
class PriorRecipeConfig(RunConfig):
    """Everything a prior recipe needs; see the sections for the fields."""

    modality: str = "prior"  # picks the prior recipes of a verb
    name: str = "prior"  # run name; train-prior writes to runs/<name> unless out is set
    corpus: str | None = None  # training code corpus (a `vqtok tokenize` directory)
    eval_corpus: str | None = None  # held-out code corpus for evaluation during training and for `evaluate`
    prior: str | None = None  # prior directory for sample, evaluate and cas (a run's prior/ folder)
    data_root: str | None = None  # where the corpus's data set lives (CAS and distortion); null: its default place
    model: PriorModelConfig = field(default_factory=PriorModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: PriorEvalConfig = field(default_factory=PriorEvalConfig)
    cas: CASConfig = field(default_factory=CASConfig)
