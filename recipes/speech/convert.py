"""``vqtok convert``: say an audio file again in another voice: a training speaker's (``--speaker NAME``, a table
of speakers) or anyone's, heard from a clip (``--reference CLIP``, a reference-clip tokenizer).

Writes a WAV at the model's rate, exactly as long as the input at that rate, to ``out``: a ``.wav`` file, or a
folder that gets ``<input stem>_as_<voice>.wav`` (default: the folder ``converted/`` in the working directory,
never beside the input). An existing file is replaced only with ``--overwrite``, and never the input.
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

DEFAULT_FOLDER = "converted"  # in the working directory: what convert writes without --out
_FILE_SUFFIXES = (".wav", ".flac")  # an --out with one of these is the file itself, anything else a folder


@dataclass
class ConvertResult:
    input: str
    speaker: str  # the training speaker, or the reference clip's file name
    output: str
    seconds: float
    sample_rate: int
    samples: int  # the output's length: the input's, at the model's rate
    reference: str | None = None  # the reference clip, when the voice came from one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        return format_figures(self.to_dict(), title="convert")


def output_path(out: str | None, source: Path, voice: str) -> Path:
    """Where the conversion of ``source`` into ``voice`` goes: ``out`` itself when it names a ``.wav`` (or ``.flac``)
    file, else ``<out or converted>/<stem>_as_<voice>.wav``."""
    if out and Path(out).suffix.lower() in _FILE_SUFFIXES and not Path(out).expanduser().is_dir():
        return Path(out).expanduser()
    return Path(out or DEFAULT_FOLDER).expanduser() / f"{source.stem}_as_{voice}.wav"


def _voice(cfg: SpeechRecipeConfig, model: Any) -> tuple[str, Path | None]:
    """The target voice's name and its reference clip (None for a training speaker), checked against the tokenizer."""
    speaker, reference = cfg.convert.speaker, cfg.convert.reference
    if speaker is not None and reference is not None:
        raise ValueError("convert takes one target voice: pass --speaker NAME or --reference CLIP, not both.")
    if model.speaker_reference:
        if reference is None:
            raise ValueError(
                "this tokenizer speaks in the voice of a reference clip, not a training speaker's name: "
                "pass --reference CLIP (an audio file of the voice)."
            )
        clip = Path(reference).expanduser()
        return clip.stem, clip
    if reference is not None:
        raise ValueError(
            f"this tokenizer speaks only its training speakers' voices ({model.speakers}): pass --speaker NAME; a "
            "reference clip needs a tokenizer trained with model.speaker_conditioning=reference."
        )
    if speaker is None:
        raise ValueError(f"convert needs a target speaker: pass --speaker NAME, one of {model.speakers}.")
    return speaker, None


def run(cfg: SpeechRecipeConfig, *, overwrite: bool = False) -> ConvertResult:
    """Convert ``cfg.convert.input`` to the voice of ``cfg.convert.speaker`` or ``cfg.convert.reference``; see the
    module docstring. Nothing is written before every check has passed."""
    device = setup_runtime(cfg)
    _, model, _ = open_tokenizer(cfg, device, "convert")
    if cfg.convert.input is None:
        raise ValueError("convert needs an input: pass --input FILE (or convert.input=FILE).")
    name, clip = _voice(cfg, model)
    source = Path(cfg.convert.input).expanduser()
    out = output_path(cfg.out, source, name)
    if out.exists() and source.exists() and out.samefile(source):
        raise OutputRefused(f"--out {out} is the input file; pass --out another file or folder.")
    check_output_file(out, "convert", overwrite=overwrite, recognise=is_wav, what="a WAV file")
    shortest = model.config.min_seconds
    wave, rate = load_audio(source, min_seconds=shortest)
    target = load_audio(clip, min_seconds=shortest) if clip is not None else name
    with evaluation_mode(model):
        converted = convert_voice(model, wave, rate, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_audio(out, converted.cpu(), model.sample_rate)
    return ConvertResult(str(source), name, str(out), round(len(converted) / model.sample_rate, 3),
                         model.sample_rate, len(converted), None if clip is None else str(clip))  # fmt: skip
