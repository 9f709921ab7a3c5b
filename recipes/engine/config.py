"""Recipe configs: a dataclass schema, filled from YAML presets or files, then from dotted overrides.

A config is built in three layers, each checked against the schema (OmegaConf structured configs):

1. the schema's defaults (a ``@dataclass`` whose fields are sections or plain values);
2. a YAML source: a preset name from ``recipes/configs`` (``"tiny"``, ``"image_vqvae"``) or a path.
   A YAML file may start from others and change only what differs: a top-level
   ``defaults: [speech_festival]`` lists presets or YAML paths (relative to the file), applied in
   order, with the file's own keys on top. Those may have defaults of their own; a cycle is an error;
3. command-line overrides such as ``model.codebook_size=256`` or ``train.max_minutes=null``.

Selections. A few keys choose what the other keys of their section mean, so they must not merge
with settings made for another choice: ``modality`` chooses the schema itself (its section is the
whole config) and ``data.name`` the data set (``data.root``, the splits, a speech corpus's layout and
utterance selections belong to one data set). The rule: when a source (one YAML file, or all the
overrides together) sets a selecting key to another value than the one it inherits, the section's
inherited settings are dropped: it starts again from the schema's defaults, then takes what this
source and later ones set. One line on stderr names what was reset, e.g. ``note: data.name=fsdd
(from the command line) replaces the data section of preset 'speech_festival' (data.layout,
data.train.max_index, ... reset to defaults)``. Not selections, because their dependants are checked
or kept apart: an image tokenizer's ``model.kind`` (``num_levels`` is checked against it; widths and
codebooks carry over), a speech tokenizer's ``model.quantizer`` (likewise ``num_quantizers``) and a
prior's ``model.kind`` (each kind has its own subsection, ``model.pixelcnn``, ``model.transformer``).

An unknown key, a value of the wrong type or a malformed override raises :class:`ConfigError` (a
``ValueError``) that names the key and where it came from. The result is a plain dataclass
instance, so recipes get attribute access and type hints and never see OmegaConf objects.
"""

from __future__ import annotations

import difflib
import numbers
import os
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf import errors as oc_errors

from tokenizers_vq.io import atomic_write_text

T = TypeVar("T")

PRESETS = resources.files("recipes") / "configs"  # package data, see pyproject.toml
_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# Selecting keys (see the module docstring), shallowest first; each selects its parent section ("": all).
SELECTIONS = ("modality", "data.name")
_UNSET = object()


class ConfigError(ValueError):
    """A config that does not fit its schema; the message names the key and what to do."""


# ---------------------------------------------------------------------------------------------
# Presets and YAML sources


