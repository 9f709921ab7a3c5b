"""The config schemas of the tokenizer verbs, one per modality: ``ImageRecipeConfig`` and ``SpeechRecipeConfig``.

One schema per modality serves every verb of that modality (train-tokenizer, tokenize, reconstruct,
evaluate, quickstart; for speech also phones and convert), so one preset (``tiny``, ``image_vqvae``,
``speech_tiny``, ``speech_fsdd``, ``speech_festival``, ...) serves them all; each recipe reads the
sections it needs. ``model`` is the modality's tokenizer config itself
(:class:`modalities.image.ImageTokenizerConfig`, :class:`modalities.speech.SpeechTokenizerConfig`) and
speech's utterance selections are :class:`modalities.speech.Selection`, so their fields and checks are
defined once. The ``train`` section of images is the shared :class:`recipes.engine.schedule.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modalities.image import ImageTokenizerConfig
from modalities.speech import Selection, SpeechTokenizerConfig
from modalities.speech.data import LAYOUTS
from modalities.speech.labels import PHONE_MAPS
from modalities.speech.layouts import speaker_naming
from modalities.speech.units.config import UnitsSchedule, UnitsTokenizerConfig
from recipes.engine.config import RunConfig, check_positive
from recipes.engine.schedule import TrainConfig
from recipes.engine.shards import parse_shard

__all__ = ["ImageRecipeConfig", "SpeechRecipeConfig", "TrainConfig"]

# ---- images ---------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Which images: a dataset name understood by ``modalities.image.load_image_dataset`` and its splits."""

    name: str = "digits"  # digits (bundled, offline), fashion_mnist, cifar10_subset, mnist, cifar10, imagefolder, hf
    root: str | None = None  # folder holding the files; null: $VQTOK_DATA or the loader's default place
    download: bool = False  # allow fetching from the network (never by default)
    train_split: str = "train"
    eval_split: str = "test"  # held-out images for evaluation, reconstructions and the quickstart figures
    max_train_images: int | None = None  # a seeded random subset of the training split; null: all of it
    image_column: str | None = None  # hf only: the dataset's image column; null: its Image column
    label_column: str | None = None  # hf only: the dataset's label column; null: its ClassLabel column (or none)

    def __post_init__(self) -> None:
        check_positive("data", self, "max_train_images", optional=True)


@dataclass
class EvalConfig:
    """The ``evaluate`` verb and the final figures of ``quickstart``."""

    split: str | None = None  # null: data.eval_split
    batch_size: int = 256
    max_images: int | None = None  # the first N images of the split; null: all

    def __post_init__(self) -> None:
        check_positive("eval", self, "batch_size")
        check_positive("eval", self, "max_images", optional=True)


def check_engine(engine: str, ray_address: str | None) -> None:
    """``tokenize.engine`` is local or ray, and only ray takes ``tokenize.ray_address``."""
    if engine not in ("local", "ray"):
        raise ValueError(f"tokenize.engine must be local or ray; got {engine!r}.")
    if ray_address is not None and engine != "ray":
        raise ValueError(f"tokenize.ray_address={ray_address!r} is for the Ray engine; add --engine ray.")


@dataclass
class _TokenizeRun:
    """What the ``tokenize`` verb takes for every modality: a split to a code corpus on disk, in chunks."""

    split: str = "train"
    chunk_size: int = 2048  # items per chunk: the unit written atomically, resumed after a kill, and merged
    shard: str | None = None  # "I/N": encode only the I-th of N equal runs of chunks (0-based); null: all
    merge: bool = False  # only merge the chunks earlier shard runs wrote (an error while some are missing)
    format: str = "npy"  # npy: memory-mappable .npy arrays; hf: a Hugging Face datasets dataset (load_from_disk)
    engine: str = "local"  # local: this process (or each torchrun rank); ray: a Ray Data job (docs/distributed.md)
    ray_address: str | None = None  # engine ray: a running cluster (auto, HOST:PORT); null: start a local Ray

    def __post_init__(self) -> None:
        if self.format not in ("npy", "hf"):
            raise ValueError(f"tokenize.format must be npy or hf; got {self.format!r}.")
        check_positive("tokenize", self, "chunk_size")
        parse_shard(self.shard)
        check_engine(self.engine, self.ray_address)


@dataclass
class TokenizeConfig(_TokenizeRun):
    """The ``tokenize`` verb for images."""

    batch_size: int = 256  # images encoded at once

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("tokenize", self, "batch_size")


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
class ImageRecipeConfig(RunConfig):
    """Everything an image recipe needs; see the sections for the fields."""

    modality: str = "image"  # picks the recipes of a verb; speech recipes will have their own schema
    name: str = "image"  # run name; train-tokenizer writes to runs/<name> unless out is set
    precision: str = "fp32"  # fp32, or bf16 autocast (CUDA, or a CPU with native bf16; codebooks stay fp32)
    tokenizer: str | None = None  # tokenizer directory read by tokenize, reconstruct and evaluate
    data: DataConfig = field(default_factory=DataConfig)
    model: ImageTokenizerConfig = field(default_factory=ImageTokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)


