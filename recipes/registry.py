"""The verbs of ``vqtok`` and the recipe behind each (verb, modality): a table the CLI reads.

Adding a pipeline stage is adding rows here: a :class:`Verb` (its name, help, default preset and
command-line shortcuts) and a :class:`Recipe` per modality that implements it (``"module:function"``
and ``"module:Schema"``, imported only when that verb runs, so ``vqtok --help`` stays fast). The
modality comes from the config's top-level ``modality`` key, so ``vqtok train-tokenizer --config
speech_vqvae`` will find a speech recipe once one is registered.

A recipe is ``run(cfg, **flags) -> result``, where ``result`` has ``to_dict()`` (the JSON figures)
and ``format()`` (the readable table); resumable verbs also take ``resume`` and ``overwrite``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class RecipeResult(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def format(self) -> str: ...


@dataclass(frozen=True)
class Shortcut:
    """A command-line option that sets one config key, e.g. ``--steps 100`` → ``train.steps=100``."""

    flag: str
    key: str
    help: str
    metavar: str = "VALUE"
    const: str | None = None  # a switch without a value that sets ``key`` to this, e.g. ``--merge`` → ``true``


@dataclass(frozen=True)
class Positional:
    """Bare words on a verb's command line (words without ``=``): the first sets ``key``, further ones ``rest_key``.

    ``vqtok report runs/fm runs/rd`` → ``run_dir=runs/fm include=[runs/rd]``.
    """

    metavar: str  # e.g. "RUN_DIR [PATH ...]"
    key: str
    help: str
    rest_key: str | None = None  # a list key for the words after the first; None: only one word allowed


@dataclass(frozen=True)
class Verb:
    """A ``vqtok`` subcommand."""

    name: str
    help: str
    default_config: str  # preset used when --config is not given
    out_help: str  # what --out names for this verb
    shortcuts: tuple[Shortcut, ...] = ()
    resumable: bool = False  # takes --resume and --overwrite
    resume_default: bool = False  # continues an existing run without --resume (the quickstart)
    positional: Positional | None = None  # bare words on the command line, e.g. the run directory of `report`


@dataclass(frozen=True)
class Recipe:
    """The implementation of ``verb`` for one ``modality``."""

    verb: str
    modality: str
    target: str  # "package.module:function", called as function(cfg, **flags)
    schema: str  # "package.module:Dataclass", the config schema

    def load(self) -> tuple[Callable[..., RecipeResult], type]:
        return _import(self.target), _import(self.schema)


def _import(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


_TOKENIZER = Shortcut(
    "--tokenizer", "tokenizer", "tokenizer directory (the 'tokenizer' folder of a training run)", "DIR"
)
_DATA = Shortcut("--data", "data.name", "data set name, e.g. digits, fashion_mnist, cifar10_subset, fsdd", "NAME")
_DEVICE = Shortcut("--device", "device", "cpu, cuda, cuda:N or auto", "DEVICE")
_IMAGE_SCHEMA = "recipes.image.config:ImageRecipeConfig"

VERBS: dict[str, Verb] = {}
RECIPES: dict[tuple[str, str], Recipe] = {}


def register(verb: Verb, *recipes: Recipe) -> None:
    """Add a verb (or replace one of the same name) and its recipes."""
    VERBS[verb.name] = verb
    for recipe in recipes:
        if recipe.verb != verb.name:
            raise ValueError(f"recipe for {recipe.verb!r} registered under verb {verb.name!r}.")
        RECIPES[(recipe.verb, recipe.modality)] = recipe


def find_recipe(verb: str, modality: str) -> Recipe:
    """The recipe of ``verb`` for ``modality``; ``ValueError`` naming the modalities that have one."""
    if (verb, modality) in RECIPES:
        return RECIPES[(verb, modality)]
    have = sorted(m for v, m in RECIPES if v == verb)
    raise ValueError(f"`{verb}` has no recipe for modality {modality!r}; modalities with one: {', '.join(have)}.")


register(
    Verb(
        "train-tokenizer",
        "train a tokenizer (image VQ-VAE / VQ-VAE-2, speech VQ-VAE); writes a run directory with tokenizer/ and checkpoint/",
        default_config="image_vqvae",
        out_help="run directory (default runs/<name>)",
        shortcuts=(_DATA, Shortcut("--steps", "train.steps", "total optimizer steps", "N"), _DEVICE),
        resumable=True,
    ),
    Recipe("train-tokenizer", "image", "recipes.image.train_tokenizer:run", _IMAGE_SCHEMA),
)
register(
    Verb(
        "tokenize",
        "encode a data set split into a memory-mappable code corpus (codes_level*.npy, labels.npy, meta.json)",
        default_config="image_vqvae",
        out_help="corpus directory (default <tokenizer>/../codes_<data>_<split>)",
        shortcuts=(
            _TOKENIZER,
            _DATA,
            Shortcut("--split", "tokenize.split", "split to encode", "SPLIT"),
            _DEVICE,
            Shortcut(
                "--shard", "tokenize.shard", "encode only shard I of N (0-based); the last to finish merges", "I/N"
            ),
            Shortcut("--merge", "tokenize.merge", "only merge the chunks that shard runs wrote", const="true"),
        ),
    ),
    Recipe("tokenize", "image", "recipes.image.tokenize_corpus:run", _IMAGE_SCHEMA),
)
register(
    Verb(
        "reconstruct",
        "write a PNG grid of held-out images above their reconstructions, with their MSE/PSNR/SSIM",
        default_config="image_vqvae",
        out_help="output directory (default <tokenizer>/../reconstructions)",
        shortcuts=(
            _TOKENIZER,
            _DATA,
            Shortcut("--split", "reconstruct.split", "split to draw images from", "SPLIT"),
            Shortcut("--num-images", "reconstruct.num_images", "how many images", "N"),
            _DEVICE,
        ),
    ),
    Recipe("reconstruct", "image", "recipes.image.reconstruct:run", _IMAGE_SCHEMA),
)
register(
    Verb(
        "evaluate",
        "reconstruction quality and codebook health (usage, perplexity, dead codes, label NMI) on a split",
        default_config="image_vqvae",
        out_help="also write the figures to this JSON file",
        shortcuts=(_TOKENIZER, _DATA, Shortcut("--split", "eval.split", "split to evaluate on", "SPLIT"), _DEVICE),
    ),
    Recipe("evaluate", "image", "recipes.image.evaluate:run", _IMAGE_SCHEMA),
)
register(
    Verb(
        "quickstart",
        "train a small VQ-VAE on real images (offline, minutes on a CPU), reconstruct and report",
        default_config="quickstart",
        out_help="run directory (default runs/quickstart)",
        shortcuts=(_DATA, Shortcut("--steps", "train.steps", "total optimizer steps", "N"), _DEVICE),
        resumable=True,
        resume_default=True,
    ),
    Recipe("quickstart", "image", "recipes.image.quickstart:run", _IMAGE_SCHEMA),
)
register(
    Verb(
        "report",
        "one static HTML page (with its PNGs) about a run: curves, evaluation tables, codebook usage, "
        "reconstructions, samples, phone confusion, rate–distortion",
        default_config="report",
        out_help="report directory (default RUN_DIR/report)",
        positional=Positional(
            "RUN_DIR [PATH ...]",
            "run_dir",
            "a training run directory, then any folders or files with more of its outputs",
            rest_key="include",
        ),
    ),
    Recipe("report", "report", "recipes.report.html:run", "recipes.report.html:ReportConfig"),
)

# Speech: the shared verbs with modality "speech" (presets speech_*), then the speech-only verbs.
_SPEECH_SCHEMA = "recipes.speech.config:SpeechRecipeConfig"
for _verb, _module in (
    ("train-tokenizer", "train_tokenizer"),
    ("tokenize", "tokenize_corpus"),
    ("reconstruct", "reconstruct"),
    ("evaluate", "evaluate"),
):
    RECIPES[(_verb, "speech")] = Recipe(_verb, "speech", f"recipes.speech.{_module}:run", _SPEECH_SCHEMA)
register(
    Verb(
        "phones",
        "how close speech codes are to phones: mapping accuracy, purities, PNMI, beside k-means-on-MFCC and random codes",
        default_config="speech_festival",
        out_help="output directory for figures.json and confusion.png (default <tokenizer>/../phones)",
        shortcuts=(_TOKENIZER, _DEVICE),
    ),
    Recipe("phones", "speech", "recipes.speech.phones:run", _SPEECH_SCHEMA),
)
register(
    Verb(
        "convert",
        "voice conversion: say an audio file again in the voice of one of the tokenizer's training speakers",
        default_config="speech_festival",
        out_help="WAV file to write (default <input>_as_<speaker>.wav beside the input)",
        shortcuts=(
            _TOKENIZER,
            Shortcut("--input", "convert.input", "audio file to convert", "FILE"),
            Shortcut("--speaker", "convert.speaker", "target speaker (a training speaker of the tokenizer)", "NAME"),
            _DEVICE,
        ),
    ),
    Recipe("convert", "speech", "recipes.speech.convert:run", _SPEECH_SCHEMA),
)
register(
    Verb(
        "bpe",
        "unit BPE over a code corpus: codes per token on held-out codes, and a prior's bits per code with and without it",
        default_config="bpe_fsdd",
        out_help="output directory for unit_bpe.model, figures.json and the two priors (default runs/<name>)",
        shortcuts=(
            Shortcut("--corpus", "corpus", "training code corpus written by `vqtok tokenize`", "DIR"),
            Shortcut("--eval-corpus", "eval_corpus", "held-out code corpus", "DIR"),
            Shortcut("--vocab-size", "bpe.vocab_size", "sentencepiece vocabulary (codes included)", "N"),
            _DEVICE,
        ),
    ),
    Recipe("bpe", "bpe", "recipes.units.bpe:run", "recipes.units.config:BPERecipeConfig"),
)
register(
    Verb(
        "train-mixed",
        "one transformer prior over text prompts, image codes and audio codes in one token space; writes prior/",
        default_config="mixed_fashion_fsdd",
        out_help="run directory (default runs/<name>)",
        shortcuts=(Shortcut("--steps", "train.steps", "total optimizer steps", "N"), _DEVICE),
        resumable=True,
    ),
    Recipe("train-mixed", "mixed", "recipes.mixed.train:run", "recipes.mixed.config:MixedRecipeConfig"),
)
# sample, cas and evaluate of a mixed prior (config modality "mixed"; those verbs are registered by recipes.priors.verbs)
for _verb, _module in (("sample", "sample"), ("cas", "cas"), ("evaluate", "evaluate")):
    RECIPES[(_verb, "mixed")] = Recipe(
        _verb, "mixed", f"recipes.mixed.{_module}:run", "recipes.mixed.config:MixedRecipeConfig"
    )