def preset_names() -> list[str]:
    """Names of the presets shipped in ``recipes/configs`` (file stems), sorted."""
    return sorted(p.name[: -len(".yaml")] for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    """The first comment line of a preset, without the ``#``; empty when it has none."""
    for line in PRESETS.joinpath(f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


@dataclass
class _Source:
    """One YAML file, or the overrides: its updates (plain nested dicts) in order, each with its origin."""

    name: str  # "preset 'tiny'", a path, or "the command line"
    where: str  # "in preset 'tiny'", "from the command line": for the selection note
    updates: list[tuple[dict[str, Any], str]]  # (update, origin for error messages)


def _read_yaml(source: str | Path, folder: Path | None, named_in: str | None) -> tuple[dict[str, Any], str, str, Path]:
    """Parse a preset name or a YAML path: (its keys, its label, an identity for cycles, the folder it lies in).

    A string with a path separator or a ``.yaml``/``.yml`` ending is a path (relative to ``folder``
    when given: the folder of the file whose ``defaults`` names it); anything else is a preset name.
    """
    text = str(source)
    context = f" (named in the defaults of {named_in})" if named_in else ""
    if isinstance(source, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
        path = folder / path if folder is not None and not path.is_absolute() else path
        if not path.is_file():
            raise ConfigError(
                f"config file {str(path)!r}{context} does not exist. Pass a YAML file or one of the presets: "
                f"{', '.join(preset_names())}."
            )
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"config file {str(path)!r}{context} is not UTF-8 text ({err}); save it as UTF-8."
            ) from err
        label, identity, home = str(path), str(path.resolve()), path.parent
    else:
        names = preset_names()
        if text not in names:
            close = difflib.get_close_matches(text, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown preset {text!r}{context}.{hint} Presets: {', '.join(names)}; or pass a YAML path."
            )
        raw = PRESETS.joinpath(f"{text}.yaml").read_text(encoding="utf-8")
        label = identity = f"preset {text!r}"
        home = Path(str(PRESETS))
    try:
        loaded = OmegaConf.create(raw) if raw.strip() else OmegaConf.create({})
    except Exception as err:  # yaml.YAMLError and OmegaConf's own parse errors
        raise ConfigError(f"cannot parse {label} as YAML: {err}") from err
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{label} must hold a mapping of config keys; got a {type(loaded).__name__}.")
    keys = typing.cast(dict[str, Any], OmegaConf.to_container(loaded, resolve=False))
    return keys, label, identity, home


def _yaml_sources(
    source: str | Path, folder: Path | None = None, chain: tuple[tuple[str, str], ...] = ()
) -> list[_Source]:
    """``source`` and, before it, what its ``defaults`` name (depth first, in order); ``chain``: the files above."""
    keys, label, identity, home = _read_yaml(source, folder, chain[-1][1] if chain else None)
    if identity in (i for i, _ in chain):
        loop = " → ".join([*(name for _, name in chain), label])
        raise ConfigError(f"the defaults form a cycle: {loop}. Remove one of these entries.")
    entries = keys.pop("defaults", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(
            f"'defaults' in {label} must be a list of preset names or YAML paths, e.g. defaults: [tiny]; "
            f"got {entries!r}."
        )
    sources = [s for entry in entries for s in _yaml_sources(entry, home, (*chain, (identity, label)))]
    return [*sources, _Source(label, f"in {label}", [(keys, f"in {label}")])]


def _sources(source: str | Path | None, overrides: Sequence[str]) -> list[_Source]:
    """Every source in the order it applies: the defaults chain of ``source``, ``source``, then the overrides."""
    sources = _yaml_sources(source) if source is not None else []
    if overrides:
        updates = [(_plain(parse_override(o)), f"from override {o!r}") for o in overrides]
        sources.append(_Source("the command line", "from the command line", updates))
    return sources


def _plain(cfg: DictConfig) -> dict[str, Any]:
    return typing.cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=False))


def _get(tree: Any, dotted: str) -> Any:
    """The value at ``dotted`` in nested dicts; ``_UNSET`` when a part is missing."""
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _UNSET
        tree = tree[part]
    return tree


def _last(updates: Sequence[dict[str, Any]], dotted: str, default: Any = _UNSET) -> Any:
    """The value the last of ``updates`` that sets ``dotted`` gives it; ``default`` when none does."""
    found = [v for v in (_get(u, dotted) for u in updates) if v is not _UNSET]
    return found[-1] if found else default


def _drop(update: dict[str, Any], section: str) -> dict[str, Any]:
    """Remove ``section`` ("" for everything) from ``update``; the flattened keys removed and their values."""
    if not section:
        removed = dict(update)
        update.clear()
        return flatten(removed)
    parent_key, _, name = section.rpartition(".")
    parent = _get(update, parent_key) if parent_key else update
    if not isinstance(parent, dict) or name not in parent:
        return {}
    value = parent.pop(name)
    return flatten(value, f"{section}.") if isinstance(value, dict) else {section: value}


def _apply_selections(schema: type, sources: list[_Source]) -> None:
    """Drop inherited settings of a section whose selecting key a later source changes (module docstring)."""
    base = OmegaConf.structured(schema)
    for i, source in enumerate(sources):
        mine = [u for u, _ in source.updates]
        for key in (k for k in SELECTIONS if k.rpartition(".")[2] in _field_names(schema, k.rpartition(".")[0])):
            new = _last(mine, key)
            earlier = [u for s in sources[:i] for u, _ in s.updates]
            if new is _UNSET or new == _last(earlier, key, OmegaConf.select(base, key)):
                continue
            section = key.rpartition(".")[0]
            kept = {k for u in mine for k in flatten(u)}
            lost: dict[str, list[str]] = {}  # source name -> its keys now back at the schema default
            for earlier_source in sources[:i]:
                for update, _ in earlier_source.updates:
                    for k, v in _drop(update, section).items():
                        if k not in kept and v != _default(base, k):
                            lost.setdefault(earlier_source.name, []).append(k)
            _note_reset(f"{key}={new} ({source.where})", section, lost)


def _default(base: DictConfig, dotted: str) -> Any:
    value = OmegaConf.select(base, dotted, default=None, throw_on_missing=False)
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


def _note_reset(change: str, section: str, lost: dict[str, list[str]]) -> None:
    """One line on stderr (rank 0 only) saying which inherited keys a selection reset."""
    if not lost or os.environ.get("RANK", "0") != "0":
        return
    keys = [k for ks in lost.values() for k in ks]
    if not section:  # everything was dropped: name the top-level keys and sections
        keys = list(dict.fromkeys(k.split(".")[0] for k in keys))
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    what = f"the {section} section of" if section else "all of"
    print(f"note: {change} replaces {what} {', '.join(lost)} ({shown} reset to defaults)", file=sys.stderr)


def peek(source: str | Path | None, overrides: Sequence[str], key: str, default: Any) -> Any:
    """The value of ``key`` that ``source`` (with its defaults) and ``overrides`` set, without any schema.

    Used to pick a schema (by ``modality``) before the config can be checked; the selection rule,
    which needs the schema, is not applied (the selecting key itself is the last value set).
    """
    return _last([u for s in _sources(source, overrides) for u, _ in s.updates], key, default)


# ---------------------------------------------------------------------------------------------
# Building a config


def load_config(schema: type[T], source: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a ``schema`` instance from its defaults, ``source`` (preset or YAML path, with the
    presets its ``defaults`` name) and ``overrides``, applying the selection rule (module docstring).

    >>> cfg = load_config(ImageRecipeConfig, "tiny", ["model.codebook_size=32"])  # doctest: +SKIP
    >>> cfg.model.codebook_size                                                  # doctest: +SKIP
    32

    Raises :class:`ConfigError` for an unknown key, a wrong type, a malformed override, an
    unknown preset, a cycle of defaults or a value the schema's own checks (``__post_init__``) reject.
    """
    if not is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type; got {schema!r}.")
    sources = _sources(source, overrides)
    _apply_selections(schema, sources)
    cfg = OmegaConf.structured(schema)
    for update, origin in (pair for s in sources for pair in s.updates):
        cfg = _merge(schema, cfg, OmegaConf.create(update), origin)
    try:
        return typing.cast(T, OmegaConf.to_object(cfg))
    except oc_errors.MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"config key '{key}' must be set; pass {key}=VALUE.") from err
    except (oc_errors.OmegaConfBaseException, ValueError, TypeError) as err:
        # __post_init__ checks of the schema's dataclasses raise ValueError with their own message.
        raise ConfigError(f"invalid config: {_first_line(err)}") from err


def parse_override(override: str) -> DictConfig:
    """``"model.codebook_size=256"`` → ``{"model": {"codebook_size": 256}}`` (values parsed as YAML)."""
    key, sep, _ = override.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(
            f"override {override!r} must look like key=value with a dotted key, e.g. model.codebook_size=256 "
            "(use key=null for None)."
        )
    try:
        return OmegaConf.from_dotlist([override.strip()])
    except oc_errors.OmegaConfBaseException as err:
        raise ConfigError(f"cannot parse override {override!r}: {_first_line(err)}") from err


def _merge(schema: type, cfg: DictConfig, update: DictConfig, origin: str) -> DictConfig:
    try:
        return typing.cast(DictConfig, OmegaConf.merge(cfg, update))
    except oc_errors.ConfigKeyError as err:
        key = getattr(err, "full_key", None) or _first_key(update)
        raise ConfigError(_unknown_key_message(schema, key, origin)) from err
    except oc_errors.ValidationError as err:
        key = getattr(err, "full_key", None) or _first_key(update)
        expected = describe_type(schema, key)
        got = OmegaConf.select(update, key, default=None, throw_on_missing=False)
        got_text = OmegaConf.to_yaml(got).strip() if isinstance(got, DictConfig) else repr(got)
        if expected.startswith("a section"):
            raise ConfigError(
                f"config key '{key}' is {expected}, not a value ({origin}); set its fields one by one, "
                f"e.g. {key}.{_field_names(schema, key)[0]}=..."
            ) from err
        raise ConfigError(f"config key '{key}' expects {expected}; got {got_text} ({origin}).") from err
    except oc_errors.OmegaConfBaseException as err:
        raise ConfigError(f"cannot apply config {origin}: {_first_line(err)}") from err


# ---------------------------------------------------------------------------------------------
# Saving


def config_to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (keys in schema order), readable back by :func:`load_config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain nested dicts (JSON-ready)."""
    return typing.cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(cfg)))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"codebook_size": 16}}`` → ``{"model.codebook_size": 16}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write ``cfg`` as YAML to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, config_to_yaml(cfg))
    return path


