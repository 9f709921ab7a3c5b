"""Classic audio codecs as rate–distortion baselines: Opus, Vorbis and MP3 as libsndfile writes them.

Dimension legend: ``t`` samples of one utterance, ``T`` samples of all utterances end to end.

Each codec codes the utterances end to end as one file (headers paid once, as a code file's are) at
each libsndfile compression level (0: best quality .. 1: smallest). Distortion is measured per
utterance with the tokenizers' log-mel distance (the given tokenizer's mel front end) and, over all
utterances end to end, with STOI.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile as sf
import torch

from modalities.speech.metrics import log_mel_distance, stoi_score
from modalities.speech.tokenizer import SpeechTokenizer

# libsndfile's lossy formats: (name, container, subtype)
AUDIO_CODECS = (("opus", "OGG", "OPUS"), ("vorbis", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III"))


def round_trip(stream: np.ndarray, rate: int, container: str, subtype: str, level: float) -> tuple[int, np.ndarray]:
    """Bytes of float32 samples ``(T,)`` in one codec at one compression level, and the samples decoded back."""
    buffer = io.BytesIO()
    sf.write(buffer, stream, rate, format=container, subtype=subtype, compression_level=level)
    size = buffer.tell()
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return size, np.pad(decoded[: stream.size], (0, max(0, stream.size - decoded.size)))


@torch.no_grad()
def codec_points(model: SpeechTokenizer, waveforms: list[torch.Tensor], levels: list[float]) -> list[dict[str, Any]]:
    """Each codec at each compression level on ``waveforms`` ``(t,)`` (at the model's rate) end to end:
    ``bits_per_second``, ``log_mel_distance`` (mean over utterances) and ``stoi``."""
    fe, rate = model.frontend, model.sample_rate
    refs = [fe.normalize_level(model.preprocess(w, rate))[0].cpu() for w in waveforms]  # (t,) each, as analysed
    stream = torch.cat(refs).numpy().astype(np.float32)
    seconds = stream.size / rate
    points = []
    for name, container, subtype in AUDIO_CODECS:
        for level in levels:
            size, decoded = round_trip(stream, rate, container, subtype, level)
            pieces = torch.from_numpy(decoded).split([r.numel() for r in refs])
            lmd = np.mean([log_mel_distance(fe(r[None])[0], fe(p[None])[0]) for r, p in zip(refs, pieces, strict=True)])
            points.append({"codec": name, "level": level, "bits_per_second": 8 * size / seconds,
                           "log_mel_distance": float(lmd),
                           "stoi": stoi_score(torch.from_numpy(stream), torch.from_numpy(decoded), rate)})  # fmt: skip
    return points