# ---- speech ----------------------------------------------------------------------------------------

SPLITS = ("train", "eval")


def _split(section: str, value: str) -> None:
    if value not in SPLITS:
        raise ValueError(f"{section}.split must be one of {SPLITS} (data.train or data.eval); got {value!r}.")


@dataclass
class SpeechDataConfig:
    """Which audio: a folder (``root``, or ``$VQTOK_DATA/<name>``), how to read it, and its two splits."""

    name: str = (
        "fsdd"  # folder name under the data directory ($VQTOK_DATA, else ../shared/data): fsdd, festival-phones;
    )
    # hf: a Hugging Face datasets folder at root (save_to_disk, or an audiofolder), indices = row positions
    root: str | None = None  # the audio folder itself; overrides name
    layout: str = "auto"  # fsdd (digit_speaker_index names), folders (speaker = folder name), or auto
    speaker_from: str | None = None  # folder, prefix (name up to speaker_pattern, default _) or regex; null: layout's
    speaker_pattern: str | None = None  # prefix: the separator; regex: a pattern with (?P<speaker>...) in the stem
    ctm: str | None = None  # a Kaldi CTM of the whole corpus (utterance id = file stem); relative: below the root
    audio_column: str | None = None  # hf only: the dataset's audio column; null: its Audio column
    label_column: str | None = None  # hf only: whole-number labels; null: its ClassLabel column (or none)
    speaker_column: str | None = None  # hf only: null: a column named speaker or speaker_id (or one speaker)
    # Which utterances train and which are held out; presets set both (FSDD: recordings 5..49 and 0..4).
    train: Selection = field(default_factory=Selection)
    eval: Selection = field(default_factory=Selection)
    phone_map: str | None = None  # fold phone labels by a named map, e.g. timit39 (TIMIT 61 -> 39)
    textgrid_tier: str | None = None  # tier holding phones in TextGrid labels; null: the first "phone" tier

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"data.layout must be one of {LAYOUTS}; got {self.layout!r}.")
        speaker_naming(self.speaker_from, self.speaker_pattern)
        if self.name == "hf" and (self.speaker_from or self.ctm):
            raise ValueError(
                "data.speaker_from and data.ctm are for folders of audio files; hf takes data.speaker_column."
            )
        if self.phone_map is not None and self.phone_map not in PHONE_MAPS:
            raise ValueError(f"data.phone_map must be one of {sorted(PHONE_MAPS)} or null; got {self.phone_map!r}.")


@dataclass
class SpeechTrainConfig:
    """Step-based Adam training on fixed-length log-mel segments, with periodic evaluation and checkpoints."""

    steps: int = 3000
    batch_size: int = 16  # segments per step
    segment_frames: int = 200  # mel frames per training segment (2 s at 100 frames/s); shorter utterances are padded
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # max global gradient norm; null: no clipping
    max_minutes: float | None = None  # wall-clock budget per invocation; stops early with a checkpoint
    log_every: int = 25
    eval_every: int = 500  # steps between evaluations (mel loss, code usage, phone mapping when labelled)
    eval_utterances: int | None = 200  # utterances of each split used by those evaluations; null: all
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        check_positive("train", self, "steps", "batch_size", "segment_frames", "lr", "log_every", "eval_every")
        check_positive("train", self, "checkpoint_every")
        check_positive("train", self, "grad_clip", "max_minutes", "eval_utterances", optional=True)
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0; got {self.weight_decay}.")


@dataclass
class SpeechEvalConfig:
    """The ``evaluate`` verb: reconstruction quality on a split."""

    split: str = "eval"
    max_utterances: int | None = 100  # the first N utterances of the split; null: all

    def __post_init__(self) -> None:
        _split("eval", self.split)
        check_positive("eval", self, "max_utterances", optional=True)


@dataclass
class SpeechTokenizeConfig(_TokenizeRun):
    """The ``tokenize`` verb for speech: utterances are encoded one at a time, chunks hold fewer of them."""

    chunk_size: int = 64  # utterances per chunk

    def __post_init__(self) -> None:
        _split("tokenize", self.split)
        super().__post_init__()


