"""Recipe configs: a dataclass schema, filled from a YAML preset or file, then from dotted overrides.

A config is built in three layers, each checked against the schema (OmegaConf structured configs):

1. the schema's defaults (a ``@dataclass`` whose fields are sections or plain values);
2. a YAML source: a preset name from ``recipes/configs`` (``"tiny"``, ``"image_vqvae"``) or a path;
3. command-line overrides such as ``model.codebook_size=256`` or ``train.max_minutes=null``.

An unknown key, a value of the wrong type or a malformed override raises :class:`ConfigError` (a
``ValueError``) that names the key and where it came from. The result is a plain dataclass
instance, so recipes get attribute access and type hints and never see OmegaConf objects.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from tokenizers_vq.io import atomic_write_text

T = TypeVar("T")

PRESETS = resources.files("recipes") / "configs"  # package data, see pyproject.toml
_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


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


def read_source(source: str | Path) -> tuple[DictConfig, str]:
    """Parse a preset name or a YAML path into a raw ``DictConfig`` and a label for messages.

    A string with a path separator or a ``.yaml``/``.yml`` ending is a path; anything else is a
    preset name.
    """
    text = str(source)
    looks_like_path = isinstance(source, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config file {text!r} does not exist. Pass a YAML file or one of the presets: "
                f"{', '.join(preset_names())}."
            )
        raw, label = path.read_text(encoding="utf-8"), str(path)
    else:
        names = preset_names()
        if text not in names:
            close = difflib.get_close_matches(text, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown preset {text!r}.{hint} Presets: {', '.join(names)}; or pass a YAML path.")
        raw = PRESETS.joinpath(f"{text}.yaml").read_text(encoding="utf-8")
        label = f"preset {text!r}"
    try:
        loaded = OmegaConf.create(raw) if raw.strip() else OmegaConf.create({})
    except Exception as err:  # yaml.YAMLError and OmegaConf's own parse errors
        raise ConfigError(f"cannot parse {label} as YAML: {err}") from err
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{label} must hold a mapping of config keys; got a {type(loaded).__name__}.")
    return loaded, label


def peek(source: str | Path | None, overrides: Sequence[str], key: str, default: Any) -> Any:
    """The value of top-level ``key`` in ``source`` and ``overrides`` without any schema.

    Used to pick a schema (e.g. by ``modality``) before the config can be checked.
    """
    value = default
    if source is not None:
        value = read_source(source)[0].get(key, value)
    for override in overrides:
        name, sep, raw = override.partition("=")
        if sep and name.strip() == key:
            value = OmegaConf.from_dotlist([f"{key}={raw}"])[key]
    return value


# ---------------------------------------------------------------------------------------------
# Building a config


def load_config(schema: type[T], source: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a ``schema`` instance from its defaults, ``source`` (preset or YAML path) and ``overrides``.

    >>> cfg = load_config(ImageRecipeConfig, "tiny", ["model.codebook_size=32"])  # doctest: +SKIP
    >>> cfg.model.codebook_size                                                  # doctest: +SKIP
    32

    Raises :class:`ConfigError` for an unknown key, a wrong type, a malformed override, an
    unknown preset or a value the schema's own checks (``__post_init__``) reject.
    """
    if not is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type; got {schema!r}.")
    cfg = OmegaConf.structured(schema)
    if source is not None:
        loaded, label = read_source(source)
        cfg = _merge(schema, cfg, loaded, origin=f"in {label}")
    for override in overrides:
        cfg = _merge(schema, cfg, parse_override(override), origin=f"from override {override!r}")
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