# ---------------------------------------------------------------------------------------------
# Schema introspection for messages


def _section(schema: type, dotted: str) -> type | None:
    """The dataclass type at ``dotted`` inside ``schema`` ("" is the schema itself); None if none."""
    current: type = schema
    for part in [p for p in dotted.split(".") if p]:
        hints = typing.get_type_hints(current)
        if part not in hints or not is_dataclass(hints[part]):
            return None
        current = hints[part]
    return current


def _field_names(schema: type, dotted: str) -> list[str]:
    section = _section(schema, dotted)
    return [f.name for f in fields(section)] if section is not None else []


def describe_type(schema: type, dotted: str) -> str:
    """A readable description of the type of config key ``dotted`` (``"an integer"``, ...)."""
    parent, _, name = dotted.rpartition(".")
    section = _section(schema, parent)
    if section is None:
        return "a value"
    hint = typing.get_type_hints(section).get(name)
    return _describe(hint) if hint is not None else "a value"


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint in names:
        return names[hint]
    if is_dataclass(hint):
        return f"a section ({hint.__name__})"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        return " or ".join(_describe(a) for a in args) + " (or null)"
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _unknown_key_message(schema: type, key: str, origin: str) -> str:
    parent, _, name = key.rpartition(".")
    known = _field_names(schema, parent)
    where = f"section '{parent}'" if parent else "the top level"
    if not known:
        # The parent itself is not a section: a dotted key below a plain value, or an unknown section.
        return f"unknown config key '{key}' ({origin}); '{parent}' is not a config section."
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{(parent + '.') if parent else ''}{close[0]}'?" if close else ""
    return f"unknown config key '{key}' ({origin}).{hint} Keys in {where}: {', '.join(known)}."


