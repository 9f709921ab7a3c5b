"""The speech modality plug-in: finding utterances, loading audio, evaluating, code corpora with speakers and phones.

Dimension legend: ``t`` samples, ``N`` code frames of all utterances end to end, ``U`` utterances.

``data`` below is a recipe's speech data section: ``name``, ``root``, ``layout``, ``train`` and ``eval``
selections, ``phone_map``, ``textgrid_tier`` (see ``recipes.tokenizer.config``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities.base import CodingItems, CorpusSource, ItemCodes, RateTraits, input_files
from modalities.speech.audio import load_audio, save_audio
from modalities.speech.codecs import AUDIO_CODECS, codec_points
from modalities.speech.data import (
    AUDIO_SUFFIXES,
    SpeechSplit,
    data_name,
    encode_waveforms,
    find_utterances,
    load_split,
    phone_inventory,
    phone_segments,
    selection_of,
    speakers_of,
)
from modalities.speech.labels import frame_labels
from modalities.speech.metrics import evaluate_reconstruction, log_mel_distance, stoi_score
from modalities.speech.plots import reconstruction_spectrograms_png
from modalities.speech.references import own_speaker_references
from modalities.speech.tokenizer import SpeechTokenizer
from modalities.speech.training import SpeechTraining, training_data
from tokenizers_vq.corpus import code_dtype, read_meta, save_array
from tokenizers_vq.io import write_jsonl
from tokenizers_vq.progress import progress


class SpeechModality:
    """Speech: folders of WAV/FLAC (FSDD, festival-phones, any speaker/utterance layout), log-mel VQ-VAE tokenizers,
    corpora of utterances end to end with speakers and frame-level phones."""

    name = "speech"
    tokenizer_class = SpeechTokenizer
    reconstruction_figures = "figures.json"  # the JSON file `reconstruct` writes beside its outputs

    training_data = staticmethod(
        training_data
    )  # the training utterances and held-out ones (modalities.speech.training)
    training = staticmethod(SpeechTraining.build)  # the segments, step and evaluation of a model over them

    def prepare(self, model: SpeechTokenizer, cfg: Any) -> SpeechTokenizer:
        if cfg.duration_penalty is not None:  # encode with it instead of the tokenizer's own (checked by the config)
            model.config = replace(model.config, duration_penalty=cfg.duration_penalty)
        return model

    def corpus_source(self, model: SpeechTokenizer, cfg: Any, split: str) -> CorpusSource:
        utterances = find_utterances(cfg.data, selection_of(cfg.data, split))
        name = data_name(cfg.data)
        labelled = all(u.phones_path is not None for u in utterances)
        segments = phone_segments(cfg.data, utterances) if labelled else []
        phones = phone_inventory(segments) if labelled else []
        speakers = speakers_of(utterances)
        k, levels = model.config.num_codes, model.config.num_quantizers
        dtype = code_dtype(k)
        listing = hashlib.sha256("\n".join(f"{u.id}\t{u.path}" for u in utterances).encode()).hexdigest()
        identity = {"dataset": name, "split": split, "utterances_sha256": listing,
                    "duration_penalty": model.config.duration_penalty}  # fmt: skip
        frames_total: list[int] = []

        min_seconds = model.config.min_seconds

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            waves = [utt.read(min_seconds=min_seconds) for utt in utterances[start:stop]]
            return {
                "samples": np.concatenate([wave.numpy() for wave, _ in waves]),  # (t_1 + ... + t_U,) float32
                "lengths": np.array([len(wave) for wave, _ in waves], dtype=np.int64),  # (U,) samples
                "rates": np.array([rate for _, rate in waves], dtype=np.int64),  # (U,) Hz
            }

        def encode_inputs(net: SpeechTokenizer, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            per_utt = []
            ends = np.cumsum(inputs["lengths"])
            for end, t, rate in zip(ends, inputs["lengths"], inputs["rates"], strict=True):
                wave = torch.from_numpy(inputs["samples"][end - t : end])
                codes = net.encode(wave, int(rate)).codes[0].cpu().numpy()  # (n,) or (n, l)
                per_utt.append(codes.reshape(codes.shape[0], -1).astype(dtype))
            return {"codes": np.concatenate(per_utt), "lengths": np.array([len(c) for c in per_utt], dtype=np.int64)}

        def encode(start: int, stop: int) -> dict[str, np.ndarray]:
            return encode_inputs(model, read(start, stop))

        def write(tmp: Path, chunks: Iterator[dict[str, np.ndarray]]) -> dict[str, Any]:
            parts = list(chunks)
            lengths = np.concatenate([p["lengths"] for p in parts]) if parts else np.zeros(0, np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            stacked = np.concatenate([p["codes"] for p in parts]) if parts else np.zeros((0, levels), dtype)
            for level in range(stacked.shape[1]):
                save_array(tmp / f"codes_level{level}.npy", stacked[:, level])
            save_array(tmp / "offsets.npy", offsets)
            save_array(tmp / "speakers.npy", np.array([speakers.index(u.speaker) for u in utterances], dtype=np.int64))
            save_array(tmp / "labels.npy", np.array([int(u.label) if u.label is not None else -1 for u in utterances]))
            if segments:
                index = {p: i for i, p in enumerate(phones)}
                rate, first = model.frame_rate, model.config.first_code_time
                frames = [
                    [index.get(p, -1) if p is not None else -1 for p in frame_labels(s, n, rate, first)]
                    for s, n in zip(segments, lengths, strict=True)
                ]
                save_array(tmp / "phones.npy", np.array([p for f in frames for p in f], dtype=np.int16))
            write_jsonl(
                tmp / "utterances.jsonl",
                [
                    {"id": u.id, "speaker": u.speaker, "path": str(u.path), "frames": int(n)}
                    for u, n in zip(utterances, lengths, strict=True)
                ],
            )
            frames_total.append(int(offsets[-1]))
            return {
                "levels": [
                    {
                        "file": f"codes_level{i}.npy",
                        "shape": [int(offsets[-1])],
                        "codebook_size": k,
                        "dtype": dtype.name,
                    }
                    for i in range(stacked.shape[1])
                ],
                "labels": "labels.npy",
                "frame_rate": model.frame_rate,
                "first_frame_time": model.config.first_code_time,
                "offsets": "offsets.npy",
                "speakers": speakers,
                "phones": phones,
                "dataset": {"name": name, "split": split},
                "count": len(utterances),
            }

        def result(out: Path, merged: bool) -> dict[str, Any]:
            return {
                "out_dir": str(out),
                "num_utterances": len(utterances),
                "num_frames": int(read_meta(out)["levels"][0]["shape"][0]) if merged else None,
                "frame_rate": model.frame_rate,
                "num_levels": levels,
                "codebook_size": k,
                "speakers": speakers,
                "phones": phones,
            }

        return CorpusSource(name, split, len(utterances), identity, encode, write, result, read=read,
                            encode_inputs=encode_inputs)  # fmt: skip

    def evaluate(self, model: SpeechTokenizer, cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        selection, shortest = selection_of(cfg.data, cfg.eval.split), model.config.min_seconds
        split = load_split(cfg.data, selection, model.sample_rate, cfg.eval.max_utterances, shortest)
        sr, speakers = model.sample_rate, [u.speaker for u in split.utterances]
        described = {"data": cfg.data.root or cfg.data.name, "split": cfg.eval.split}
        if model.speaker_reference:
            # Each utterance in its own voice, heard from another utterance of its speaker in the split.
            partners = own_speaker_references(speakers)
            known = set(model.speakers)
            result = evaluate_reconstruction(
                model,
                split.waveforms,
                [sr] * len(split),
                [(split.waveforms[p], sr) for p in partners],
                groups=["seen_speakers" if s in known else "unseen_speakers" for s in speakers],
            )
            own = sum(p == i for i, p in enumerate(partners))
            reference = {"reference_clip": "another utterance of the same speaker", "self_references": own}
            return described, {**result.to_dict(), **reference}
        known = set(model.speakers)
        keep = [i for i, s in enumerate(speakers) if not known or s in known]
        if not keep:
            raise ValueError(
                f"none of the {len(split)} utterances is by a speaker this tokenizer knows ({model.speakers}), and a "
                "table of speakers decodes only those: train with model.speaker_conditioning=reference for any speaker."
            )
        result = evaluate_reconstruction(
            model,
            [split.waveforms[i] for i in keep],
            [sr] * len(keep),
            [speakers[i] if known else None for i in keep],
        )
        figures = {**result.to_dict(), "skipped_unknown_speakers": len(split) - len(keep)}
        return described, figures

    @torch.no_grad()
    def reconstruct(self, model: SpeechTokenizer, cfg: Any, out: Path) -> dict[str, Any]:
        """Listening samples of ``reconstruct.num_utterances`` utterances (seeded draw) into ``out``::

            <id>_original.wav        the input, level-normalised, at the model's rate
            <id>_vocoder.wav         Griffin-Lim of the original log-mel: the best this vocoder can do
            <id>_codes.wav           decoded from the codes in the speaker's own voice
            <id>_as_<speaker>.wav    decoded from the same codes in another speaker's voice
            reconstructions.png      log-mel spectrograms, each original above its reconstruction

        A table of speakers draws utterances of its training speakers and converts to another of them; a
        reference-clip tokenizer draws any utterance, hears its voice from another utterance of its speaker in
        the split (``reference`` in the rows; itself where there is none) and converts to another speaker of
        the split, heard from their first utterance there. ``<id>`` is ``<speaker>_<id>`` where two of the
        utterances drawn share an id. Returns the files, the spectrogram grid, the code bitrate and each
        utterance's log-mel distance and STOI.
        """
        device = next(model.parameters()).device
        selection, shortest = selection_of(cfg.data, cfg.reconstruct.split), model.config.min_seconds
        split = load_split(cfg.data, selection, model.sample_rate, min_seconds=shortest)
        known, reference = model.speakers, model.speaker_reference
        speakers = [u.speaker for u in split.utterances]
        partners = own_speaker_references(speakers)
        candidates = [i for i, s in enumerate(speakers) if reference or not known or s in known]
        if not candidates:
            raise ValueError(
                f"no utterance of split {cfg.reconstruct.split!r} is by a speaker of this tokenizer ({known}), and a "
                "table of speakers decodes only those: train with model.speaker_conditioning=reference for any speaker."
            )
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(candidates), generator=gen)[: cfg.reconstruct.num_utterances]
        fe, sr = model.frontend, model.sample_rate
        files: list[str] = []
        rows: list[dict[str, Any]] = []
        spectrograms: list[tuple[str, np.ndarray, np.ndarray]] = []  # (id, original, reconstruction), log-mel (m, f)
        chosen = sorted(candidates[int(j)] for j in order)
        ids = [split.utterances[i].id for i in chosen]
        for i in chosen:
            utt = split.utterances[i]
            # An id repeats across speakers in a speaker/utterance layout (spk0/u001.wav, spk1/u001.wav): then the
            # files are named by both, so that one utterance's outputs do not replace another's.
            name = utt.id if ids.count(utt.id) == 1 else f"{utt.speaker}_{utt.id}"
            voice = partners[i]
            speaker = (split.waveforms[voice], sr) if reference else utt.speaker if known else None
            wave = fe.normalize_level(split.waveforms[i][None].to(device))  # (1, t)
            log_mel = fe(wave)
            x = model.features(wave)
            codes = model.encode_features(x)
            decoded = model.decode_features(codes, speaker)[..., : x.shape[-1]]
            length = wave.shape[-1]
            outputs = {
                "original": wave[0],
                "vocoder": fe.griffin_lim(log_mel, model.config.griffin_lim_iters, length=length)[0],
                "codes": model.features_to_waveform(decoded, length=length)[0],
            }
            others = [s for s in (dict.fromkeys(speakers) if reference else known) if s != utt.speaker]
            if cfg.reconstruct.convert and others:
                target = others[(i + cfg.seed) % len(others)]
                clip = (split.waveforms[speakers.index(target)], sr) if reference else target
                converted = model.decode_features(codes, clip)[..., : x.shape[-1]]
                outputs[f"as_{target}"] = model.features_to_waveform(converted, length=length)[0]
            for kind, samples in outputs.items():
                files.append(str(save_audio(out / f"{name}_{kind}.wav", samples.cpu(), sr)))
            decoded_log_mel = decoded[0] * model.mel_std[:, None] + model.mel_mean[:, None]
            spectrograms.append((name, log_mel[0].float().cpu().numpy(), decoded_log_mel.float().cpu().numpy()))
            rows.append(
                {
                    "utterance": name,
                    "speaker": utt.speaker,
                    **({"reference": split.utterances[voice].id} if reference else {}),
                    "seconds": round(length / sr, 3),
                    "log_mel_distance": log_mel_distance(log_mel[0], decoded_log_mel),
                    "stoi": stoi_score(wave[0], outputs["codes"], sr),
                    "stoi_vocoder": stoi_score(wave[0], outputs["vocoder"], sr),
                }
            )
        c = fe.config
        grid = reconstruction_spectrograms_png(spectrograms, out / "reconstructions.png", sr, c.hop_length, c.f_min,
                                               c.f_max)  # fmt: skip
        return {"out_dir": str(out), "files": files, "grid": str(grid), "bitrate": model.config.bitrate,
                "utterances": rows}  # fmt: skip

    # The rate verbs (compress, decompress, rd)
    rate = RateTraits(
        item="utterance",
        unit="second",
        amount="audio_seconds",
        metrics=(("log_mel_distance", "log-mel distance (nats, lower is better)"), ("stoi", "STOI")),
        codecs=tuple(name for name, *_ in AUDIO_CODECS),
        setting="level",
    )

    def split_of(self, data: Any, role: str) -> str:
        return role

    def load_items(
        self, model: SpeechTokenizer, data: Any, split: str, limit: int | None, seed: int | None = None
    ) -> CodingItems:
        found = load_split(data, selection_of(data, split), model.sample_rate, limit, model.config.min_seconds)
        labels = [int(u.label) if u.label is not None else None for u in found.utterances]
        return _coding_items(model, found, labels, None, f"{data_name(data)}_{split}", data.root or data.name)

    def read_files(self, model: SpeechTokenizer, path: str) -> CodingItems:
        files = input_files(path, AUDIO_SUFFIXES, "audio")
        found = SpeechSplit([], [load_audio(f, model.sample_rate, model.config.min_seconds)[0] for f in files])
        stem = Path(path).expanduser().stem
        return _coding_items(model, found, [None] * len(files), [f.name for f in files], stem, path)

    def item_codes(self, model: SpeechTokenizer, items: CodingItems) -> ItemCodes:
        """One ``(U, T)`` tensor of rows per residual level (see :class:`~modalities.base.ItemCodes`)."""
        codes = [c.reshape(c.shape[0], -1) for c in encode_waveforms(model, items.data.waveforms)]  # (n_u, l) each
        k, lengths = model.config.num_codes, [c.shape[0] for c in codes]
        rows = torch.full((model.config.num_quantizers, len(codes), max(lengths, default=0) + 1), k, dtype=torch.long)
        for u, c in enumerate(codes):
            rows[:, u, : c.shape[0]] = torch.from_numpy(c.T.astype(np.int64))
        return ItemCodes(list(rows), [k] * len(rows), lengths, residual=True)

    def check_output(self, model: SpeechTokenizer, options: Any) -> None:
        wavs = options.wav or options.speaker is not None
        if wavs and model.speaker_reference:
            if options.speaker is None or not Path(options.speaker).expanduser().is_file():
                raise ValueError(
                    "this tokenizer decodes in the voice of a reference clip: pass --speaker CLIP, an audio file of "
                    f"the voice to speak in (got {options.speaker!r})."
                )
            return
        if wavs and model.speakers and options.speaker not in model.speakers:
            raise ValueError(
                f"WAVs need one of the tokenizer's training speakers: pass --speaker NAME, one of {model.speakers}."
            )

    def write_outputs(
        self, model: SpeechTokenizer, codes: ItemCodes, stems: list[str], directory: Path, options: Any
    ) -> dict[str, Any]:
        """With ``options.wav`` or ``options.speaker``, one WAV per utterance in that training speaker's voice (for
        a reference-clip tokenizer, ``options.speaker`` is an audio file of the voice)."""
        if not (options.wav or options.speaker is not None):
            return {"wav_files": 0}
        device = next(model.parameters()).device
        voice = options.speaker
        if model.speaker_reference:  # one speaker vector for every utterance
            voice = model.embed_speaker(*load_audio(Path(voice).expanduser(), min_seconds=model.config.min_seconds))
        assert codes.lengths is not None, "speech codes are sequences"
        rows = zip(stems, codes.levels[0], codes.lengths, strict=True)
        for stem, row, length in progress(rows, total=len(stems), desc="writing WAVs", unit="utterance"):
            wave = model.decode(row[None, :length].to(device), speaker=voice)[0]
            save_audio(directory / f"{stem}.wav", wave, model.sample_rate)
        return {"wav_files": len(stems)}

    def distortion(self, model: SpeechTokenizer, items: CodingItems, codes: ItemCodes, depth: int | None) -> dict:
        """Each utterance decoded in its own speaker's voice (see :func:`evaluate_reconstruction`); the fixed-length
        rate is the tokenizer's bitrate at that depth."""
        known, found = set(model.speakers), items.data
        speakers = [u.speaker if u.speaker in known else None for u in found.utterances] or [None] * len(items)
        if model.speaker_reference:  # heard from another utterance of the speaker; a file of its own
            names = [u.speaker for u in found.utterances] or [str(i) for i in range(len(items))]
            speakers = [(found.waveforms[p], model.sample_rate) for p in own_speaker_references(names)]
        quality = evaluate_reconstruction(model, found.waveforms, [model.sample_rate] * len(items), speakers, depth)
        return {"uniform_bits_per_second": quality.bitrate, "log_mel_distance": quality.log_mel_distance,
                "stoi": quality.stoi, "log_mel_distance_vocoder": quality.log_mel_distance_vocoder,
                "stoi_vocoder": quality.stoi_vocoder}  # fmt: skip

    def describe_model(self, model: SpeechTokenizer, codes: ItemCodes, depth: int | None) -> tuple[str, dict[str, Any]]:
        k, levels = model.config.num_codes, len(codes.levels)
        return (f"K={k}, {levels} level(s)" if depth is None else f"K={k}, {depth} of {levels}"), {}

    def codec_points(
        self, model: SpeechTokenizer, items: CodingItems, options: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return codec_points(model, items.data.waveforms, options.codec_levels), {}


def _coding_items(
    model: SpeechTokenizer, found: SpeechSplit, labels: list[int | None], names: list[str] | None, stem: str, data: str
) -> CodingItems:
    n, seconds = len(labels), sum(w.shape[-1] for w in found.waveforms) / model.sample_rate
    header = {"sample_rate": model.sample_rate, "frame_rate": model.frame_rate}
    description = {"data": data, "num_utterances": n, "seconds": seconds}
    title = f"{data}, {n} utterances, {seconds:.1f} s"
    return CodingItems(found, labels, names, stem, seconds, header, description, title)
