"""``vqtok``: the command line. It finds the recipe for a verb, builds its config, runs it, prints the result.

    vqtok quickstart
    vqtok train-tokenizer --config image_vqvae --out runs/digits model.codebook_size=256 train.steps=3000
    vqtok train-tokenizer --out runs/digits --resume
    vqtok evaluate --tokenizer runs/digits/tokenizer --json
    vqtok tokenize --tokenizer runs/digits/tokenizer --split train
    vqtok reconstruct --tokenizer runs/digits/tokenizer --num-images 32

Every verb takes ``--config PRESET_OR_YAML``, trailing ``key=value`` overrides, ``--out``, ``--json``
(the result as one JSON object on stdout instead of the table) and ``--print-config``. Bad input
(an unknown key, a missing tokenizer, an unknown data set) prints one line and exits with status 2;
set ``VQTOK_DEBUG=1`` for the traceback. Verbs and their recipes live in one table, :mod:`recipes.verbs`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from recipes.engine.config import ConfigError, config_to_yaml, load_config, peek, preset_description, preset_names
from recipes.verbs import VERBS, Shortcut, Verb
from tokenizers_vq.progress import quiet_library_bars

# Bad input: reported in one line with exit status 2 (argparse's own status for usage errors).
USAGE_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
EXIT_USAGE = 2
EXIT_FAILURE = 1


def _presets_text(verb: Verb | None = None) -> str:
    """The presets with their descriptions; for a ``verb``, only those of modalities it has a recipe for."""
    lines = ["presets (--config NAME):"]
    names = preset_names()
    if verb is not None:
        modalities = set(verb.modalities)
        names = [n for n in names if peek(n, [], "modality", "image") in modalities]
    width = max((len(n) for n in names), default=0)
    lines += [f"  {name.ljust(width)}  {preset_description(name)}" for name in names]
    return "\n".join(lines)


def _top_help() -> str:
    width = max(len(v) for v in VERBS)
    verbs = "\n".join(f"  {name.ljust(width)}  {verb.help}" for name, verb in VERBS.items())
    return (
        "usage: vqtok VERB [--config PRESET_OR_YAML] [options] [key=value ...]\n\n"
        "Discrete VQ tokens for images and speech: train tokenizers, encode data sets into code corpora,\n"
        "fit priors over the codes, sample, reconstruct and evaluate. The preset's modality picks the recipe.\n\n"
        f"verbs:\n{verbs}\n\n{_presets_text()}\n\n"
        "`vqtok VERB --help` shows a verb's options; `vqtok VERB --print-config` its resolved config."
    )


def build_parser(verb: Verb) -> argparse.ArgumentParser:
    """The argument parser of one verb: common options, the verb's shortcuts, trailing overrides."""
    parser = argparse.ArgumentParser(
        prog=f"vqtok {verb.name}",
        description=verb.help,
        epilog=_presets_text(verb)
        + "\n\noverrides: dotted config keys, e.g. model.codebook_size=256 train.max_minutes=null",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if verb.positional is None:
        parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    else:
        parser.add_argument(
            "overrides",
            nargs="*",
            metavar=f"{verb.positional.metavar} [key=value ...]",
            help=f"{verb.positional.help}; then config overrides",
        )
    parser.add_argument(
        "--config", metavar="PRESET_OR_YAML", help=f"preset name or YAML file (default: {verb.default_config})"
    )
    parser.add_argument("--out", metavar="PATH", help=verb.out_help)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    if verb.resumable:
        if verb.resume_default:
            parser.add_argument("--resume", action="store_true", default=True, help=argparse.SUPPRESS)
        else:
            parser.add_argument(
                "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
            )
        parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --out and start again")
    elif verb.writes:
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace an existing --out file of this verb, or a folder another verb wrote (only what vqtok wrote "
            "is removed)",
        )
    for shortcut in verb.shortcuts:
        sets = f"{shortcut.help} (sets {shortcut.key}"
        if shortcut.const is not None:
            parser.add_argument(shortcut.flag, dest=_dest(shortcut), action="store_const", const=shortcut.const,
                                help=f"{sets}={shortcut.const})")  # fmt: skip
            continue
        parser.add_argument(shortcut.flag, dest=_dest(shortcut), metavar=shortcut.metavar, help=f"{sets})")
    return parser


def _dest(shortcut: Shortcut) -> str:
    return "shortcut_" + shortcut.flag.lstrip("-").replace("-", "_")


def _overrides(verb: Verb, args: argparse.Namespace) -> list[str]:
    """Shortcut options first, then ``--out``, then the trailing overrides (the last word wins)."""
    overrides = [f"{s.key}={getattr(args, _dest(s))}" for s in verb.shortcuts if getattr(args, _dest(s)) is not None]
    if args.out is not None:
        overrides.append(f"out={args.out}")
    return overrides + _positional_overrides(verb, list(args.overrides))


def _positional_overrides(verb: Verb, words: list[str]) -> list[str]:
    """For a verb with positional words: the bare words (no ``=``) as overrides of its keys, then the overrides."""
    spec = verb.positional
    if spec is None:
        return words
    bare = [w for w in words if "=" not in w]
    if len(bare) > 1 and spec.rest_key is None:
        raise ValueError(f"`{verb.name}` takes one {spec.metavar}; got {len(bare)}: {' '.join(bare)}.")
    # JSON strings and lists are YAML, so paths come through as strings whatever they look like.
    given = [f"{spec.key}={json.dumps(bare[0])}"] if bare else []
    if len(bare) > 1:
        given.append(f"{spec.rest_key}={json.dumps(bare[1:])}")
    return given + [w for w in words if "=" in w]


def _config_source(verb: Verb, args: argparse.Namespace) -> str:
    """``--config``; else, when resuming a run directory given by ``--out``, its saved config; else the default."""
    if args.config is not None:
        return str(args.config)
    if getattr(args, "resume", False) and not getattr(args, "overwrite", False) and args.out is not None:
        saved = Path(args.out).expanduser() / "config.yaml"
        if saved.is_file():
            return str(saved)
    return verb.default_config


def run_verb(verb: Verb, args: argparse.Namespace) -> int:
    overrides = _overrides(verb, args)
    source = _config_source(verb, args)
    implied = None
    if args.config is None and source == verb.default_config:
        from recipes.engine.artifacts import implied_config  # imports torch: only when a verb runs

        implied = implied_config(overrides)
    if implied is not None:  # the tokenizer says what it is and which data it was trained on
        source, overrides = implied[0], [*implied[1], *overrides]
    modality = peek(source, overrides, "modality", "image")
    recipe = verb.recipe(str(modality))
    function, schema = recipe.load()
    cfg = load_config(schema, source, overrides)
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    flags = {"overwrite": args.overwrite} if verb.writes else {}
    if verb.resumable:
        flags["resume"] = args.resume
    result = function(cfg, **flags)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun rank 0 alone reports, so --json prints one object
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        print(result.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vqtok`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        from tokenizers_vq import __version__

        print(f"vqtok {__version__}")
        return 0
    name = argv[0]
    if name not in VERBS:
        print(f"vqtok: unknown verb {name!r}; choose one of: {', '.join(VERBS)}.", file=sys.stderr)
        return EXIT_USAGE
    verb = VERBS[name]
    quiet_library_bars()  # a log gets our progress lines, not the bars of the libraries we call
    try:
        args = build_parser(verb).parse_intermixed_args(argv[1:])
    except SystemExit as stop:  # argparse exits on --help (0) and usage errors (2)
        return int(stop.code or 0)
    try:
        return run_verb(verb, args)
    except (ConfigError, *USAGE_ERRORS) as err:
        if os.environ.get("VQTOK_DEBUG"):
            raise
        print(f"vqtok {name}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except (FloatingPointError, OSError) as err:
        if os.environ.get("VQTOK_DEBUG"):
            raise
        print(f"vqtok {name}: failed: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if verb.resumable else ""
        print(f"\nvqtok {name}: interrupted{hint}", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
