"""The config schema shared by the mixed-modality recipes (train-mixed, and sample, evaluate, cas with ``modality: mixed``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from priors import ClassifierConfig, SamplingConfig, TransformerConfig
from recipes.engine.config import RunConfig, check_positive
from recipes.engine.schedule import TrainConfig

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class MixedDataConfig:
    """The two code corpora (from `vqtok tokenize`), the text prompts that introduce them, and how they mix."""

    image_corpus: str | None = None  # training image codes of a labelled data set (e.g. Fashion-MNIST)
    image_eval_corpus: str | None = None  # held-out image codes (NLL; its images test the classifier)
    audio_corpus: str | None = None  # training speech codes with an utterance label (FSDD's spoken digit)
    audio_eval_corpus: str | None = None  # held-out speech codes
    image_prompt: str = "an image of a {label}"
    audio_prompt: str = "the spoken word {label}"
    image_labels: list[str] | None = None  # one name per image class; null: the data set's class names, lower case
    audio_labels: list[str] = field(default_factory=lambda: list(DIGIT_WORDS))  # one name per audio label
    image_items: int | None = None  # the first N training images; null: all
    audio_min_codes: int = 2  # fewest codes an audio sample may have
    audio_max_codes: int = 64  # longer utterances are cut here (at 50 codes/s: 1.28 s)
    audio_share: float = 0.5  # fraction of training sequences that are audio (the smaller corpus repeats)
    text_model: str | None = None  # a sentencepiece .model with ids 0..3 = <pad> <bos> <eos> <unk>; null: train one
    text_vocab_size: int = 64  # when training the text model on the prompts

    def __post_init__(self) -> None:
        for template in (self.image_prompt, self.audio_prompt):
            if "{label}" not in template:
                raise ValueError(f"data prompts must contain {{label}}; got {template!r}.")
        if not 1 <= self.audio_min_codes <= self.audio_max_codes:
            raise ValueError(
                f"need 1 <= data.audio_min_codes <= data.audio_max_codes; got {self.audio_min_codes}, "
                f"{self.audio_max_codes}."
            )
        if not 0.0 < self.audio_share < 1.0:
            raise ValueError(f"data.audio_share must be in (0, 1); got {self.audio_share}.")
        check_positive("data", self, "image_items", optional=True)
        if self.text_vocab_size < 8:
            raise ValueError(f"data.text_vocab_size must be at least 8; got {self.text_vocab_size}.")


@dataclass
class MixedSampleConfig:
    """The ``sample`` verb: prompts, how many per prompt, how, and the voice of audio samples."""

    prompts: list[str] | None = None  # null: the prompt of every image class and every audio label
    num_samples: int = 8  # per prompt
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    speaker: str | None = None  # the voice audio samples are decoded with; null: the speech tokenizer's first
    min_cell: int = 56  # small images are enlarged (nearest neighbour) to at least this many pixels

    def __post_init__(self) -> None:
        check_positive("sample", self, "num_samples", "min_cell")


@dataclass
class MixedEvalConfig:
    """Held-out NLL per modality (``evaluate``, and during training)."""

    batch_size: int = 64
    max_items: int | None = 2000  # the first N held-out items of each modality; null: all

    def __post_init__(self) -> None:
        check_positive("eval", self, "batch_size")
        check_positive("eval", self, "max_items", optional=True)


@dataclass
class MixedCASConfig:
    """The ``cas`` verb: samples per prompt scored by classifiers trained on real data, for both modalities."""

    samples_per_class: int = 50
    real_train_items: int | None = 5000  # real training items of each modality for the classifiers; null: all
    test_items: int | None = 2000  # real held-out items of each modality to test them on; null: all
    audio_frames: int = 128  # log-mel frames the audio classifier sees (padded with each bin's quietest value)
    image_classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    audio_classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        check_positive("cas", self, "samples_per_class")
        if self.audio_frames < 8:
            raise ValueError(f"cas.audio_frames must be at least 8; got {self.audio_frames}.")


@dataclass
class MixedRecipeConfig(RunConfig):
    """Everything a mixed-modality recipe needs; see the sections for the fields."""

    modality: str = "mixed"  # picks the mixed recipes of a verb
    name: str = "mixed"  # run name; train-mixed writes to runs/<name> unless out is set
    prior: str | None = None  # prior directory for sample, evaluate and cas (a train-mixed run's prior/ folder)
    data_root: str | None = None  # where the image data set lives (the classifier's real images); null: its default
    data: MixedDataConfig = field(default_factory=MixedDataConfig)
    model: TransformerConfig = field(default_factory=TransformerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: MixedEvalConfig = field(default_factory=MixedEvalConfig)
    sample: MixedSampleConfig = field(default_factory=MixedSampleConfig)
    cas: MixedCASConfig = field(default_factory=MixedCASConfig)
