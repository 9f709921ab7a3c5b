"""Configuration of a speech tokenizer, checked when it is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modalities.speech.frontend import FrontEndConfig
from tokenizers_vq import RVQConfig, VQConfig
from tokenizers_vq.kinds import (
    KINDS,
    SEARCH_KINDS,
    QuantizerConfig,
    check_kind_fields,
    config_dict,
    level_config,
    num_codes,
)
from tokenizers_vq.pretrained import check_known_fields

_CHOICES = {
    "quantizer": ("vq", "rvq", *KINDS[1:]),
    "update": ("ema", "loss"),
    "init": ("kmeans", "random"),
    "dead_code": ("restart", "none"),
    "encoder_norm": ("none", "utterance", "shape"),
    "speaker_conditioning": ("table", "reference"),
}
# Fields added after speech tokenizers were first saved: config.json holds them only when they differ
# from their defaults, so a tokenizer saved before them keeps its config.json and content identity.
_ADDED = ("gradient", "fsq_levels", "lfq_entropy_weight", "speaker_conditioning")


def check_duration_penalty(value: Any, name: str = "duration_penalty") -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0 (the encode-time duration penalty)."""
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0 (0: off); got {value!r}.")


@dataclass
class SpeechTokenizerConfig:
    """Architecture, code rate and codebooks of a :class:`~modalities.speech.SpeechTokenizer`.

    The code rate is ``frontend.frame_rate / downsample``: 50 codes per second for the defaults
    (100 mel frames per second, ``downsample=2``); ``downsample=4`` gives 25 (the VQ-VAE paper's rate).
    """

    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    downsample: int = 2  # mel frames per code: 1, 2, 4 or 8 (one stride-2 convolution per factor 2)
    hidden_channels: int = 256  # width of encoder and decoder
    num_res_blocks: int = 3  # dilated residual blocks (dilations 1, 2, 4, ...) on each side of the resampling
    kernel_size: int = 3
    # Kernel of the decoder's convolutions; null: kernel_size. 1 decodes each code (with its speaker) on its
    # own, up to the upsampling's overlap, so a code must describe its frames alone instead of spreading
    # them over its neighbours: the codes then cluster frames much as k-means on the target would.
    decoder_kernel_size: int | None = None
    # "vq": one codebook (VQ-VAE); "rvq": residual levels (SoundStream); "fsq", "lfq", "bsq", "simvq": the
    # other quantizers (docs/quantizer.md), residual with num_quantizers > 1. Which fields each kind uses:
    # the same as in ImageTokenizerConfig's docstring.
    quantizer: str = "vq"
    num_quantizers: int = 1  # levels of the residual quantizer; must be 1 for "vq"
    # Quantizer dropout (SoundStream), "rvq" only: with this probability a training batch uses only the
    # first n ~ U{1..l} levels, so decoding the first d levels alone (a lower bitrate) stays good.
    quantizer_dropout: float = 0.0
    codebook_size: int = 128
    code_dim: int = 64
    update: str = "ema"
    init: str = "kmeans"
    dead_code: str = "restart"
    beta: float = 0.25
    decay: float = 0.99
    seed: int = 0
    gradient: str = "straight_through"  # vq, rvq, simvq: "rotation" passes gradients by the rotation trick
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # fsq: levels per dimension (1,000 codes)
    lfq_entropy_weight: float = 0.1  # lfq, bsq: weight of the entropy penalty; codebook_size must be 2^bits
    # "table": one learned embedding per name in speakers (none when speakers is empty), so the decoder speaks
    # in training voices only. "reference": a speaker encoder (d-vector style: convolutions over a reference
    # clip's log-mel, mean and deviation pooled, projected to speaker_dim) learned with the decoder, trained on
    # another utterance of the same speaker, so any speaker decodes from a clip of their voice; speakers then
    # only records who it was trained on.
    speaker_conditioning: str = "table"
    speakers: list[str] = field(default_factory=list)  # names of the decoder's speaker embeddings; empty: none
    speaker_dim: int = 64
    jitter: float = 0.0  # time-jitter probability in training (Chorowski et al. 2019): a code borrows a neighbour's
    # "utterance": the encoder sees each input with its own per-bin log-mel mean and deviation removed
    # (cepstral mean and variance normalisation), which takes out much of the speaker and the channel;
    # the decoder still predicts the globally standardised log-mel. "shape": also each frame's mean over
    # the bins (its level) removed, so codes describe spectral shape, not loudness. "none": the encoder
    # sees the standardised log-mel itself.
    encoder_norm: str = "none"
    # The decoder's target: the log-mel's first target_cepstra cepstra (DCT across bins), each standardised,
    # so squared errors weigh the envelope's shape (formants) as much as its level and tilt and codes need
    # not carry the pitch harmonics; decode gives that envelope. 0: the standardised log-mel itself.
    target_cepstra: int = 0
    # Weight of the contrastive predictive coding loss on the encoder's vectors (CPC, contrastive.py),
    # added to the reconstruction loss; 0: off (and no context network is built).
    contrastive_weight: float = 0.0
    contrastive_steps: int = 6  # future code frames each context predicts (6 at 50 codes/s: 120 ms)
    griffin_lim_iters: int = 32  # iterations of the Griffin-Lim vocoder in decode
    # Encoding only (training never uses it): a change of code costs this many times the utterance's mean
    # squared quantization error, and encode picks the codes with the least total cost by dynamic programming
    # (duration-penalised segmentation, Kamper & van Niekerk 2021). Runs of one code grow longer and follow
    # phones more closely; 0: each frame's nearest code. With "rvq" it applies to the first level.
    duration_penalty: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.frontend, dict):  # from_dict / JSON gives the nested section as a dict
            self.frontend = FrontEndConfig(**self.frontend)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"SpeechTokenizerConfig.{name} must be one of {allowed}; got {getattr(self, name)!r}.")
        for name in (
            "hidden_channels",
            "kernel_size",
            "num_quantizers",
            "codebook_size",
            "code_dim",
            "speaker_dim",
            "contrastive_steps",
            "griffin_lim_iters",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpeechTokenizerConfig.{name} must be a positive integer; got {value!r}.")
        if self.num_res_blocks < 0:
            raise ValueError(f"SpeechTokenizerConfig.num_res_blocks must be >= 0; got {self.num_res_blocks}.")
        for name in ("kernel_size", "decoder_kernel_size"):
            value = getattr(self, name)
            if name == "decoder_kernel_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ValueError(
                    f"SpeechTokenizerConfig.{name} must be a positive odd integer (centred convolutions); got {value!r}."
                )
        if self.downsample not in (1, 2, 4, 8):
            raise ValueError(
                f"SpeechTokenizerConfig.downsample must be 1, 2, 4 or 8 mel frames per code; got {self.downsample!r}. "
                "Change frontend.hop_length for other code rates."
            )
        if self.quantizer == "vq" and self.num_quantizers != 1:
            raise ValueError(
                f"quantizer='vq' has one codebook; got num_quantizers={self.num_quantizers}. Use quantizer='rvq'."
            )
        if not 0.0 <= self.quantizer_dropout <= 1.0 or (not self.residual and self.quantizer_dropout):
            raise ValueError(
                f"SpeechTokenizerConfig.quantizer_dropout must be in [0, 1], and 0 for one level; "
                f"got {self.quantizer_dropout!r} with quantizer={self.quantizer!r}, num_quantizers={self.num_quantizers}."
            )
        kind = "vq" if self.quantizer == "rvq" else self.quantizer
        check_kind_fields(
            "SpeechTokenizerConfig", kind, self.gradient, self.fsq_levels, self.codebook_size, self.lfq_entropy_weight
        )
        self.fsq_levels = list(self.fsq_levels)
        if self.duration_penalty and kind not in SEARCH_KINDS:
            raise ValueError(
                f"SpeechTokenizerConfig.duration_penalty needs a nearest-code search (quantizer vq, rvq or simvq); "
                f"{self.quantizer} has none. Set duration_penalty=0."
            )
        if len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"SpeechTokenizerConfig.speakers must be distinct names; got {self.speakers}.")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"SpeechTokenizerConfig.jitter must be in [0, 1); got {self.jitter}.")
        if isinstance(self.target_cepstra, bool) or not 0 <= self.target_cepstra <= self.frontend.n_mels:
            raise ValueError(
                f"SpeechTokenizerConfig.target_cepstra must be 0 (off) or up to frontend.n_mels = "
                f"{self.frontend.n_mels}; got {self.target_cepstra!r}."
            )
        if not self.contrastive_weight >= 0.0:
            raise ValueError(f"SpeechTokenizerConfig.contrastive_weight must be >= 0; got {self.contrastive_weight}.")
        check_duration_penalty(self.duration_penalty, "SpeechTokenizerConfig.duration_penalty")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"SpeechTokenizerConfig.decay must be in [0, 1); got {self.decay}.")

    @property
    def code_rate(self) -> float:
        """Codes per second (per level)."""
        return self.frontend.frame_rate / self.downsample

    @property
    def first_code_time(self) -> float:
        """Centre of code 0 in seconds: mel frame ``j`` is centred at ``j * hop``, code ``i`` spans frames
        ``i*d .. i*d + d - 1``."""
        return (self.downsample - 1) / 2 * self.frontend.hop_length / self.frontend.sample_rate

    @property
    def min_samples(self) -> int:
        """The shortest waveform (samples at ``frontend.sample_rate``) the tokenizer takes: one code's worth
        (``downsample`` mel frames). 320 (20 ms) for the defaults; anything shorter holds no code of its own."""
        return self.frontend.hop_length * self.downsample

    @property
    def min_seconds(self) -> float:
        """:attr:`min_samples` in seconds."""
        return self.min_samples / self.frontend.sample_rate

    @property
    def speaker_reference(self) -> bool:
        """Whether the decoder takes its voice from a reference clip (``speaker_conditioning="reference"``)
        rather than from a table of training speakers."""
        return self.speaker_conditioning == "reference"

    @property
    def residual(self) -> bool:
        """Whether codes have a level axis, ``(b, n, l)``: quantizer ``"rvq"``, or any kind with ``num_quantizers > 1``."""
        return self.quantizer == "rvq" or self.num_quantizers > 1

    @property
    def num_codes(self) -> int:
        """Codes per level (``K``) whatever the quantizer: ``codebook_size``, or the product of ``fsq_levels``."""
        return num_codes(self.quantizer, self.codebook_size, self.fsq_levels)

    @property
    def bitrate(self) -> float:
        """Bits per second of the raw code stream: rate × levels × log2(K)."""
        return self.code_rate * self.num_quantizers * math.log2(self.num_codes)

    def quantizer_config(self) -> QuantizerConfig:
        vq = VQConfig(
            dim=self.code_dim,
            codebook_size=self.codebook_size,
            update=self.update,
            init=self.init,
            dead_code=self.dead_code,
            beta=self.beta,
            decay=self.decay,
            gradient=self.gradient,
            seed=self.seed,
        )
        level = level_config("vq" if self.quantizer == "rvq" else self.quantizer, vq, self.fsq_levels,
                             self.lfq_entropy_weight)  # fmt: skip
        if not self.residual:
            return level
        return RVQConfig(level, num_levels=self.num_quantizers, dropout_prob=self.quantizer_dropout)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self, _ADDED)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SpeechTokenizerConfig:
        """Build from a dict such as ``to_dict()`` wrote; unknown keys are an error, not ignored."""
        check_known_fields(cls, values)
        values = dict(values)
        if isinstance(values.get("frontend"), dict):
            check_known_fields(FrontEndConfig, values["frontend"])
            values["frontend"] = FrontEndConfig(**values["frontend"])
        return cls(**values)
