"""The speech tokenizer: a VQ-VAE on log-mel spectrograms (van den Oord et al. 2017, section 4.3).

Dimension legend: ``b`` batch, ``t`` samples, ``m`` mel bins, ``f`` mel frames, ``n`` code frames,
``d`` code dimension, ``l`` quantizer levels, ``s`` speaker-vector dimension, ``r`` reference-clip frames.

::

    waveform (b, t) ─front end─▶ log-mel (b, m, f) ─standardise─▶ x ─encoder─▶ z_e (b, d, n)
      ─quantizer─▶ codes (b, n[, l]), z_q ─decoder(speaker)─▶ x̂ (b, m, n·downsample) ─Griffin-Lim─▶ waveform

The decoder is told the speaker, so the codes are free to leave speaker identity out; decoding one
speaker's codes with another's voice converts it. The voice is a learned embedding per training speaker
(``speaker_conditioning="table"``), or a speaker encoder's vector of a reference clip of anyone's voice
(``"reference"``: log-mel (b, m, r) ─speaker encoder─▶ (b, s)), so that unseen speakers decode in their own voice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from einops import einsum, rearrange
from torch import nn

from modalities.speech.audio import check_duration, check_waveform, resample, to_mono
from modalities.speech.config import SpeechTokenizerConfig, check_duration_penalty
from modalities.speech.contrastive import FuturePrediction
from modalities.speech.frontend import FrontEnd
from modalities.speech.layers import Decoder1d, Encoder1d, SpeakerEncoder
from tokenizers_vq import QuantizerOutput, build_quantizer
from tokenizers_vq.tokenizer import Codes, Tokenizer

KIND = "speech-tokenizer"
# Who speaks the decoded audio: a training speaker's name or index (or a tensor of b indices) for a table of
# speakers; a reference clip, (waveform, sample_rate) or a float waveform at the model's rate, for a
# reference-clip model; or speaker vectors (s,) / (b, s) from SpeechTokenizer.embed_speaker, for either.
Speaker = int | str | torch.Tensor | tuple[torch.Tensor, int] | None


class SpeechCodes(Codes):
    """Codes of a batch of utterances and where they sit in time.

    ``codes``: ``(b, n)`` int64 for one codebook, ``(b, n, l)`` for ``l`` residual levels; ``levels``
    holds the same codes as one ``(b, n)`` tensor per level. Code ``i`` is centred at
    ``first_frame_time + i / frame_rate`` seconds (what phone alignment uses).
    """

    grid_ndim = 1

    def __init__(self, codes: torch.Tensor, frame_rate: float, first_frame_time: float = 0.0) -> None:
        if not isinstance(codes, torch.Tensor) or codes.ndim not in (2, 3):
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"SpeechCodes need a (b, n) or (b, n, levels) tensor of codes; got {shape}.")
        super().__init__([codes] if codes.ndim == 2 else list(codes.unbind(-1)), float(frame_rate), first_frame_time)
        self.codes = codes.long()

    def with_levels(self, levels: list[torch.Tensor]) -> SpeechCodes:
        codes = levels[0] if self.codes.ndim == 2 else torch.stack(levels, dim=-1)
        return SpeechCodes(codes, float(self.frame_rate or 0.0), self.first_frame_time)

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by the code frames."""
        return self.num_frames / float(self.frame_rate or 1.0)


@dataclass
class SpeechTokenizerOutput:
    """What :meth:`SpeechTokenizer.forward` returns for standardised log-mel ``(b, m, f)``.

    - ``reconstruction``: ``(b, m, f)`` standardised log-mel predicted from the codes (``(b, c, f)``
      standardised cepstra with ``target_cepstra = c``; :meth:`SpeechTokenizer.target_to_features` maps them back).
    - ``codes``: ``(b, n)`` or ``(b, n, l)`` with ``n = ceil(f / downsample)``.
    - ``loss``: ``reconstruction_loss`` plus the quantizer's loss plus ``contrastive_weight`` ×
      ``contrastive_loss``; what training backprops.
    - ``reconstruction_loss``: mean squared error against :meth:`SpeechTokenizer.target`.
    - ``contrastive_loss``: the CPC loss of the encoder's vectors (0 when ``contrastive_weight`` is 0).
    - ``quantizer_output``: the :class:`~tokenizers_vq.QuantizerOutput` (channels-last ``(b, n, d)``).
    """

    reconstruction: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    contrastive_loss: torch.Tensor
    quantizer_output: QuantizerOutput


