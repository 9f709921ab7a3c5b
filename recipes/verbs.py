"""The verbs of ``vqtok`` and the recipe behind each (verb, modality): one table, the only one the CLI reads.

Adding a pipeline stage is adding a row to :data:`VERBS`: a :class:`Verb` (its name, help, default
preset and command-line shortcuts) with a :class:`Recipe` per modality that implements it
(``"module:function"`` and ``"module:Schema"``, imported only when that verb runs, so ``vqtok --help``
stays fast). The modality comes from the config's top-level ``modality`` key: ``evaluate`` given a
speech preset runs the speech recipe, given a prior preset the prior's. Nothing registers itself
from elsewhere: this file is the whole table, and importing it imports no recipe.

A recipe is ``run(cfg, **flags) -> result``, where ``result`` has ``to_dict()`` (the JSON figures)
and ``format()`` (the readable table). The recipe of a verb that writes takes ``overwrite``
(``--overwrite``: replace an output that another verb wrote, or a file this verb wrote;
:mod:`recipes.engine.outputs`); resumable verbs also take ``resume``.
The rows are in the order ``vqtok --help`` lists them.
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
class Recipe:
    """The implementation of a verb for one ``modality`` (the config's top-level ``modality`` key)."""

    modality: str
    target: str  # "package.module:function", called as function(cfg, **flags)
    schema: str  # "package.module:Dataclass", the config schema

    def load(self) -> tuple[Callable[..., RecipeResult], type]:
        """The recipe function and its config schema (imports their modules)."""
        return _import(self.target), _import(self.schema)


@dataclass(frozen=True)
class Verb:
    """A ``vqtok`` subcommand and the recipes that implement it, one per modality."""

    name: str
    help: str
    default_config: str  # preset used when --config is not given
    out_help: str  # what --out names for this verb
    recipes: tuple[Recipe, ...]
    shortcuts: tuple[Shortcut, ...] = ()
    resumable: bool = False  # takes --resume
    writes: bool = True  # writes an --out file or folder, so takes --overwrite
    resume_default: bool = False  # continues an existing run without --resume (the quickstart)
    positional: Positional | None = None  # bare words on the command line, e.g. the run directory of `report`

    @property
    def modalities(self) -> list[str]:
        """The modalities this verb has a recipe for, sorted."""
        return sorted(r.modality for r in self.recipes)

    def recipe(self, modality: str) -> Recipe:
        """The recipe for ``modality``; ``ValueError`` naming the modalities that have one."""
        for recipe in self.recipes:
            if recipe.modality == modality:
                return recipe
        raise ValueError(
            f"`{self.name}` has no recipe for modality {modality!r}; modalities with one: {', '.join(self.modalities)}."
        )


def _import(dotted: str) -> Any:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


# ---------------------------------------------------------------------------------------------
# Schemas and shortcuts that several rows share

IMAGE = "recipes.tokenizer.config:ImageRecipeConfig"
SPEECH = "recipes.tokenizer.config:SpeechRecipeConfig"
SPEECH_UNITS = "recipes.tokenizer.config:SpeechUnitsRecipeConfig"
PRIOR = "recipes.priors.config:PriorRecipeConfig"
MIXED = "recipes.mixed.config:MixedRecipeConfig"
IMAGE_CODING = "recipes.coding.config:ImageCodingConfig"
SPEECH_CODING = "recipes.coding.config:SpeechCodingConfig"
SPEECH_UNITS_CODING = "recipes.coding.config:SpeechUnitsCodingConfig"

_TOKENIZER = Shortcut(
    "--tokenizer", "tokenizer", "tokenizer directory (the 'tokenizer' folder of a training run)", "DIR"
)
_DATA = Shortcut("--data", "data.name", "data set name, e.g. digits, fashion_mnist, cifar10_subset, fsdd", "NAME")
_CODING_DATA = Shortcut("--data", "data.name", "data set name, e.g. digits, fashion_mnist, cifar10_subset", "NAME")
_DEVICE = Shortcut("--device", "device", "cpu, cuda, cuda:N or auto", "DEVICE")
_STEPS = Shortcut("--steps", "train.steps", "total optimizer steps", "N")
_PRIOR = Shortcut("--prior", "prior", "prior directory (the 'prior' folder of a train-prior run)", "DIR")
_CODING_PRIOR = Shortcut("--prior", "prior", "prior directory trained on this tokenizer's codes", "DIR")

# ---------------------------------------------------------------------------------------------
# The table

_ROWS = (
    Verb(
        "train-tokenizer",
        "train a tokenizer (image VQ-VAE / VQ-VAE-2, speech VQ-VAE); writes a run directory with tokenizer/ and checkpoint/",
        default_config="image_vqvae",
        out_help="run directory (default runs/<name>)",
        recipes=(
            Recipe("image", "recipes.tokenizer.train:run", IMAGE),
            Recipe("speech", "recipes.tokenizer.train:run", SPEECH),
            Recipe("speech-units", "recipes.tokenizer.train:run", SPEECH_UNITS),
        ),
        shortcuts=(_DATA, _STEPS, _DEVICE),
        resumable=True,
    ),
    Verb(
        "tokenize",
        "encode a data set split into a memory-mappable code corpus (codes_level*.npy, labels.npy, meta.json)",
        default_config="image_vqvae",
        out_help="corpus directory (default <tokenizer>/../codes_<data>_<split>)",
        recipes=(
            Recipe("image", "recipes.tokenizer.tokenize:run", IMAGE),
            Recipe("speech", "recipes.tokenizer.tokenize:run", SPEECH),
            Recipe("speech-units", "recipes.tokenizer.tokenize:run", SPEECH_UNITS),
        ),
        shortcuts=(
            _TOKENIZER,
            _DATA,
            Shortcut("--split", "tokenize.split", "split to encode", "SPLIT"),
            _DEVICE,
            Shortcut(
                "--shard", "tokenize.shard", "encode only shard I of N (0-based); the last to finish merges", "I/N"
            ),
            Shortcut("--merge", "tokenize.merge", "only merge the chunks that shard runs wrote", const="true"),
            Shortcut("--format", "tokenize.format", "npy (memory-mappable arrays) or hf (a datasets dataset)", "FORMAT"),
            Shortcut("--engine", "tokenize.engine", "local (this process) or ray (a Ray Data job)", "ENGINE"),
            Shortcut(
                "--ray-address", "tokenize.ray_address", "with --engine ray: a running cluster (auto, HOST:PORT)", "ADDR"
            ),
        ),
    ),
    Verb(
        "reconstruct",
        "write a PNG grid of held-out images above their reconstructions, with their MSE/PSNR/SSIM",
        default_config="image_vqvae",
        out_help="output directory (default <tokenizer>/../reconstructions)",
        recipes=(
            Recipe("image", "recipes.tokenizer.reconstruct:run", IMAGE),
            Recipe("speech", "recipes.tokenizer.reconstruct:run", SPEECH),
            Recipe("speech-units", "recipes.tokenizer.reconstruct:run", SPEECH_UNITS),
        ),
        shortcuts=(
            _TOKENIZER,
            _DATA,
            Shortcut("--split", "reconstruct.split", "split to draw images from", "SPLIT"),
            Shortcut("--num-images", "reconstruct.num_images", "how many images", "N"),
            _DEVICE,
        ),
    ),
    Verb(
        "evaluate",
        "reconstruction quality and codebook health (usage, perplexity, dead codes, label NMI) on a split",
        default_config="image_vqvae",
        out_help="also write the figures to this JSON file",
        recipes=(
            Recipe("image", "recipes.tokenizer.evaluate:run", IMAGE),
            Recipe("speech", "recipes.tokenizer.evaluate:run", SPEECH),
            Recipe("speech-units", "recipes.tokenizer.evaluate:run", SPEECH_UNITS),
            Recipe("prior", "recipes.priors.evaluate:run", PRIOR),  # bits per code and bits/dim on held-out codes
            Recipe("mixed", "recipes.mixed.evaluate:run", MIXED),
        ),
        shortcuts=(_TOKENIZER, _DATA, Shortcut("--split", "eval.split", "split to evaluate on", "SPLIT"), _DEVICE),
    ),
    Verb(
        "quickstart",
        "train a small VQ-VAE on real images (offline, minutes on a CPU), reconstruct and report",
        default_config="quickstart",
        out_help="run directory (default runs/quickstart)",
        recipes=(Recipe("image", "recipes.quickstart:run", IMAGE),),
        shortcuts=(_DATA, _STEPS, _DEVICE),
        resumable=True,
        resume_default=True,
    ),
    Verb(
        "report",
        "one static HTML page (with its PNGs) about a run: curves, evaluation tables, codebook usage, "
        "reconstructions, samples, phone confusion, rate–distortion",
        default_config="report",
        out_help="report directory (default RUN_DIR/report)",
        recipes=(Recipe("report", "recipes.report.html:run", "recipes.report.html:ReportConfig"),),
        positional=Positional(
            "RUN_DIR [PATH ...]",
            "run_dir",
            "a training run directory, then any folders or files with more of its outputs",
            rest_key="include",
        ),
    ),
    Verb(
        "push",
        "publish a tokenizer or prior folder on the Hugging Face Hub with a generated model card",
        default_config="push",
        out_help="not used",
        recipes=(Recipe("hub", "recipes.hub.push:run", "recipes.hub.push:PushConfig"),),
        writes=False,
        positional=Positional("MODEL_DIR", "model", "the folder to publish (a run's tokenizer/ or prior/ folder)"),
        shortcuts=(
            Shortcut("--repo", "repo", "the Hub repository, namespace/name", "REPO"),
            Shortcut("--revision", "revision", "the branch to push to (default main)", "BRANCH"),
            Shortcut("--private", "private", "create the repository as private", const="true"),
        ),
    ),
    Verb(
        "phones",
        "how close speech codes are to phones: mapping accuracy, purities, PNMI, beside k-means-on-MFCC and random codes",
        default_config="speech_festival",
        out_help="output directory for figures.json and confusion.png (default <tokenizer>/../phones)",
        recipes=(
            Recipe("speech", "recipes.speech.phones:run", SPEECH),
            Recipe("speech-units", "recipes.speech.phones:run", SPEECH_UNITS),
        ),
        shortcuts=(_TOKENIZER, _DEVICE),
    ),
    Verb(
        "convert",
        "voice conversion: say an audio file again in the voice of a training speaker, or of any speaker's clip",
        default_config="speech_festival",
        out_help="WAV file to write, or a folder for <input>_as_<voice>.wav (default the folder converted/ here)",
        recipes=(
            Recipe("speech", "recipes.speech.convert:run", SPEECH),
            Recipe("speech-units", "recipes.speech.convert:run", SPEECH_UNITS),
        ),
        shortcuts=(
            _TOKENIZER,
            Shortcut("--input", "convert.input", "audio file to convert", "FILE"),
            Shortcut("--speaker", "convert.speaker", "target speaker (a training speaker of the tokenizer)", "NAME"),
            Shortcut("--reference", "convert.reference", "a clip of the target voice (reference-clip models)", "CLIP"),
            _DEVICE,
        ),
    ),
    Verb(
        "bpe",
        "unit BPE over a code corpus: codes per token on held-out codes, and a prior's bits per code with and without it",
        default_config="bpe_fsdd",
        out_help="output directory for unit_bpe.model, figures.json and the two priors (default runs/<name>)",
        recipes=(Recipe("bpe", "recipes.units.bpe:run", "recipes.units.config:BPERecipeConfig"),),
        shortcuts=(
            Shortcut("--corpus", "corpus", "training code corpus written by `vqtok tokenize`", "DIR"),
            Shortcut("--eval-corpus", "eval_corpus", "held-out code corpus", "DIR"),
            Shortcut("--vocab-size", "bpe.vocab_size", "sentencepiece vocabulary (codes included)", "N"),
            _DEVICE,
        ),
    ),
    Verb(
        "train-mixed",
        "one transformer prior over text prompts, image codes and audio codes in one token space; writes prior/",
        default_config="mixed_fashion_fsdd",
        out_help="run directory (default runs/<name>)",
        recipes=(Recipe("mixed", "recipes.mixed.train:run", MIXED),),
        shortcuts=(_STEPS, _DEVICE),
        resumable=True,
    ),
    # The rate verbs: images or utterances to one entropy-coded file and back; rate against distortion beside
    # classic codecs (PNG, JPEG, WebP for images; Opus, Vorbis, MP3 for speech).
    Verb(
        "compress",
        "images or speech → codes → one entropy-coded file (range coding with the prior's probabilities); size beside "
        "the NLL",
        default_config="image_vqvae",
        out_help="code file to write (default <tokenizer>/../<data>_<split>.vqc)",
        recipes=(
            Recipe("image", "recipes.coding.compress:run", IMAGE_CODING),
            Recipe("speech", "recipes.coding.compress:run", SPEECH_CODING),
            Recipe("speech-units", "recipes.coding.compress:run", SPEECH_UNITS_CODING),
        ),
        shortcuts=(
            _TOKENIZER,
            _CODING_PRIOR,
            _CODING_DATA,
            Shortcut(
                "--input", "compress.input", "image or audio file, or a folder (default: a data set split)", "PATH"
            ),
            Shortcut("--split", "compress.split", "data set split to compress (speech: train or eval)", "SPLIT"),
            Shortcut("--max-items", "compress.max_items", "the first N images or utterances of the split", "N"),
            _DEVICE,
        ),
    ),
    Verb(
        "decompress",
        "a code file → the exact codes → images (.npy and PNGs) or speech (codes, WAVs), checked against the "
        "tokenizer and prior it names",
        default_config="image_vqvae",
        out_help="output directory (default: the file's path without .vqc)",
        recipes=(
            Recipe("image", "recipes.coding.decompress:run", IMAGE_CODING),
            Recipe("speech", "recipes.coding.decompress:run", SPEECH_CODING),
            Recipe("speech-units", "recipes.coding.decompress:run", SPEECH_UNITS_CODING),
        ),
        shortcuts=(
            _TOKENIZER,
            _CODING_PRIOR,
            Shortcut("--input", "decompress.input", "code file written by `vqtok compress`", "FILE"),
            Shortcut(
                "--speaker", "decompress.speaker", "speech: also write WAVs in this training speaker's voice", "NAME"
            ),
            _DEVICE,
        ),
    ),
    Verb(
        "rd",
        "rate–distortion: bits per pixel vs PSNR/SSIM of tokenizers beside PNG, JPEG and WebP; writes rd.json and rd.png",
        default_config="image_vqvae",
        out_help="output directory for rd.json and rd.png (default runs/rd)",
        recipes=(
            Recipe("image", "recipes.coding.rd:run", IMAGE_CODING),
            Recipe("speech", "recipes.coding.rd:run", SPEECH_CODING),
            Recipe("speech-units", "recipes.coding.rd:run", SPEECH_UNITS_CODING),
        ),
        shortcuts=(
            _CODING_DATA,
            Shortcut("--split", "rd.split", "held-out split to evaluate on", "SPLIT"),
            Shortcut("--max-items", "rd.max_items", "the first N held-out images", "N"),
            _DEVICE,
        ),
    ),
    # The prior verbs: every prior preset has `modality: prior` (a mixed preset `modality: mixed`).
    Verb(
        "train-prior",
        "fit a gated PixelCNN / WaveNet-like / transformer prior over a code corpus; writes prior/ and checkpoint/",
        default_config="prior_pixelcnn",
        out_help="run directory (default runs/<name>)",
        recipes=(Recipe("prior", "recipes.priors.train_prior:run", PRIOR),),
        shortcuts=(
            Shortcut("--corpus", "corpus", "code corpus written by `vqtok tokenize`", "DIR"),
            Shortcut("--eval-corpus", "eval_corpus", "held-out code corpus for bits/code during training", "DIR"),
            Shortcut("--kind", "model.kind", "pixelcnn or transformer", "KIND"),
            _STEPS,
            _DEVICE,
        ),
        resumable=True,
    ),
    Verb(
        "sample",
        "draw codes from a prior (class-conditional: per class) and decode them to a PNG grid or WAV files",
        default_config="prior_pixelcnn",
        out_help="output directory (default <prior>/../samples)",
        recipes=(
            Recipe("prior", "recipes.priors.sample:run", PRIOR),
            Recipe("mixed", "recipes.mixed.sample:run", MIXED),
        ),
        shortcuts=(
            _PRIOR,
            Shortcut("--num-samples", "sample.num_samples", "samples per class (or in all, unconditional)", "N"),
            Shortcut("--temperature", "sample.sampling.temperature", "divide the logits by this", "T"),
            Shortcut("--top-k", "sample.sampling.top_k", "keep the k most likely codes", "K"),
            Shortcut("--top-p", "sample.sampling.top_p", "keep the smallest set with this much probability", "P"),
            Shortcut("--seed", "sample.sampling.seed", "sampling seed", "N"),
            _DEVICE,
        ),
    ),
    Verb(
        "cas",
        "Classification Accuracy Score: a classifier trained on class-conditional samples, tested on real images",
        default_config="prior_pixelcnn",
        out_help="also write the figures to this JSON file",
        recipes=(
            Recipe("prior", "recipes.priors.cas:run", PRIOR),
            Recipe("mixed", "recipes.mixed.cas:run", MIXED),
        ),
        shortcuts=(
            _PRIOR,
            Shortcut("--samples-per-class", "cas.samples_per_class", "samples drawn per class", "N"),
            Shortcut("--rejection-threshold", "cas.rejection_threshold", "classifier-based rejection threshold", "P"),
            _DEVICE,
        ),
    ),
)

VERBS: dict[str, Verb] = {verb.name: verb for verb in _ROWS}
