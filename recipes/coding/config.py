"""The config of the rate verbs (compress, decompress, rd): each modality's recipe schema plus their sections.

``ImageCodingConfig`` extends :class:`recipes.tokenizer.config.ImageRecipeConfig`, so every image preset
(``tiny``, ``fashion_mnist_vqvae``, ...) also configures these verbs: ``data`` says which images,
``tokenizer`` which tokenizer, and the new ``prior``, ``compress``, ``decompress`` and ``rd`` the rest.
``SpeechCodingConfig`` does the same for the speech presets (``speech_tiny``, ``speech_fsdd``, ...).
The sections are one schema with each modality's defaults and options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modalities.speech.units.config import UnitsTokenizerConfig
from recipes.engine.config import check_positive
from recipes.tokenizer.config import SPLITS, ImageRecipeConfig, SpeechRecipeConfig, UnitsTrainConfig

FILE_SUFFIX = ".vqc"


@dataclass
class CompressConfig:
    """The ``compress`` verb: which items go into one code file, and how they are coded."""

    input: str | None = None  # a file or a folder of them (images: PNG, JPEG, ...; speech: WAV, FLAC); null: a split
    split: str | None = None  # data set split when input is null; null: data.eval_split
    max_items: int | None = None  # the first N items of the split; null: all
    label: int | None = None  # class label of every item for a class-conditional prior; null: their own (files: none)
    chunk_size: int = 256  # items coded together (one sequential pass of the prior per chunk)
    # without a prior: training items whose code frequencies code the file, as `rd` does; null: all
    fit_items: int | None = 5000

    def __post_init__(self) -> None:
        check_positive("compress", self, "chunk_size")
        check_positive("compress", self, "max_items", "fit_items", optional=True)


@dataclass
class DecompressConfig:
    """The ``decompress`` verb: the code file to read (each modality adds what to write)."""

    input: str | None = None  # a file written by `vqtok compress`


@dataclass
class RDConfig:
    """The ``rd`` verb: tokenizers (and optional priors) against classic codecs on the same held-out items."""

    tokenizers: list[str] = field(default_factory=list)  # tokenizer directories, one point each
    priors: list[str] = field(default_factory=list)  # prior directories; each is matched to its tokenizer by identity
    split: str | None = None  # held-out split; null: data.eval_split
    max_items: int | None = 1000  # the first N held-out items; null: all
    fit_items: int | None = 5000  # training items whose codes fit the unigram model of a tokenizer without a prior
    chunk_size: int = 256  # items coded together by a prior
    # Residual tokenizers decoded with only their first d levels, one point per depth joined as a curve:
    # a list such as [1, 2, 4] or "all" (1..levels); null: every level, one point per tokenizer.
    depths: list[int] | str | None = None
    plot: bool = True  # write rd.png beside rd.json

    def __post_init__(self) -> None:
        check_positive("rd", self, "chunk_size")
        check_positive("rd", self, "max_items", "fit_items", optional=True)
        depths = self.depths
        bad_list = isinstance(depths, list) and (
            not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths)
        )
        if bad_list or (isinstance(depths, str) and depths != "all"):
            raise ValueError(f"rd.depths must be null, 'all' or a list of levels such as [1,2,4]; got {depths!r}.")


@dataclass
class ImageDecompressConfig(DecompressConfig):
    png: bool = True  # also write one PNG per image (images.npy is always written)


@dataclass
class ImageRDConfig(RDConfig):
    """``rd`` for images: beside PNG, JPEG and WebP."""

    jpeg_qualities: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 75, 90, 95])
    webp_qualities: list[int] = field(default_factory=lambda: [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    codec_layout: str = "mosaic"  # mosaic: one file of all images side by side (headers amortised, as ours); per_image

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.codec_layout not in ("mosaic", "per_image"):
            raise ValueError(f"rd.codec_layout must be 'mosaic' or 'per_image'; got {self.codec_layout!r}.")
        for name, top in (("jpeg_qualities", 95), ("webp_qualities", 100)):
            if any(not 0 <= q <= top for q in getattr(self, name)):
                raise ValueError(f"rd.{name} must lie in [0, {top}]; got {getattr(self, name)}.")


@dataclass
class ImageCodingConfig(ImageRecipeConfig):
    """Image recipes' config plus the prior and the compress, decompress and rd sections."""

    prior: str | None = None  # prior directory trained on this tokenizer's codes; null: code frequencies
    compress: CompressConfig = field(default_factory=CompressConfig)
    decompress: ImageDecompressConfig = field(default_factory=ImageDecompressConfig)
    rd: ImageRDConfig = field(default_factory=ImageRDConfig)


def _speech_split(section: str, split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"{section}.split must be one of {SPLITS} (data.train or data.eval); got {split!r}.")


@dataclass
class SpeechCompressConfig(CompressConfig):
    """``compress`` for speech: ``split`` is train (data.train) or eval (data.eval)."""

    split: str | None = "eval"
    chunk_size: int = 64
    fit_items: int | None = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        _speech_split("compress", self.split)


@dataclass
class SpeechDecompressConfig(DecompressConfig):
    wav: bool = False  # also decode each utterance to a WAV file (implied by speaker)
    speaker: str | None = None  # the training speaker whose voice the WAVs take (required when the tokenizer has some)


@dataclass
class SpeechRDConfig(RDConfig):
    """``rd`` for speech: beside Opus, Vorbis and MP3; ``split`` is train (data.train) or eval (data.eval)."""

    split: str | None = "eval"
    max_items: int | None = 50
    fit_items: int | None = 500
    chunk_size: int = 64
    # libsndfile compression levels (0: best quality .. 1: smallest) for Opus, Vorbis and MP3
    codec_levels: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])

    def __post_init__(self) -> None:
        super().__post_init__()
        _speech_split("rd", self.split)
        if any(not 0.0 <= level < 1.0 for level in self.codec_levels):
            raise ValueError(f"rd.codec_levels must lie in [0, 1); got {self.codec_levels}.")


@dataclass
class SpeechCodingConfig(SpeechRecipeConfig):
    """Speech recipes' config plus the prior and the compress, decompress and rd sections."""

    threads: int | None = 1  # CPU threads for torch; null: torch's default
    prior: str | None = None  # prior directory trained on this tokenizer's codes; null: code frequencies
    compress: SpeechCompressConfig = field(default_factory=SpeechCompressConfig)
    decompress: SpeechDecompressConfig = field(default_factory=SpeechDecompressConfig)
    rd: SpeechRDConfig = field(default_factory=SpeechRDConfig)


@dataclass
class SpeechUnitsCodingConfig(SpeechCodingConfig):
    """The rate verbs' config for speech units tokenizers (modality ``speech-units``)."""

    modality: str = "speech-units"
    model: UnitsTokenizerConfig = field(default_factory=UnitsTokenizerConfig)
    train: UnitsTrainConfig = field(default_factory=UnitsTrainConfig)