def _first_key(cfg: DictConfig, prefix: str = "") -> str:
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        return _first_key(v, full + ".") if isinstance(v, DictConfig) and len(v) else full
    return prefix.rstrip(".")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16")


@dataclass
class RunConfig:
    """The top-level fields every recipe config has; a schema subclasses it and sets ``modality``'s default.

    ``modality`` picks the schema (and with it the recipes of a verb); the check in ``__post_init__``
    holds it to the schema's own default, so an image preset cannot be read as a prior config.
    """

    modality: str = ""  # picks the recipes of a verb: image, speech, prior, mixed, bpe
    name: str = "run"  # run name; training verbs write to runs/<name> unless out is set
    seed: int = 0  # seeds weights, data order and sampling
    device: str = "cpu"  # cpu, cuda, cuda:N, or auto (CUDA when available)
    threads: int | None = None  # CPU threads for torch; null: torch's default. Small models on a busy
    # machine run much faster on 1 thread: a second one mostly waits at every parallel region.
    out: str | None = None  # where the verb writes: a run dir, corpus dir, output dir or JSON file (per verb)

    def __post_init__(self) -> None:
        check_run_fields(self, next(f.default for f in fields(self) if f.name == "modality"))


def check_run_fields(cfg: Any, modality: str) -> None:
    """The checks of the top-level fields every recipe config has: modality, device, precision, threads, name.

    ``precision`` is checked only on configs that have it.
    """
    if cfg.modality != modality:
        raise ValueError(f"modality must be {modality!r} for the {modality} recipes; got {cfg.modality!r}.")
    if not _DEVICE.match(cfg.device):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto; got {cfg.device!r}.")
    precision = getattr(cfg, "precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}.")
    if cfg.threads is not None and cfg.threads < 1:
        raise ValueError(f"threads must be a positive integer or null; got {cfg.threads}.")
    if not cfg.name or "/" in cfg.name:
        raise ValueError(f"name must be a non-empty run name without '/'; got {cfg.name!r}.")


def check_positive(section: str, obj: object, *names: str, optional: bool = False) -> None:
    """Raise ``ValueError`` unless each field ``names`` of ``obj`` is a number > 0 (or null, when ``optional``).

    ``section`` prefixes the key in the message: ``check_positive("train", cfg, "steps")`` with
    ``steps=0`` says ``train.steps must be positive; got 0.``; pass ``""`` for top-level fields.
    """
    for name in names:
        value = getattr(obj, name)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            key = f"{section}.{name}" if section else name
            raise ValueError(f"{key} must be {'a positive number or null' if optional else 'positive'}; got {value!r}.")