class SpeechTokenizer(Tokenizer):
    """Turns speech into a sequence of discrete codes and back (see the module docstring).

    Shape contract for the defaults (16 kHz, 100 mel frames/s, ``downsample=2``): a waveform of
    1 s, ``(16000,)`` or ``(1, 16000)`` at any input rate → ``encode`` → :class:`SpeechCodes` with
    ``codes`` ``(1, 51)`` at 50 codes/s → ``decode(codes, speaker="kal_diphone")`` → ``(1, 16160)`` at 16 kHz.
    With ``speaker_conditioning="reference"`` the voice is a clip of anyone's, ``decode(codes, speaker=(clip, 16000))``,
    or its vector ``embed_speaker(clip, 16000)`` ``(1, s)``.

    ``forward`` is the training pass on standardised log-mel (see :meth:`features`); ``encode``,
    ``decode`` and ``reconstruct`` never change the model. The module never picks a device.

    Args:
        config: architecture, front end, codebooks and speaker names.
    """

    kind = KIND
    modality = "speech"
    config_class = SpeechTokenizerConfig

    def __init__(self, config: SpeechTokenizerConfig) -> None:
        super().__init__()
        if not isinstance(config, SpeechTokenizerConfig):
            raise TypeError(f"SpeechTokenizer needs a SpeechTokenizerConfig; got {type(config).__name__}.")
        self.config = cfg = config
        m = cfg.frontend.n_mels
        self.frontend = FrontEnd(cfg.frontend)
        # Per-bin standardisation of the log-mel, fitted on training data by set_feature_stats.
        self.register_buffer("mel_mean", torch.zeros(m))
        self.register_buffer("mel_std", torch.ones(m))
        decoder_kernel = cfg.kernel_size if cfg.decoder_kernel_size is None else cfg.decoder_kernel_size
        args = (cfg.hidden_channels, decoder_kernel, cfg.num_res_blocks, cfg.downsample)
        self.encoder = Encoder1d(
            m, cfg.hidden_channels, cfg.code_dim, cfg.kernel_size, cfg.num_res_blocks, cfg.downsample
        )
        qcfg = cfg.quantizer_config()
        self.quantizer = build_quantizer(qcfg)
        table = cfg.speakers and not cfg.speaker_reference
        self.speaker_embedding = nn.Embedding(len(cfg.speakers), cfg.speaker_dim) if table else None
        self.speaker_encoder = (
            SpeakerEncoder(m, cfg.hidden_channels, cfg.speaker_dim, cfg.kernel_size) if cfg.speaker_reference else None
        )
        c = cfg.target_cepstra or m  # channels of the decoder's output
        conditioned = bool(table) or cfg.speaker_reference
        self.decoder = Decoder1d(cfg.code_dim, c, *args, speaker_dim=cfg.speaker_dim if conditioned else None)
        self.future = (
            FuturePrediction(cfg.code_dim, cfg.hidden_channels, cfg.contrastive_steps)
            if cfg.contrastive_weight > 0
            else None
        )
        if cfg.target_cepstra:
            # Orthonormal DCT-II across bins (m, c): log-mel -> its first c cepstra; rebuilt from the config.
            self.register_buffer("dct", AF.create_dct(c, m, norm="ortho"), persistent=False)
            # Per-coefficient standardisation of the cepstra, fitted by set_feature_stats with the mel one.
            self.register_buffer("cepstrum_mean", torch.zeros(c))
            self.register_buffer("cepstrum_std", torch.ones(c))
        else:
            self.register_buffer("dct", None, persistent=False)

    # ---- facts ----------------------------------------------------------------------------------
    @property
    def codebook_sizes(self) -> list[int]:
        """Entries of each residual level's codebook (one entry for plain VQ)."""
        return [self.config.num_codes] * self.config.num_quantizers

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.sample_rate

    @property
    def frame_rate(self) -> float:
        """Codes per second."""
        return self.config.code_rate

    @property
    def speakers(self) -> list[str]:
        """The training speakers: the names of the speaker table, or who a reference-clip model was trained on."""
        return list(self.config.speakers)

    @property
    def speaker_reference(self) -> bool:
        """Whether the decoder takes its voice from a reference clip of any speaker (see :meth:`embed_speaker`)."""
        return self.speaker_encoder is not None

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    # ---- inputs ---------------------------------------------------------------------------------
    def preprocess(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """A waveform at any rate → float ``(b, t)`` at the model's rate, on the model's device.

        ``waveform``: ``(t,)`` one mono utterance, ``(1, t)`` the same as ``torchaudio.load`` gives it,
        or ``(b, c, t)`` a batch of ``b`` utterances of equal length with ``c`` channels each (averaged
        to mono; ``c = 1`` for mono). Float samples in [-1, 1], at least ``config.min_seconds`` long.
        A ``(c, t)`` array with ``c > 1`` is refused: it could be one multichannel recording or a batch,
        and taking one for the other would be silently wrong; pass ``waveform.mean(0)`` (one recording,
        mixed to mono) or ``waveform[:, None]`` (a batch of mono utterances).
        Raises ``TypeError``/``ValueError`` for other shapes or dtypes, and
        :class:`~modalities.speech.audio.AudioError` for empty, too short, silent-only or non-finite audio.
        """
        check_waveform(waveform)
        if waveform.ndim == 2 and waveform.shape[0] > 1:
            raise ValueError(
                f"a 2-D waveform of shape {tuple(waveform.shape)} is ambiguous: one recording's channels (c, t) or "
                "(t, c), or a batch of utterances? Pass one recording as mono (t,), e.g. waveform.mean(0) for (c, t) "
                "or waveform.mean(1) for soundfile's (t, c), or a batch as (b, 1, t) with waveform[:, None]."
            )
        if waveform.ndim not in (1, 2, 3):
            raise ValueError(
                f"waveform must be (t,), (1, t) or (b, c, t); got shape {tuple(waveform.shape)}. "
                "load_audio reads a file of any channel count as mono (t,)."
            )
        waveform = to_mono(waveform)[None] if waveform.ndim < 3 else to_mono(waveform)  # (b, t)
        waveform = resample(waveform.float(), sample_rate, self.sample_rate)
        check_duration(waveform, self.sample_rate, self.config.min_seconds)
        return waveform.to(self.mel_mean.device)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Standardised log-mel ``(b, m, f)`` of ``(b, t)`` at the model's rate (the input of ``forward``)."""
        log_mel = self.frontend(waveform)
        return (log_mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    @torch.no_grad()
    def set_feature_stats(self, log_mels: list[torch.Tensor] | torch.Tensor) -> None:
        """Fit the per-bin standardisation to unstandardised log-mel frames (``(m, f)`` tensors or ``(b, m, f)``)."""
        frames = torch.cat(
            [
                x.reshape(x.shape[-2], -1) if x.ndim == 2 else rearrange(x, "b m f -> m (b f)")
                for x in (log_mels if isinstance(log_mels, list) else [log_mels])
            ],
            dim=1,
        )
        self.mel_mean.copy_(frames.mean(dim=1))
        self.mel_std.copy_(frames.std(dim=1).clamp_min(1e-3))
        if self.dct is not None:
            cepstra = self.dct.T @ frames  # (c, m) @ (m, frames)
            self.cepstrum_mean.copy_(cepstra.mean(dim=1))
            self.cepstrum_std.copy_(cepstra.std(dim=1).clamp_min(1e-3))

    def speaker_ids(self, speaker: Speaker, batch: int) -> torch.Tensor | None:
        """Speaker indices ``(b,)`` from a name, an index or a tensor of indices; None for a model without speakers."""
        if self.speaker_reference:
            raise ValueError(
                "this tokenizer decodes in the voice of a reference clip: pass speaker=(waveform, sample_rate) "
                f"or a vector from embed_speaker, not {speaker!r} (it has no table of speaker names)."
            )
        if self.speaker_embedding is None:
            if speaker is not None:
                raise ValueError("this tokenizer was trained without speakers; pass speaker=None.")
            return None
        names = self.config.speakers
        if speaker is None:
            raise ValueError(f"this tokenizer's decoder needs a speaker: one of {names} (a name or an index).")
        if isinstance(speaker, str):
            if speaker not in names:
                raise ValueError(f"unknown speaker {speaker!r}; this tokenizer knows {names}.")
            speaker = names.index(speaker)
        ids = torch.as_tensor(speaker, dtype=torch.long, device=self.mel_mean.device).reshape(-1)
        if ids.numel() == 1:
            ids = ids.expand(batch)
        if ids.numel() != batch or int(ids.min()) < 0 or int(ids.max()) >= len(names):
            raise ValueError(f"speaker indices must be one or {batch} values in [0, {len(names) - 1}]; got {speaker}.")
        return ids

    @torch.no_grad()
    def embed_speaker(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Speaker vectors ``(b, s)`` of reference clips (any shape and rate that :meth:`preprocess` takes).

        E.g. one second ``(8000,)`` at 8 kHz → ``(1, 64)``; pass the result to ``decode(codes, speaker=...)``
        to decode many utterances in that voice without encoding the clip again. Needs a tokenizer built with
        ``speaker_conditioning="reference"``.
        """
        if not self.speaker_reference:
            raise ValueError(
                f"this tokenizer decodes only its training speakers' voices ({self.speakers}), from a table; a "
                "reference clip needs a tokenizer trained with model.speaker_conditioning=reference."
            )
        return self.speaker_encoder(self.features(self.preprocess(waveform, sample_rate)))

    def speaker_vectors(self, speaker: Speaker, batch: int) -> torch.Tensor | None:
        """The decoder's speaker vectors ``(b, s)`` for any :data:`Speaker` (None for a model without speakers).

        Names and indices go through the table (:meth:`speaker_ids`); ``(waveform, sample_rate)`` and float
        waveforms at the model's rate through :meth:`embed_speaker`; float ``(s,)`` or ``(b, s)`` tensors are
        speaker vectors already. One speaker is repeated over the batch.
        """
        s = self.config.speaker_dim
        if self.decoder.speaker is None or not (isinstance(speaker, tuple | torch.Tensor) or self.speaker_reference):
            ids = self.speaker_ids(speaker, batch)  # a table's names and indices; refuses a speaker without one
            return None if ids is None else self.speaker_embedding(ids)
        if isinstance(speaker, tuple):
            if len(speaker) != 2 or not isinstance(speaker[0], torch.Tensor):
                raise ValueError("a reference clip is a (waveform, sample_rate) pair; got a tuple of another kind.")
            vectors = self.embed_speaker(speaker[0], int(speaker[1]))
        elif isinstance(speaker, torch.Tensor) and speaker.is_floating_point():
            if speaker.ndim <= 2 and speaker.shape[-1] == s:
                vectors = speaker.reshape(-1, s)  # speaker vectors, e.g. from embed_speaker
            else:
                vectors = self.embed_speaker(speaker, self.sample_rate)  # a waveform at the model's rate
        else:  # names and indices: a reference-clip model's speaker_ids refuses them
            return self.speaker_embedding(self.speaker_ids(speaker, batch))
        vectors = vectors.to(self._param().dtype)
        if vectors.shape[0] == 1:
            vectors = vectors.expand(batch, s)
        if vectors.shape[0] != batch:
            raise ValueError(f"speaker vectors must be one or {batch} (one per utterance); got {vectors.shape[0]}.")
        return vectors

    # ---- the network ------------------------------------------------------------------------------
    def _pad_to_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Repeat the last frame so ``f`` is a multiple of ``downsample``."""
        extra = -x.shape[-1] % self.config.downsample
        return F.pad(x, (0, extra), mode="replicate") if extra else x

    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(b, m, f)`` as the encoder sees it (see ``SpeechTokenizerConfig.encoder_norm``)."""
        if self.config.encoder_norm == "none":
            return x
        mean = x.mean(dim=-1, keepdim=True)  # (b, m, 1)
        std = x.std(dim=-1, keepdim=True, unbiased=False).clamp_min(0.1)  # 0.1: a near-constant bin stays small
        x = (x - mean) / std
        if self.config.encoder_norm == "shape":
            x = x - x.mean(dim=1, keepdim=True)  # (b, 1, f): each frame's level
        return x

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder learns to output for standardised log-mel ``x`` ``(b, m, f)``: ``x`` itself, or,
        with ``target_cepstra = c``, the log-mel's first ``c`` cepstra, each standardised, ``(b, c, f)``.

        Standardised cepstra weigh the spectral envelope's fine shape (formants) as much as its level
        and tilt, which dominate squared errors on the log-mel, and leave out the pitch harmonics.
        """
        if self.dct is None:
            return x
        log_mel = x * self.mel_std[:, None] + self.mel_mean[:, None]
        cepstra = einsum(log_mel, self.dct, "b m f, m c -> b c f")
        return (cepstra - self.cepstrum_mean[:, None]) / self.cepstrum_std[:, None]

    def target_to_features(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised log-mel ``(b, m, f)`` of a decoder output: ``y`` itself, or the envelope of its cepstra."""
        if self.dct is None:
            return y
        cepstra = y.float() * self.cepstrum_std[:, None] + self.cepstrum_mean[:, None]
        log_mel = einsum(cepstra, self.dct, "b c f, m c -> b m f")
        return (log_mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def _jitter(self, q: torch.Tensor) -> torch.Tensor:
        """Time jitter (Chorowski et al. 2019) on ``(b, n, d)``: each frame takes a neighbour's vector with prob p."""
        b, n, _ = q.shape
        p = self.config.jitter
        move = torch.rand(b, n, device=q.device) < p
        step = torch.where(torch.rand(b, n, device=q.device) < 0.5, -1, 1)
        index = (torch.arange(n, device=q.device) + move * step).clamp(0, n - 1)  # (b, n)
        return torch.gather(q, 1, index[:, :, None].expand_as(q))

    def _decode_vectors(self, q: torch.Tensor, speaker_ids: torch.Tensor | None) -> torch.Tensor:
        """Channels-last code vectors ``(b, n, d)`` → standardised log-mel ``(b, m, n * downsample)``.

        ``speaker_ids``: indices ``(b,)`` into the speaker table, or speaker vectors ``(b, s)`` (float).
        """
        spk = speaker_ids
        if spk is not None and not spk.is_floating_point():
            spk = self.speaker_embedding(spk) if self.speaker_embedding is not None else None
        return self.decoder(rearrange(q, "b n d -> b d n"), spk)

    def forward(
        self,
        x: torch.Tensor,
        speaker: Speaker = None,
        reference: torch.Tensor | None = None,
        reference_lengths: torch.Tensor | None = None,
    ) -> SpeechTokenizerOutput:
        """Training pass on ``x = features(waveform)`` (``(b, m, f)``) for the given speaker(s).

        ``reference``: for a reference-clip model, standardised log-mel ``(b, m, r)`` of a reference clip per
        row (another utterance of the same speaker in training, so its vector cannot carry what ``x`` says),
        its first ``reference_lengths`` ``(b,)`` frames real (None: all ``r``); it takes the place of ``speaker``.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != self.config.frontend.n_mels:
            raise ValueError(
                f"forward takes standardised log-mel (b, {self.config.frontend.n_mels}, f) from features(waveform); "
                f"got {getattr(x, 'shape', type(x).__name__)}."
            )
        frames = x.shape[-1]
        z = rearrange(self.encoder(self._pad_to_codes(self._encoder_input(x))), "b d n -> b n d")
        out = self.quantizer(z)
        q = self._jitter(out.quantized) if self.training and self.config.jitter > 0 else out.quantized
        if reference is not None:
            if self.speaker_encoder is None:
                raise ValueError("reference clips need a tokenizer built with speaker_conditioning='reference'.")
            voice = self.speaker_encoder(reference, reference_lengths)  # (b, s)
        else:
            voice = self.speaker_vectors(speaker, x.shape[0])
        reconstruction = self._decode_vectors(q, voice)[..., :frames]
        reconstruction_loss = F.mse_loss(reconstruction.float(), self.target(x).float())
        # On the encoder's vectors before quantization: on festival-phones that gave codes 5 points closer to
        # phones than the quantized ones of VQ-CPC, whose repeated codes are ties the loss cannot rank.
        contrastive_loss = self.future(z) if self.future is not None else reconstruction_loss.new_zeros(())
        return SpeechTokenizerOutput(
            reconstruction=reconstruction,
            codes=out.codes,
            loss=reconstruction_loss + out.loss + self.config.contrastive_weight * contrastive_loss,
            reconstruction_loss=reconstruction_loss,
            contrastive_loss=contrastive_loss,
            quantizer_output=out,
        )

    # ---- tokenizer API --------------------------------------------------------------------------
    def _codes(self, codes: torch.Tensor) -> SpeechCodes:
        return SpeechCodes(codes, self.frame_rate, self.config.first_code_time)

    @torch.no_grad()
    def encode_features(self, x: torch.Tensor, duration_penalty: float | None = None) -> SpeechCodes:
        """Codes of standardised log-mel ``(b, m, f)``; never trains the codebook.

        ``duration_penalty``: what a change of code costs, in units of the utterance's mean squared
        quantization error (see ``SpeechTokenizerConfig.duration_penalty``); None: the config's value.
        """
        penalty = self.config.duration_penalty if duration_penalty is None else duration_penalty
        check_duration_penalty(penalty)
        z = rearrange(self.encoder(self._pad_to_codes(self._encoder_input(x))), "b d n -> b n d")
        if penalty > 0:
            if not hasattr(self.quantizer, "encode_sequence"):
                raise ValueError(
                    f"duration_penalty needs a nearest-code search (quantizer vq, rvq or simvq); this tokenizer's "
                    f"quantizer is {self.config.quantizer!r}. Pass duration_penalty=0."
                )
            return self._codes(self.quantizer.encode_sequence(z, float(penalty)))
        return self._codes(self.quantizer.encode(z))

    @torch.no_grad()
    def encode(self, waveform: torch.Tensor, sample_rate: int, duration_penalty: float | None = None) -> SpeechCodes:
        """Codes of ``waveform`` (any shape and rate that :meth:`preprocess` takes), with their frame rate.

        E.g. ``(16000,)`` at 16 kHz → codes ``(1, 51)`` at 50 codes/s for the default config.
        ``duration_penalty``: see :meth:`encode_features`; None: the config's value.
        """
        return self.encode_features(self.features(self.preprocess(waveform, sample_rate)), duration_penalty)

    def check_codes(self, codes: SpeechCodes | torch.Tensor) -> torch.Tensor:
        """The code tensor of ``codes``, checked against this tokenizer's levels and codebook size."""
        if isinstance(codes, SpeechCodes):
            tensor = codes.codes
        elif isinstance(codes, Codes):  # generic codes: one (b, n) tensor per level
            tensor = torch.stack(codes.levels, dim=-1) if self.config.residual else codes.levels[0]
        else:
            tensor = codes
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"codes must be SpeechCodes or a tensor of codes; got {type(codes).__name__}.")
        levels = self.config.num_quantizers
        expected = f"(b, n, {levels})" if self.config.residual else "(b, n)"
        ok = tensor.ndim == 3 and tensor.shape[-1] <= levels if self.config.residual else tensor.ndim == 2
        if not ok:
            raise ValueError(f"this tokenizer's codes have shape {expected}; got {tuple(tensor.shape)}.")
        if isinstance(codes, Codes) and codes.frame_rate is not None and abs(codes.frame_rate - self.frame_rate) > 1e-6:
            raise ValueError(
                f"the codes run at {codes.frame_rate} frames/s but this tokenizer at {self.frame_rate}; "
                "were they made by another tokenizer?"
            )
        return tensor

    def first_levels(self, codes: torch.Tensor, num_levels: int | None) -> torch.Tensor:
        """Checked ``codes`` cut to their first ``num_levels`` residual levels (None: all they hold).

        E.g. ``(1, 51, 4)`` with ``num_levels=2`` → ``(1, 51, 2)``; a one-codebook tokenizer takes only 1.
        """
        if num_levels is None:
            return codes
        top = self.config.num_quantizers
        if isinstance(num_levels, bool) or not isinstance(num_levels, int) or not 1 <= num_levels <= top:
            raise ValueError(
                f"num_levels must be an integer in 1..{top} (this tokenizer's quantizer levels); got {num_levels!r}."
            )
        if codes.ndim == 2:  # one codebook: num_levels is 1
            return codes
        if codes.shape[-1] < num_levels:
            raise ValueError(f"the codes hold {codes.shape[-1]} level(s); cannot decode the first {num_levels}.")
        return codes[..., :num_levels]

    @torch.no_grad()
    def decode_features(
        self, codes: SpeechCodes | torch.Tensor, speaker: Speaker = None, num_levels: int | None = None
    ) -> torch.Tensor:
        """Standardised log-mel ``(b, m, n * downsample)`` from codes, in the voice of ``speaker``.

        ``num_levels``: decode only the first ``d`` residual levels (the sum of their code vectors,
        the lower bitrate that quantizer dropout trains for); None: every level the codes hold.
        """
        tensor = self.first_levels(self.check_codes(codes), num_levels).to(self.mel_mean.device)
        q = self.quantizer.decode(tensor).to(self._param().dtype)  # (b, n, d)
        return self.target_to_features(self._decode_vectors(q, self.speaker_vectors(speaker, tensor.shape[0])))

    @torch.no_grad()
    def features_to_waveform(self, x: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Griffin-Lim waveform ``(b, t)`` of standardised log-mel ``(b, m, f)``."""
        log_mel = x.float() * self.mel_std[:, None] + self.mel_mean[:, None]
        return self.frontend.griffin_lim(log_mel, self.config.griffin_lim_iters, length=length)

    @torch.no_grad()
    def decode(
        self, codes: SpeechCodes | torch.Tensor, speaker: Speaker = None, num_levels: int | None = None
    ) -> torch.Tensor:
        """Waveform ``(b, t)`` at ``sample_rate`` from codes: ``(1, 51)`` → ``(1, 16160)`` for the defaults.

        ``speaker``: required when the tokenizer has speakers. With a table of speakers, a training speaker's
        name or index (or a tensor of ``b`` indices); with ``speaker_conditioning="reference"``, a clip of
        anyone's voice as ``(waveform, sample_rate)`` (or a float waveform at the model's rate), or its vector
        from :meth:`embed_speaker`. Decoding with another speaker than the one who spoke converts the voice.
        ``num_levels``: decode only the first residual levels (see :meth:`decode_features`).
        """
        return self.features_to_waveform(self.decode_features(codes, speaker, num_levels))

    def pad_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(b, t)`` with silence appended up to a whole number of codes (``min_samples``), so the last
        partial frame is encoded like any other; trim the decoded waveform back to ``t``."""
        extra = -waveform.shape[-1] % self.config.min_samples
        return F.pad(waveform, (0, extra)) if extra else waveform

    @torch.no_grad()
    def reconstruct(self, waveform: torch.Tensor, sample_rate: int, speaker: Speaker = None) -> torch.Tensor:
        """``decode(encode(waveform), speaker)`` ``(b, t)`` at the model's rate, exactly as long as the input is
        there (a 1 s ``(8000,)`` input at 8 kHz gives ``(1, 8000)``).

        A reference-clip model with ``speaker=None`` decodes each input in its own voice (the input is its
        own reference clip).
        """
        wave = self.preprocess(waveform, sample_rate)  # (b, t)
        length = wave.shape[-1]
        padded = self.pad_waveform(wave)
        x = self.features(padded)
        if speaker is None and self.speaker_reference:
            speaker = self.speaker_encoder(self.features(wave))  # (b, s): the unpadded input's own voice
        mel = self.decode_features(self.encode_features(x), speaker)[..., : x.shape[-1]]
        return self.features_to_waveform(mel, length=padded.shape[-1])[..., :length]
