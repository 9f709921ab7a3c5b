"""``vqtok convert``: say an audio file again in the voice of one of the tokenizer's training speakers.

Writes a WAV at the model's rate to ``out`` (default ``<input stem>_as_<speaker>.wav`` beside the input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modalities.speech import convert_voice, load_audio, save_audio
from recipes.engine.artifacts import open_tokenizer
from recipes.engine.outputs import OutputRefused, check_output_file, is_wav
from recipes.engine.results import format_figures
from recipes.engine.runtime import evaluation_mode, setup_runtime
from recipes.tokenizer.config import SpeechRecipeConfig


@dataclass
class ConvertResult:
    input: str
    speaker: str
    output: str
    seconds: float
    sample_rate: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        return format_figures(self.to_dict(), title="convert")


def run(cfg: SpeechRecipeConfig, *, overwrite: bool = False) -> ConvertResult:
    """Convert ``cfg.convert.input`` to the voice of ``cfg.convert.speaker``; see the module docstring.

    An existing output file is replaced only with ``overwrite``, and only a WAV file; never the input.
    """
    device = setup_runtime(cfg)
    _, model, _ = open_tokenizer(cfg, device, "convert")
    if cfg.convert.input is None:
        raise ValueError("convert needs an input: pass --input FILE (or convert.input=FILE).")
    if cfg.convert.speaker is None:
        raise ValueError(f"convert needs a target speaker: pass --speaker NAME, one of {model.speakers}.")
    source = Path(cfg.convert.input).expanduser()
    out = Path(cfg.out).expanduser() if cfg.out else source.with_name(f"{source.stem}_as_{cfg.convert.speaker}.wav")
    if out.exists() and source.exists() and out.samefile(source):
        raise OutputRefused(f"--out {out} is the input file; pass --out another file.")
    check_output_file(out, "convert", overwrite=overwrite, recognise=is_wav, what="a WAV file")
    wave, rate = load_audio(source, min_seconds=model.config.min_seconds)
    with evaluation_mode(model):
        converted = convert_voice(model, wave, rate, cfg.convert.speaker)
    save_audio(out, converted.cpu(), model.sample_rate)
    return ConvertResult(
        str(source), cfg.convert.speaker, str(out), round(len(converted) / model.sample_rate, 3), model.sample_rate
    )
