"""``vqtok rd`` for speech: bits per second against log-mel distance and STOI, beside Opus, Vorbis and MP3.

Dimension legend: ``t`` samples, ``m`` mel bins, ``f`` mel frames, ``n`` code frames, ``l`` residual levels.

Each tokenizer of ``rd.tokenizers`` gives one point (with ``rd.depths``, one per residual depth ``d``:
the first ``d`` levels decoded and coded, named ``run@d``, joined as a curve in the plot): distortion from
:func:`modalities.speech.evaluate_reconstruction` (each held-out utterance decoded in its own
speaker's voice, Griffin-Lim to a waveform) and rate in bits per second of real range-coded bytes,
with per-level code frequencies fitted on the codes of ``rd.fit_items`` training utterances
(``rate_model: unigram``; the fixed-length rate is ``uniform_bits_per_second``). The classic codecs
are what libsndfile writes here (Opus and Vorbis in Ogg, MP3), swept over ``rd.codec_levels`` on the
held-out utterances end to end (one file, headers paid once), scored with the same log-mel distance
(the first tokenizer's mel front end) and STOI. ``matched`` interpolates each codec at the
tokenizer's rate (None below the codec's lowest rate). Writes ``rd.json`` and ``rd.png`` into ``--out``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from modalities.speech import SpeechTokenizer, evaluate_reconstruction
from modalities.speech.metrics import log_mel_distance, stoi_score
from modalities.speech.task import load_split
from recipes.coding.classic import at_rate
from recipes.coding.common import RateResult, encode_unigram, unigram_tables, write_rd
from recipes.coding.config import SpeechCodingConfig
from recipes.coding.plot import rd_plot
from recipes.engine.results import format_table
from recipes.engine.runtime import evaluation_mode, set_threads, setup_runtime
from recipes.image.common import open_tokenizer

# libsndfile's lossy formats: (name, container, subtype)
AUDIO_CODECS = (("opus", "OGG", "OPUS"), ("vorbis", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III"))
_X, _Y = "bits_per_second", "log_mel_distance"


class SpeechRDResult(RateResult):
    """The speech rate–distortion table and where it was written."""

    def format(self) -> str:
        f = self.figures
        lines = [f"rd: {f['num_utterances']} utterances, {f['seconds']:.1f} s of {f['data']} → {self.location}"]
        keys = ["name", "rate_model", _X, "uniform_bits_per_second", _Y, "stoi"]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["points"]])]
        keys = ["codec", "level", _X, _Y, "stoi"]
        lines += ["", format_table(keys, [[p[k] for k in keys] for p in f["codecs"]])]
        return "\n".join(lines)


def _codes(model: SpeechTokenizer, waveforms: list[torch.Tensor]) -> list[torch.Tensor]:
    """Codes of every utterance, end to end per level: one ``(N,)`` tensor per residual level."""
    rows = []
    with evaluation_mode(model):
        for wave in waveforms:
            codes = model.encode(wave, model.sample_rate).codes[0].cpu()  # (n,) or (n, l)
            rows.append(codes[:, None] if codes.ndim == 1 else codes)
    flat = torch.cat(rows)  # (N, l)
    return [flat[:, level].contiguous() for level in range(flat.shape[1])]


def depths_of(model: SpeechTokenizer, depths: list[int] | str | None) -> list[int | None]:
    """The residual depths ``rd.depths`` asks of ``model``: ``[None]`` (all levels, one point), 1..l, or the list."""
    if depths is None:
        return [None]
    levels = model.config.num_quantizers
    chosen = list(range(1, levels + 1)) if depths == "all" else sorted(set(depths))
    if chosen[-1] > levels:
        raise ValueError(
            f"rd.depths={depths} asks for {chosen[-1]} levels, but a tokenizer in rd.tokenizers has {levels}; "
            "pass depths up to its quantizer levels, or rd.depths=all."
        )
    return chosen


def tokenizer_points(cfg: SpeechCodingConfig, tokenizer: str, held_out, device: torch.device) -> list[dict[str, Any]]:
    """Distortion and real unigram-coded rate of one speech tokenizer on the held-out utterances, per depth.

    At depth ``d`` the decoder sees the sum of the first ``d`` levels' vectors and the rate is the
    range-coded bytes of those ``d`` levels alone (each level's own code frequencies).
    """
    model, tokenizer_dir = open_tokenizer(tokenizer, device, "rd")
    depths = depths_of(model, cfg.rd.depths)
    known = set(model.speakers)
    speakers = [u.speaker if u.speaker in known else None for u in held_out.utterances]
    train = load_split(cfg.data, cfg.data.train, model.sample_rate, cfg.rd.fit_items)
    codes = _codes(model, held_out.waveforms)
    tables = unigram_tables(_codes(model, train.waveforms), [model.config.codebook_size] * len(codes))
    seconds = sum(w.shape[-1] for w in held_out.waveforms) / model.sample_rate
    run, k = tokenizer_dir.resolve().parent.name, model.config.codebook_size
    points = []
    for depth in depths:
        with evaluation_mode(model):
            quality = evaluate_reconstruction(
                model, held_out.waveforms, [model.sample_rate] * len(held_out), speakers, depth
            )
        used = len(codes) if depth is None else depth
        payload = encode_unigram(codes[:used], tables[:used])
        name = f"{run} (K={k}, {used} level(s))" if depth is None else f"{run}@{depth} (K={k}, {depth} of {len(codes)})"
        points.append({"name": name, "tokenizer": str(tokenizer_dir), "depth": used,
                       **({} if depth is None else {"curve": run}), "rate_model": "unigram", "fit_items": len(train),
                       _X: 8 * len(payload) / seconds, "uniform_bits_per_second": quality.bitrate,
                       _Y: quality.log_mel_distance, "stoi": quality.stoi,
                       "log_mel_distance_vocoder": quality.log_mel_distance_vocoder,
                       "stoi_vocoder": quality.stoi_vocoder})  # fmt: skip
    return points


def codec_points(model: SpeechTokenizer, waveforms: list[torch.Tensor], levels: list[float]) -> list[dict[str, Any]]:
    """Each libsndfile codec at each compression level on the utterances end to end; distortion per utterance."""
    fe, rate = model.frontend, model.sample_rate
    refs = [fe.normalize_level(model.preprocess(w, rate))[0].cpu() for w in waveforms]  # (t,) each, as analysed
    stream = torch.cat(refs).numpy().astype(np.float32)
    seconds = stream.size / rate
    points = []
    for name, container, subtype in AUDIO_CODECS:
        for level in levels:
            buffer = io.BytesIO()
            sf.write(buffer, stream, rate, format=container, subtype=subtype, compression_level=level)
            size = buffer.tell()
            buffer.seek(0)
            decoded, _ = sf.read(buffer, dtype="float32")
            decoded = np.pad(decoded[: stream.size], (0, max(0, stream.size - decoded.size)))
            pieces = torch.from_numpy(decoded).split([r.numel() for r in refs])
            with torch.no_grad():
                lmd = float(
                    np.mean(
                        [log_mel_distance(fe(r[None])[0], fe(p[None])[0]) for r, p in zip(refs, pieces, strict=True)]
                    )
                )
            points.append({"codec": name, "level": level, _X: 8 * size / seconds, _Y: lmd,
                           "stoi": stoi_score(torch.from_numpy(stream), torch.from_numpy(decoded), rate)})  # fmt: skip
    return points


def plot(figures: dict[str, Any]) -> bytes:
    """Log-mel distance and STOI against bits per second: tokenizers as points (a residual tokenizer's depths
    joined), the audio codecs as curves."""
    curves = {name: [p for p in figures["codecs"] if p["codec"] == name] for name, *_ in AUDIO_CODECS}
    panels = [(_Y, "log-mel distance (nats, lower is better)"), ("stoi", "STOI")]
    title = f"{figures['data']}, {figures['num_utterances']} utterances"
    return rd_plot(figures["points"], curves, _X, "bits per second", panels, title)


def run(cfg: SpeechCodingConfig) -> SpeechRDResult:
    """Rate–distortion points of ``rd.tokenizers`` and the audio codecs on ``data.eval``; writes rd.json and rd.png."""
    if not cfg.rd.tokenizers:
        raise ValueError("rd needs tokenizers: pass rd.tokenizers=[DIR,DIR,...] (tokenizer folders of training runs).")
    set_threads(cfg.threads)
    device = setup_runtime(cfg)
    first, _ = open_tokenizer(cfg.rd.tokenizers[0], device, "rd")
    held_out = load_split(cfg.data, cfg.data.eval, first.sample_rate, cfg.rd.max_items)
    points = [p for t in cfg.rd.tokenizers for p in tokenizer_points(cfg, t, held_out, device)]
    codecs = codec_points(first, held_out.waveforms, cfg.rd.codec_levels)
    for point in points:
        for name, *_ in AUDIO_CODECS:
            point.update(at_rate(codecs, name, point[_X], x=_X, metrics=(_Y, "stoi"), setting="level"))
    seconds = sum(w.shape[-1] for w in held_out.waveforms) / first.sample_rate
    figures = {"data": cfg.data.root or cfg.data.name, "num_utterances": len(held_out), "seconds": seconds,
               "points": points, "codecs": codecs}  # fmt: skip
    out = Path(cfg.out).expanduser() if cfg.out else Path("runs") / "rd_speech"
    write_rd(out, figures, plot if cfg.rd.plot else None)
    return SpeechRDResult(str(out), figures)
