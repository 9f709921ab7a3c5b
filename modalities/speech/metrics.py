"""Reconstruction quality of a speech tokenizer: log-mel distance, STOI, and the Griffin-Lim ceiling.

Dimension legend: ``t`` samples, ``m`` mel bins, ``f`` mel frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from pystoi import stoi

from modalities.speech.tokenizer import Speaker, SpeechTokenizer
from tokenizers_vq.metrics import code_stats
from tokenizers_vq.progress import progress


def log_mel_distance(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Mean absolute difference of two natural-log mel spectrograms ``(m, f)`` over their common frames (nats).

    1 nat is a factor e (8.7 dB) in magnitude; 0 means identical spectra.
    """
    f = min(reference.shape[-1], estimate.shape[-1])
    return float((reference[..., :f].float() - estimate[..., :f].float()).abs().mean())


def stoi_score(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int) -> float:
    """Short-Time Objective Intelligibility (Taal et al. 2011, pystoi) of ``estimate`` against ``reference`` ``(t,)``."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref = reference[..., :n].detach().double().cpu().numpy().reshape(-1)
    est = estimate[..., :n].detach().double().cpu().numpy().reshape(-1)
    return float(stoi(ref, est, sample_rate, extended=False))


@dataclass
class SpeechReconstruction:
    """Reconstruction figures of a tokenizer over held-out utterances (log-mel distances: means over utterances).

    ``*_vocoder`` figures are the Griffin-Lim of the *original* mel: what any mel-domain tokenizer
    could reach at best with this vocoder.
    """

    log_mel_distance: float  # decoded log-mel vs the original's (nats, mean |Δ|)
    log_mel_distance_vocoder: float  # log-mel of Griffin-Lim(original mel) vs the original's
    stoi: float  # Griffin-Lim(decoded mel) vs the original waveform, over all utterances end to end
    stoi_vocoder: float  # Griffin-Lim(original mel) vs the original waveform, likewise
    bitrate: float  # bits per second of the code stream: code_rate × levels × log2(K)
    code_rate: float  # codes per second per level
    usage: float  # fraction of the codebook used (level 0)
    perplexity: float
    num_utterances: int
    seconds: float  # audio evaluated
    # The same figures per group of utterances (e.g. seen and unseen speakers), when groups were given:
    # {group: {"log_mel_distance", "stoi", "stoi_vocoder", "num_utterances"}}.
    groups: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        groups = values.pop("groups")
        return {**values, **groups}


@torch.no_grad()
def evaluate_reconstruction(
    tokenizer: SpeechTokenizer,
    waveforms: Sequence[torch.Tensor],
    sample_rates: Sequence[int],
    speakers: Sequence[Speaker],
    num_levels: int | None = None,
    groups: Sequence[str] | None = None,
) -> SpeechReconstruction:
    """Encode, decode and vocode every utterance ``(t,)`` in its own speaker's voice; average the figures.

    ``speakers``: each utterance's voice, any :data:`~modalities.speech.tokenizer.Speaker` (a name, or a
    reference clip ``(waveform, sample_rate)`` for a reference-clip tokenizer). ``num_levels``: decode only
    the first residual levels (``bitrate`` then counts those); None: all. ``groups``: a group name per
    utterance (e.g. ``"seen_speakers"``), whose log-mel distance and STOI are also reported on their own.
    """
    if not waveforms:
        raise ValueError("evaluate_reconstruction needs at least one utterance.")
    fe = tokenizer.frontend
    sr = tokenizer.sample_rate
    figures: dict[str, list[float]] = {"lmd": [], "lmd_voc": []}
    references: list[torch.Tensor] = []
    from_codes: list[torch.Tensor] = []
    from_vocoder: list[torch.Tensor] = []
    all_codes = []
    seconds = 0.0
    items = progress(zip(waveforms, sample_rates, speakers, strict=True), total=len(waveforms), desc="evaluating",
                     unit="utterance")  # fmt: skip
    for wave, rate, speaker in items:
        w = fe.normalize_level(tokenizer.preprocess(wave, rate))  # (1, t) at the model's rate, level as analysed
        x = tokenizer.features(w)
        log_mel = fe(w)[0]  # (m, f)
        codes = tokenizer.encode_features(x)
        level0 = codes.codes[0]
        all_codes.append(level0[:, 0] if level0.ndim == 2 else level0)  # (n,): the first level's codes
        decoded = tokenizer.decode_features(codes, speaker, num_levels)[..., : x.shape[-1]]
        decoded_log_mel = (decoded[0] * tokenizer.mel_std[:, None] + tokenizer.mel_mean[:, None]).float()
        length = w.shape[-1]
        wave_codes = tokenizer.features_to_waveform(decoded, length=length)[0]
        wave_vocoder = fe.griffin_lim(log_mel[None], tokenizer.config.griffin_lim_iters, length=length)[0]
        figures["lmd"].append(log_mel_distance(log_mel, decoded_log_mel))
        figures["lmd_voc"].append(log_mel_distance(log_mel, fe(wave_vocoder[None])[0]))
        references.append(w[0].cpu())
        from_codes.append(wave_codes.cpu())
        from_vocoder.append(wave_vocoder.cpu())
        seconds += length / sr
    stats = code_stats(torch.cat(all_codes), tokenizer.config.num_codes)
    by_group: dict[str, dict[str, float | int]] = {}
    for name in sorted(set(groups or ())):
        members = [i for i, g in enumerate(groups or ()) if g == name]
        reference = torch.cat([references[i] for i in members])
        by_group[name] = {
            "log_mel_distance": float(np.mean([figures["lmd"][i] for i in members])),
            "stoi": stoi_score(reference, torch.cat([from_codes[i] for i in members]), sr),
            "stoi_vocoder": stoi_score(reference, torch.cat([from_vocoder[i] for i in members]), sr),
            "num_utterances": len(members),
        }
    levels = num_levels or tokenizer.config.num_quantizers  # the levels decoded: what the bitrate counts
    return SpeechReconstruction(
        log_mel_distance=float(np.mean(figures["lmd"])),
        log_mel_distance_vocoder=float(np.mean(figures["lmd_voc"])),
        # STOI needs about 0.4 s of speech per analysis segment, more than a spoken digit holds, so it is
        # measured once over all utterances end to end rather than averaged over utterances.
        stoi=stoi_score(torch.cat(references), torch.cat(from_codes), sr),
        stoi_vocoder=stoi_score(torch.cat(references), torch.cat(from_vocoder), sr),
        bitrate=tokenizer.config.bitrate * levels / tokenizer.config.num_quantizers,
        code_rate=tokenizer.frame_rate,
        usage=stats.usage,
        perplexity=stats.perplexity,
        num_utterances=len(waveforms),
        seconds=round(seconds, 3),
        groups=by_group,
    )
