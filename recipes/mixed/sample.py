"""``vqtok sample`` with a mixed config: text prompts → image codes or audio codes → a PNG grid and WAV files.

Dimension legend: ``n`` samples, ``c``/``h``/``w`` image channels and size, ``m`` mel bins, ``f`` frames.

For each prompt (``sample.prompts``, or the prompt of every image class and audio label) the prior
draws ``sample.num_samples`` segments and chooses their modality itself after ``</text>``. The output
directory (``out``, default ``<prior dir>/../samples``) gets ``samples.png`` (one row per prompt that
drew images), ``prompt{j}_sample{i}.wav`` (audio, decoded in ``sample.speaker``'s voice),
``samples.jsonl`` (each sample as readable tokens, e.g. ``<aud><aud:33>…</aud>``) and ``samples.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from modalities.image.grid import decode_images, image_grid, png_bytes
from modalities.speech import SpeechTokenizer, save_audio
from recipes.engine.artifacts import corpus_tokenizer
from recipes.engine.config import save_config
from recipes.engine.outputs import OutputFolder
from recipes.engine.results import format_figures
from recipes.engine.runtime import resolve_device, set_threads
from recipes.mixed.config import MixedRecipeConfig
from recipes.mixed.data import AUDIO, IMAGE, MixedData, open_prior
from tokenizers_vq.io import atomic_write_bytes, atomic_write_json, write_jsonl
from tokenizers_vq.token_space import CodeSegment


def sample_images(data: MixedData, segments: list[CodeSegment], device: torch.device) -> torch.Tensor:
    """Image segments → uint8 images ``(n, c, h, w)`` through the image corpus's tokenizer."""
    shapes = [tuple(a.shape[1:]) for a in data.image.corpus.levels]
    levels = [
        torch.tensor([seg.levels[lvl] for seg in segments], dtype=torch.long).reshape(len(segments), *shape)
        for lvl, shape in enumerate(shapes)
    ]
    return decode_images(corpus_tokenizer(data.image.corpus, device), levels)


def speech_tokenizer(data: MixedData, device: torch.device) -> SpeechTokenizer:
    """The tokenizer that made the audio corpus (its path is in ``meta.json``; checked against its identity)."""
    tokenizer = corpus_tokenizer(data.audio.corpus, device)
    assert isinstance(tokenizer, SpeechTokenizer), "an audio corpus is made by a speech tokenizer"
    return tokenizer


def voice(tokenizer: SpeechTokenizer, speaker: str | int | None) -> str | int | None:
    """The speaker to decode with: ``speaker``, or the tokenizer's first; None for a tokenizer without speakers."""
    if tokenizer.speaker_embedding is None:
        return None
    return speaker if speaker is not None else 0


@dataclass
class MixedSampleResult:
    """Where the samples went, which modality each prompt drew, and how long sampling took."""

    out_dir: str
    prior: str
    num_samples: int
    sampling_seconds: float
    prompts: list[dict[str, Any]] = field(default_factory=list)  # prompt, images, audio
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        figures = {k: v for k, v in self.to_dict().items() if k != "files"}
        figures["files"] = f"{len(self.files)} files in {self.out_dir}"
        return format_figures(figures, title="sample (mixed prior)")


def run(cfg: MixedRecipeConfig, *, overwrite: bool = False) -> MixedSampleResult:
    """Draw ``sample.num_samples`` segments per prompt from the prior at ``cfg.prior`` and decode them, into an output
    folder of :mod:`recipes.engine.outputs` (``overwrite``: also one that another verb wrote)."""
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    prior, prior_dir, data = open_prior(cfg, device, "sample")
    sc = cfg.sample
    prompts = sc.prompts or data.image.prompts + data.audio.prompts
    final = Path(cfg.out).expanduser() if cfg.out else prior_dir.resolve().parent / "samples"
    folder = OutputFolder(final, "sample", overwrite=overwrite)
    with folder, folder.staging() as out:  # written in a staging folder, published whole at the end
        save_config(cfg, out / "config.yaml")
        speech = speech_tokenizer(data, device)
        speaker = voice(speech, sc.speaker)
        rows, files, summary, seconds, images = [], [], [], 0.0, []
        for j, prompt in enumerate(prompts):
            sampling = type(sc.sampling)(**{**asdict(sc.sampling), "seed": sc.sampling.seed + j})
            segments, took = prior.generate(prompt, sc.num_samples, sampling)
            seconds += took
            drawn = [s for s in segments if s.stream == IMAGE]
            if drawn:
                images.append(sample_images(data, drawn, device))
            for i, seg in enumerate(segments):
                ids = prior.space.serialize([seg], bos=False, eos=False)
                rows.append({"prompt": prompt, "sample": i, "stream": seg.stream, "tokens": prior.space.to_string(ids)})
                if seg.stream == AUDIO and len(seg.levels[0]) >= 2:
                    wave = speech.decode(torch.tensor([seg.levels[0]], device=device), speaker=speaker)[0].cpu()
                    path = out / f"prompt{j:02d}_sample{i:02d}.wav"
                    save_audio(path, wave, speech.sample_rate)
                    files.append(str(path))
            summary.append({"prompt": prompt, "images": len(drawn), "audio": len(segments) - len(drawn)})
        if images:
            per_row = sc.num_samples
            padded = [
                torch.cat([x, torch.full((per_row - x.shape[0], *x.shape[1:]), 255, dtype=x.dtype)]) for x in images
            ]
            atomic_write_bytes(out / "samples.png", png_bytes(image_grid(torch.cat(padded), per_row, sc.min_cell)))
            files.insert(0, str(out / "samples.png"))
        write_jsonl(out / "samples.jsonl", rows)
        result = MixedSampleResult(out_dir=str(final), prior=str(prior_dir), num_samples=len(rows),
                                   sampling_seconds=round(seconds, 3), prompts=summary,
                                   files=folder.final(files, out))  # fmt: skip
        atomic_write_json(out / "samples.json", result.to_dict())
    return result
