"""Voice conversion with a speaker-conditioned tokenizer: one utterance's codes, another speaker's voice.

Dimension legend: ``t`` samples.
"""

from __future__ import annotations

import torch

from modalities.speech.tokenizer import Speaker, SpeechTokenizer


@torch.no_grad()
def convert_voice(
    tokenizer: SpeechTokenizer, waveform: torch.Tensor, sample_rate: int, target_speaker: Speaker
) -> torch.Tensor:
    """Speak ``waveform`` (mono ``(t,)`` at any rate) in the voice of ``target_speaker``; ``(t',)`` at the model's rate,
    exactly as long as the input resampled to it (``t' = t`` at the model's own rate).

    The codes keep what was said and the decoder, given the target's speaker vector, supplies the voice
    (VQ-VAE, section 4.3). ``target_speaker`` is one of ``tokenizer.speakers`` or its index for a table of
    speakers; a clip of any voice, ``(waveform, sample_rate)``, or its ``embed_speaker`` vector for a
    reference-clip tokenizer.
    """
    if not tokenizer.speakers and not tokenizer.speaker_reference:
        raise ValueError("this tokenizer was trained without speakers, so it cannot convert voices.")
    if waveform.ndim != 1:
        raise ValueError(f"convert_voice takes one mono utterance (t,); got shape {tuple(waveform.shape)}.")
    if target_speaker is None:
        raise ValueError("convert_voice needs a target voice: a training speaker, or a reference clip.")
    return tokenizer.reconstruct(waveform, sample_rate, speaker=target_speaker)[0]
