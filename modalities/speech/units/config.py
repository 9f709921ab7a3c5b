"""Configuration of a speech units tokenizer and of its staged training, checked when they are built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modalities.speech.config import SpeechTokenizerConfig


def _positive_int(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{name} must be a positive integer; got {value!r}.")


TARGET_FEATURES = ("mfcc", "logmel")  # what the first masked-prediction iteration's targets cluster


@dataclass
class UnitsTokenizerConfig(SpeechTokenizerConfig):
    """A :class:`~modalities.speech.SpeechTokenizerConfig` whose encoder is a HuBERT-style Transformer.

    The codes are the nearest of ``codebook_size`` k-means centroids of layer ``code_layer``'s vectors
    (``code_dim`` wide, the Transformer's width), at ``frontend.frame_rate / 2`` codes per second (50 for
    the defaults). The decoder, speakers, front end, Griffin-Lim and ``duration_penalty`` are the
    speech tokenizer's. Nothing here names a language, a phone set or a voice: cluster counts and layers
    are settings, so the same config trains on any speech.
    """

    code_dim: int = 256  # the Transformer's width, and the dimension of the vectors the codes stand for
    num_layers: int = 4  # Transformer layers
    num_heads: int = 4
    dropout: float = 0.1  # inside the Transformer, while training
    mask_prob: float = 0.08  # HuBERT: each frame starts a masked span with this probability
    mask_span: int = 10  # frames per masked span (200 ms at 50 frames/s)
    # Weight of the cross-entropy on the frames left unmasked, beside the masked frames' (HuBERT's alpha = 1 puts
    # all of it on the masked ones, 0 here); on a short budget it makes the encoder learn the targets sooner.
    unmasked_weight: float = 0.0
    # Clusters of the masked-prediction targets, one entry per iteration: iteration 1 clusters target_features,
    # each later one the previous iteration's layer target_layer.
    target_clusters: list[int] = field(default_factory=lambda: [100, 100])
    # What iteration 1's k-means clusters, each into target_clusters[0] clusters with its own output head (the
    # losses add up): "mfcc" (MFCC+Δ+ΔΔ, HuBERT's choice) and/or "logmel" (the standardised log-mel the encoder
    # reads, its two frames under each unit frame averaged: the finer spectrum). A single name is one set.
    target_features: list[str] = field(default_factory=lambda: ["mfcc"])
    target_layer: int = 3  # the layer clustered for the next iteration's targets
    # k-means runs for the codebook (seeds seed, seed + 1, ...); the one with the lowest mean squared distance is
    # kept. Its start moves phone figures by about a point, and the lowest distance went with the best ones.
    codebook_restarts: int = 1
    code_layer: int = 3  # the layer the codebook quantizes (0: the input projection, num_layers: the last)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "UnitsTokenizerConfig"
        if self.quantizer != "vq" or self.contrastive_weight:
            raise ValueError(
                f"{owner}: units are nearest k-means centroids of one codebook; set quantizer=vq and "
                f"contrastive_weight=0 (got {self.quantizer!r}, {self.contrastive_weight})."
            )
        if getattr(self, "speaker_conditioning", "table") != "table":
            raise ValueError(
                f"{owner}: the units' decoder trains with a speaker table; set speaker_conditioning=table "
                f"(got {self.speaker_conditioning!r})."
            )
        if self.downsample != 2:
            raise ValueError(f"{owner}.downsample must be 2 (the encoder's stride); got {self.downsample}.")
        for name in ("num_layers", "num_heads", "mask_span", "codebook_restarts"):
            _positive_int(owner, name, getattr(self, name))
        if self.code_dim % self.num_heads:
            raise ValueError(f"{owner}.code_dim ({self.code_dim}) must be a multiple of num_heads ({self.num_heads}).")
        if not self.unmasked_weight >= 0.0:
            raise ValueError(f"{owner}.unmasked_weight must be >= 0; got {self.unmasked_weight}.")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 < self.mask_prob < 1.0:
            raise ValueError(
                f"{owner}: dropout in [0, 1) and mask_prob in (0, 1); got {self.dropout}, {self.mask_prob}."
            )
        if isinstance(self.target_features, str):
            self.target_features = [self.target_features]
        self.target_features = list(self.target_features)
        unknown = [f for f in self.target_features if f not in TARGET_FEATURES]
        if not self.target_features or unknown or len(set(self.target_features)) < len(self.target_features):
            raise ValueError(
                f"{owner}.target_features must name one or more of {', '.join(TARGET_FEATURES)}, each once; got "
                f"{self.target_features!r}."
            )
        self.target_clusters = list(self.target_clusters)
        if not self.target_clusters:
            raise ValueError(f"{owner}.target_clusters needs one cluster count per iteration; got none.")
        for clusters in self.target_clusters:
            if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 2:
                raise ValueError(f"{owner}.target_clusters must be integers >= 2; got {self.target_clusters}.")
        for name in ("target_layer", "code_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self.num_layers:
                raise ValueError(f"{owner}.{name} must be a layer in 0..{self.num_layers}; got {value!r}.")

    @property
    def iterations(self) -> int:
        """Masked-prediction iterations (one per entry of ``target_clusters``)."""
        return len(self.target_clusters)


@dataclass
class UnitsSchedule:
    """Steps of each training stage, in order: masked prediction (one entry per iteration), then the decoder.

    Between them, without steps of their own: the targets of each later iteration (k-means on the
    encoder's ``target_layer``) and the codebook (k-means on ``code_layer``), fitted at the first step
    of the stage that needs them.
    """

    iteration_steps: list[int] = field(default_factory=lambda: [800, 800])
    decoder_steps: int = 400
    warmup: float = 0.1  # fraction of each iteration's steps with a linearly rising learning rate, then cosine decay

    def __post_init__(self) -> None:
        self.iteration_steps = list(self.iteration_steps)
        for steps in [*self.iteration_steps, self.decoder_steps]:
            _positive_int("train", "iteration_steps and decoder_steps", steps)
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"train.warmup must be in [0, 1); got {self.warmup}.")

    @property
    def total_steps(self) -> int:
        return sum(self.iteration_steps) + self.decoder_steps

    def stage(self, step: int) -> tuple[int, int]:
        """``(stage, step within it)`` of global step ``step`` (0-based): stage ``i < iterations`` is masked
        prediction iteration ``i + 1``, stage ``iterations`` the decoder."""
        for i, steps in enumerate(self.iteration_steps):
            if step < steps:
                return i, step
            step -= steps
        return len(self.iteration_steps), step

    def scale(self, step: int) -> float:
        """The learning rate's factor at ``step``: warm-up then cosine decay within each iteration; 1 for the decoder."""
        import math

        stage, within = self.stage(step)
        if stage == len(self.iteration_steps):
            return 1.0
        steps = self.iteration_steps[stage]
        warm = max(1, round(self.warmup * steps))
        if within < warm:
            return (within + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (within - warm) / max(1, steps - warm)))
