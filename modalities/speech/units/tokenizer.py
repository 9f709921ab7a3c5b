"""The speech units tokenizer: HuBERT-style units (k-means codes of a self-supervised Transformer's layer), and a
decoder trained on them, so the units still speak.

Dimension legend: ``b`` batch, ``m`` mel bins, ``f`` mel frames, ``n`` unit frames (``ceil(f / 2)``),
``d`` the Transformer's width (``code_dim``), ``c`` target clusters.

::

    waveform (b, t) ─front end─▶ log-mel (b, m, f) ─standardise─▶ x ─per-utterance norm─▶ UnitsEncoder
      ─layer code_layer─▶ h (b, n, d) ─standardise─▶ nearest of K centroids ─▶ codes (b, n)
    codes ─centroids─▶ (b, n, d) ─decoder(speaker)─▶ x̂ (b, m, 2n) ─Griffin-Lim─▶ waveform

Everything after the codes is :class:`~modalities.speech.SpeechTokenizer`'s: the decoder, speakers, Griffin-Lim,
``decode``, ``reconstruct``, ``encode``'s :class:`~modalities.speech.SpeechCodes` and the duration penalty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from modalities.speech.config import check_duration_penalty
from modalities.speech.tokenizer import Speaker, SpeechCodes, SpeechTokenizer, SpeechTokenizerOutput
from modalities.speech.units.config import UnitsTokenizerConfig
from modalities.speech.units.encoder import CodeLayer, UnitsEncoder, span_mask, utterance_norm
from tokenizers_vq import QuantizerOutput
from tokenizers_vq.metrics import code_stats

KIND = "speech-units-tokenizer"


class UnitsTokenizer(SpeechTokenizer):
    """Speech → discrete units (k-means codes of a masked-prediction Transformer's layer) → speech.

    Shape contract for the defaults (16 kHz, 100 mel frames/s): ``(16000,)`` → ``encode`` →
    :class:`~modalities.speech.SpeechCodes` ``(1, 51)`` at 50 codes/s → ``decode(codes, speaker=...)`` →
    ``(1, 16160)``. Training runs in stages (:mod:`modalities.speech.units.training`): masked prediction of
    cluster targets, the codebook by k-means, then the decoder on the frozen codes; ``forward`` is the
    decoder's training pass and :meth:`masked_prediction` the encoder's.

    Args:
        config: the encoder, codebook, decoder and speakers.
    """

    kind = KIND
    config_class = UnitsTokenizerConfig

    def __init__(self, config: UnitsTokenizerConfig) -> None:
        if not isinstance(config, UnitsTokenizerConfig):
            raise TypeError(f"UnitsTokenizer needs a UnitsTokenizerConfig; got {type(config).__name__}.")
        super().__init__(config)
        cfg = config
        # The speech tokenizer's convolutional encoder gives way to the Transformer; one head per iteration.
        # self.encoder keeps the speech tokenizer's contract (log-mel -> (b, d, n) vectors to quantize).
        transformer = UnitsEncoder(cfg.frontend.n_mels, cfg.code_dim, cfg.num_layers, cfg.num_heads, 0, cfg.dropout)
        self.encoder = CodeLayer(transformer, cfg.code_layer)
        self.heads = nn.ModuleList(nn.Linear(cfg.code_dim, c) for c in cfg.target_clusters)
        # Iteration 1's further target sets (target_features[1:]), one head each; none for a single set, so
        # tokenizers saved before the setting existed load unchanged.
        extra = cfg.target_features[1:]
        self.feature_heads = nn.ModuleList(nn.Linear(cfg.code_dim, cfg.target_clusters[0]) for _ in extra)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.int64))  # where staged training stands

    # ---- the encoder --------------------------------------------------------------------------
    def hidden(self, x: torch.Tensor, layer: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Layer ``layer``'s vectors ``(b, n, d)`` of standardised log-mel ``x`` ``(b, m, f)`` (``lengths``: real
        mel frames per row of a padded batch)."""
        units = None if lengths is None else UnitsEncoder.num_frames(lengths)
        return self.encoder.transformer(utterance_norm(x, lengths), units, num_layers=layer).hidden[layer]

    def masked_prediction(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        iteration: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HuBERT's loss: cross-entropy of the masked frames' targets (plus ``unmasked_weight`` times that of the
        other real frames), summed over the target sets; returns it and the masked frames' accuracy (first set).

        ``x`` ``(b, m, f)`` standardised log-mel, ``lengths`` ``(b,)`` real mel frames, ``targets`` ``(b, n)``
        cluster indices, or ``(b, n, s)`` for iteration 1's ``s = len(target_features)`` sets (any value on
        padding), ``iteration`` 0-based (which head scores them).
        """
        units = UnitsEncoder.num_frames(lengths)
        mask = span_mask(units, targets.shape[1], self.config.mask_prob, self.config.mask_span, generator)
        mask = mask.to(x.device)
        transformer = self.encoder.transformer
        h = transformer.final_norm(transformer(utterance_norm(x, lengths), units, mask).hidden[-1])  # (b, n, d)
        sets = targets[..., None] if targets.ndim == 2 else targets  # (b, n, s)
        heads = [self.heads[iteration], *(self.feature_heads if iteration == 0 else [])]
        if sets.shape[-1] != len(heads):
            raise ValueError(f"iteration {iteration + 1} has {len(heads)} target sets; got {sets.shape[-1]}.")
        weight = self.config.unmasked_weight
        unmasked = ~mask & (torch.arange(mask.shape[1], device=x.device)[None] < units.to(x.device)[:, None])
        loss, accuracy = h.new_zeros((), dtype=torch.float32), None
        for head, y in zip(heads, sets.unbind(-1), strict=True):
            logits = head(h)  # (b, n, c)
            loss = loss + F.cross_entropy(logits[mask].float(), y[mask])
            if weight > 0 and unmasked.any():
                loss = loss + weight * F.cross_entropy(logits[unmasked].float(), y[unmasked])
            if accuracy is None:
                accuracy = (logits[mask].argmax(-1) == y[mask]).float().mean().detach()
        return loss, accuracy

    @torch.no_grad()
    def set_codebook(self, centroids: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Codebook ``(K, d)`` of centroids of standardised layer vectors, with that standardisation ``(d,)``."""
        k, d = self.config.codebook_size, self.config.code_dim
        if tuple(centroids.shape) != (k, d):
            raise ValueError(f"the codebook must be ({k}, {d}) centroids; got {tuple(centroids.shape)}.")
        self.encoder.mean.copy_(mean)
        self.encoder.std.copy_(std.clamp_min(1e-5))
        q = self.quantizer
        q.embedding.data.copy_(centroids)
        if q.embed_sum.numel():
            q.embed_sum.copy_(centroids)
        q.initialized.fill_(True)

    def unit_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised layer-``code_layer`` vectors ``(b, n, d)`` of ``x`` ``(b, m, f)``: what the codebook quantizes."""
        return rearrange(self.encoder(x), "b d n -> b n d")

    # ---- the speech tokenizer's contract --------------------------------------------------------
    @torch.no_grad()
    def encode_features(self, x: torch.Tensor, duration_penalty: float | None = None) -> SpeechCodes:
        """Codes ``(b, n)`` of standardised log-mel ``(b, m, f)``: each frame's nearest centroid, or with
        ``duration_penalty`` > 0 the duration-penalised sequence (None: the config's value)."""
        penalty = self.config.duration_penalty if duration_penalty is None else duration_penalty
        check_duration_penalty(penalty)
        z = self.unit_vectors(x)
        codes = self.quantizer.encode_sequence(z, float(penalty)) if penalty > 0 else self.quantizer.encode(z)
        return self._codes(codes)

    def forward(
        self, x: torch.Tensor, speaker: Speaker = None, lengths: torch.Tensor | None = None
    ) -> SpeechTokenizerOutput:
        """The decoder's training pass on ``x = features(waveform)`` ``(b, m, f)``: the encoder and codebook frozen.

        ``lengths`` ``(b,)``: real mel frames of a padded batch (the loss leaves padding out); None: all real.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != self.config.frontend.n_mels:
            raise ValueError(
                f"forward takes standardised log-mel (b, {self.config.frontend.n_mels}, f) from features(waveform); "
                f"got {getattr(x, 'shape', type(x).__name__)}."
            )
        frames = x.shape[-1]
        with torch.no_grad():
            z = self.unit_vectors(x)
            codes = self.quantizer.encode(z)  # (b, n)
            q = self.quantizer.decode(codes).to(z.dtype)  # (b, n, d)
        q = self._jitter(q) if self.training and self.config.jitter > 0 else q
        reconstruction = self._decode_vectors(q, self.speaker_ids(speaker, x.shape[0]))[..., :frames]
        error = (reconstruction.float() - self.target(x).float()).square()  # (b, m|c, f)
        if lengths is None:
            loss = error.mean()
        else:
            real = (torch.arange(frames, device=x.device)[None] < lengths.to(x.device)[:, None]).float()  # (b, f)
            loss = (error.mean(1) * real).sum() / real.sum().clamp_min(1)
        stats = code_stats(codes.flatten(), self.config.codebook_size)
        zero = loss.new_zeros(())
        out = QuantizerOutput(q, codes, zero, zero, torch.tensor(stats.perplexity), torch.tensor(stats.usage), zero)
        return SpeechTokenizerOutput(
            reconstruction=reconstruction, codes=codes, loss=loss, reconstruction_loss=loss,
            contrastive_loss=zero, quantizer_output=out,
        )  # fmt: skip