@dataclass
class SpeechReconstructConfig:
    """The ``reconstruct`` verb: WAV files of held-out utterances, their vocoder ceiling, and their reconstructions."""

    split: str = "eval"
    num_utterances: int = 4  # drawn at random (seeded) from the split
    convert: bool = True  # also write each utterance in the voice of another training speaker

    def __post_init__(self) -> None:
        _split("reconstruct", self.split)
        check_positive("reconstruct", self, "num_utterances")


@dataclass
class PhonesConfig:
    """The ``phones`` verb: fit a code→phone map on ``fit``, score it on ``score`` (null: data.train / data.eval)."""

    fit: Selection | None = None
    score: Selection | None = None
    baselines: bool = True  # also k-means on MFCC+Δ+ΔΔ, standardised and raw (same K, same frames), and random codes
    level: int = 0  # which residual level's codes to analyse
    plot: bool = True  # write confusion.png beside the figures
    # ABX error within and across speakers (modalities.speech.abx) of the codes' vectors, the encoder's vectors
    # and MFCC, on the scoring utterances' phone segments in context
    abx: bool = True
    abx_triplets: int = 20000  # at most this many triplets per mode, drawn with ``seed``; time grows linearly

    def __post_init__(self) -> None:
        check_positive("phones", self, "abx_triplets")


@dataclass
class ConvertConfig:
    """The ``convert`` verb: speak ``input`` in the voice of ``speaker`` or of a ``reference`` clip; ``out`` names the
    WAV written, or the folder it goes in (default ``converted/`` in the working directory)."""

    input: str | None = None  # an audio file
    speaker: str | None = None  # a training speaker of the tokenizer (a table of speakers)
    reference: str | None = None  # an audio file of the voice to speak in (model.speaker_conditioning=reference)


@dataclass
class SpeechRecipeConfig(RunConfig):
    """Everything a speech recipe needs; see the sections for the fields."""

    modality: str = "speech"
    name: str = "speech"  # run name; train-tokenizer writes to runs/<name> unless out is set
    precision: str = "fp32"  # fp32, or bf16 autocast (CUDA, or a CPU with native bf16; codebooks stay fp32)
    tokenizer: str | None = None  # tokenizer directory read by every verb but train-tokenizer
    # Encode with this duration penalty instead of the tokenizer's own model.duration_penalty (tokenize,
    # phones, evaluate, reconstruct, convert); null: the tokenizer's.
    duration_penalty: float | None = None
    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    model: SpeechTokenizerConfig = field(default_factory=SpeechTokenizerConfig)
    train: SpeechTrainConfig = field(default_factory=SpeechTrainConfig)
    eval: SpeechEvalConfig = field(default_factory=SpeechEvalConfig)
    tokenize: SpeechTokenizeConfig = field(default_factory=SpeechTokenizeConfig)
    reconstruct: SpeechReconstructConfig = field(default_factory=SpeechReconstructConfig)
    phones: PhonesConfig = field(default_factory=PhonesConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)


# ---- speech units ---------------------------------------------------------------------------------


@dataclass
class UnitsTrainConfig(SpeechTrainConfig):
    """The staged training of a speech units tokenizer (``modalities.speech.units.training``) on whole utterances:
    masked prediction for each of ``iteration_steps``, then the decoder for ``decoder_steps``."""

    steps: int = 0  # derived: the sum of iteration_steps and decoder_steps (set those)
    batch_size: int = 8  # utterances per step
    lr: float = 5e-4  # masked prediction's peak learning rate (warm-up, then cosine decay in each iteration)
    iteration_steps: list[int] = field(default_factory=lambda: [800, 800])
    decoder_steps: int = 400
    decoder_lr: float = 1e-3  # the decoder's constant learning rate
    adam_beta2: float = 0.98  # Adam's second-moment decay, as HuBERT and wav2vec 2.0 train their Transformers
    warmup: float = 0.1  # fraction of each iteration's steps with a rising learning rate

    def __post_init__(self) -> None:
        self.steps = self.schedule.total_steps  # always derived from the stages, so a preset sets those alone
        super().__post_init__()
        check_positive("train", self, "decoder_lr")

    @property
    def schedule(self) -> UnitsSchedule:
        return UnitsSchedule(self.iteration_steps, self.decoder_steps, self.warmup)

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        schedule = self.schedule
        if schedule.stage(step)[0] == len(schedule.iteration_steps):
            return self.decoder_lr
        return self.lr * schedule.scale(step)


@dataclass
class SpeechUnitsRecipeConfig(SpeechRecipeConfig):
    """The speech recipes' config for units tokenizers (modality ``speech-units``): the model and its training."""

    modality: str = "speech-units"
    name: str = "speech_units"
    model: UnitsTokenizerConfig = field(default_factory=UnitsTokenizerConfig)
    train: UnitsTrainConfig = field(default_factory=UnitsTrainConfig)
