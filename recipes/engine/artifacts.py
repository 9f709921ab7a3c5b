"""Opening the artifacts a verb is given, checked against the config and against each other, and learning what they
are from themselves.

A tokenizer is checked against the config's modality; what was made from a tokenizer names it by content identity
(:mod:`tokenizers_vq.pretrained`): a corpus in its ``meta.json``, a prior in its ``sources.json`` (written here),
a code file in its header. A verb that combines such artifacts refuses any of another tokenizer:
:func:`check_corpus_of` (a corpus against a prior), :func:`check_same_tokenizer` (corpora used together),
:func:`corpus_tokenizer` (the tokenizer a corpus names, before it decodes anything).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from modalities.base import Modality, get_modality, load_tokenizer, tokenizer_modality
from recipes.engine.config import flatten, peek
from tokenizers_vq.corpus import CodeCorpus, read_meta, tokenizer_record
from tokenizers_vq.hub import resolve_model
from tokenizers_vq.io import atomic_write_json, read_json
from tokenizers_vq.pretrained import directory_identity, matches_identity, read_model_config
from tokenizers_vq.tokenizer import Tokenizer


def open_tokenizer(cfg: Any, device: torch.device, verb: str) -> tuple[Modality, Tokenizer, Path]:
    """The modality plug-in, the tokenizer at ``cfg.tokenizer`` (eval mode, on ``device``, with the run's
    encoding options) and its directory; clear errors when it is missing or of another modality."""
    if cfg.tokenizer is None:
        raise ValueError(
            f"{verb} needs a tokenizer: pass --tokenizer DIR (or tokenizer=DIR), the 'tokenizer' folder "
            "that train-tokenizer wrote."
        )
    directory = resolve_model(cfg.tokenizer)  # a folder, or the cached snapshot of a Hub repo id
    if not directory.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory {cfg.tokenizer} does not exist; train one with `vqtok train-tokenizer`."
        )
    found = tokenizer_modality(directory)
    if found != cfg.modality:
        raise ValueError(
            f"{directory} holds {'an' if found[0] in 'aeiou' else 'a'} {found} tokenizer but the config is for modality {cfg.modality!r}; "
            f"leave out --config (the tokenizer says what it is) or pass a {found} preset."
        )
    modality = get_modality(found)
    model = modality.prepare(load_tokenizer(directory, map_location=device), cfg)
    return modality, model, directory


# The preset a tokenizer's modality starts from when a verb is given the tokenizer without --config.
MODALITY_PRESETS = {"image": "image_vqvae", "speech": "speech_fsdd", "speech-units": "speech_units_fsdd"}


def implied_config(overrides: Sequence[str]) -> tuple[str, list[str]] | None:
    """What a verb given ``tokenizer=DIR`` and no ``--config`` learns from the tokenizer itself.

    Returns the preset of the tokenizer's modality and overrides that set the data section it was
    trained on (recorded in its ``config.json``, or for tokenizers saved before that was recorded, the
    ``config.yaml`` of the run folder around it), or None when no tokenizer folder is named. When the
    overrides name a data set themselves (``data.name`` or ``data.root``), only the modality is taken.
    """
    path = peek(None, overrides, "tokenizer", None)
    if path is None:
        return None
    try:
        directory = resolve_model(str(path))
    except FileNotFoundError:
        return None  # a repo id that cannot be fetched: the recipe reports it
    if not directory.is_dir():
        return None  # nothing to learn from; the recipe reports a missing tokenizer
    modality = tokenizer_modality(directory)
    if any(peek(None, overrides, key, None) is not None for key in ("data.name", "data.root")):
        return MODALITY_PRESETS[modality], []
    data = read_model_config(directory).get("data")
    run_config = directory.parent / "config.yaml"
    if not isinstance(data, dict) and run_config.is_file():
        saved = OmegaConf.to_container(OmegaConf.load(run_config), resolve=True)
        if isinstance(saved, dict) and saved.get("modality", "image") == modality:
            data = saved.get("data")
    keys = flatten({"data": data}) if isinstance(data, dict) else {}
    # data.name first: setting it resets the rest of the section, which would undo the keys set before it.
    order = sorted(keys, key=lambda key: key != "data.name")
    return MODALITY_PRESETS[modality], [f"{key}={json.dumps(keys[key])}" for key in order]


def corpus_tokenizer(corpus: CodeCorpus, device: torch.device | str) -> Tokenizer:
    """The tokenizer that made ``corpus`` (its path is in ``meta.json``, relative to the corpus), on ``device``;
    refused unless it is the tokenizer the corpus names by content identity."""
    path = corpus.tokenizer_dir
    if path is None or not path.is_dir():
        raise FileNotFoundError(
            f"the corpus {corpus.directory} was made by the tokenizer at {path}, which no longer exists; "
            "decoding samples needs it."
        )
    recorded = corpus_identity(corpus)
    if recorded is None:  # a path alone could lead anywhere: only a folder the corpus names by identity is loaded
        raise ValueError(
            f"{corpus.directory / 'meta.json'} names the tokenizer at {path} without its identity (sha256); the corpus "
            "is damaged: tokenize the data again."
        )
    if not matches_identity(recorded, path):
        raise ValueError(
            f"the tokenizer at {path} is not the one that made the corpus {corpus.directory} (its config or weights "
            "changed since); tokenize the data again with it (vqtok tokenize), or put the original back."
        )
    return load_tokenizer(path, map_location=device)


# ---------------------------------------------------------------------------------------------
# What a prior was made from: sources.json, and the checks of corpora against it

SOURCES_NAME = "sources.json"  # in a prior directory: its corpora and tokenizer, by paths relative to it


def write_sources(prior_dir: Path, corpus: CodeCorpus, held_out: CodeCorpus | None, final: Path | None = None) -> None:
    """Record in ``prior_dir`` the corpora it was trained on and their tokenizer (content identity, and paths
    relative to the prior), so the prior finds them wherever the run folder is copied and whatever the
    working directory. ``final``: where ``prior_dir`` is published, when it is written in a staging folder."""
    final = final or prior_dir
    rel = lambda path: os.path.relpath(Path(path).resolve(), final.resolve())  # noqa: E731
    tokenizer = corpus.tokenizer_dir
    sources = {
        "corpus": rel(corpus.directory),
        "eval_corpus": None if held_out is None else rel(held_out.directory),
        "tokenizer": None if tokenizer is None else tokenizer_record(tokenizer, corpus_identity(corpus), final),
        "modality": corpus.modality,
    }
    atomic_write_json(prior_dir / SOURCES_NAME, sources)


def write_made_from(staging: Path, final: Path, models: Mapping[str, tuple[Path, str | None]]) -> None:
    """Record in an output folder (written in ``staging``, published as ``final``) the models it was made from, by
    name: ``(folder, content identity or None to compute it)``. ``sources.json`` names each by identity and by a path
    relative to ``final``, as a prior names its tokenizer."""
    record = {}
    for name, (folder, identity) in models.items():
        record[name] = tokenizer_record(folder, identity or directory_identity(folder), final)
    atomic_write_json(staging / SOURCES_NAME, record)


def read_sources(directory: Path) -> dict[str, Any]:
    """The ``sources.json`` of ``directory`` (empty when there is none); ``ValueError`` naming it when damaged."""
    path = directory / SOURCES_NAME
    if not path.is_file():
        return {}
    sources = read_json(path, "the prior's record of its sources")
    if not isinstance(sources, dict):
        raise ValueError(f"{path} must be a JSON object naming the corpora and tokenizer; it is damaged.")
    return sources


def recorded_source(prior_dir: Path, key: str) -> Path | None:
    """The ``key`` corpus that ``prior_dir``'s ``sources.json`` names (None when it names none)."""
    value = read_sources(prior_dir).get(key)
    return Path(os.path.normpath(prior_dir.resolve() / value)) if isinstance(value, str) else None


def prior_tokenizer(prior_dir: Path) -> str | None:
    """The identity of the tokenizer whose codes trained the prior, as its ``sources.json`` records it (written by
    ``train-prior``), else as its training corpus does (older priors: the corpus their run's ``config.yaml``
    names); None when neither says."""
    record = read_sources(prior_dir).get("tokenizer")
    if isinstance(record, dict) and isinstance(record.get("sha256"), str):
        return record["sha256"]
    try:
        run = OmegaConf.to_container(OmegaConf.load(prior_dir.parent / "config.yaml"), resolve=True)
        recorded = read_meta(run["corpus"])["tokenizer"]["sha256"]  # type: ignore[index]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return recorded if isinstance(recorded, str) else None


def corpus_identity(corpus: CodeCorpus) -> str | None:
    """The content identity of the tokenizer that made ``corpus`` (format 1: its weights file's SHA-256), if recorded."""
    record = corpus.meta.get("tokenizer")
    value = record.get("sha256") if isinstance(record, dict) else None
    return value if isinstance(value, str) and value else None


def _same_tokenizer(a: str, b: str, corpus: CodeCorpus) -> bool:
    """Whether identities ``a`` and ``b`` name one tokenizer: equal, or (a corpus of format 1 names it by the hash
    of its weights file) both matching the tokenizer folder the corpus names."""
    if a == b:
        return True
    folder = corpus.tokenizer_dir
    if folder is None or not folder.is_dir():
        return corpus.meta.get("format_version") == 1  # nothing to compare against: only old forms may differ
    return matches_identity(a, folder) and matches_identity(b, folder)


def check_corpus_of(corpus: CodeCorpus, prior_dir: Path, role: str, theirs: str | None = None) -> None:
    """Refuse ``corpus`` (the config key ``role``) when it was made by another tokenizer than the one whose codes
    trained the prior at ``prior_dir`` (``theirs``: that tokenizer's identity, by default the one the prior records);
    a prior or corpus that does not say which tokenizer it belongs to passes."""
    theirs, mine = theirs or prior_tokenizer(prior_dir), corpus_identity(corpus)
    if theirs is None or mine is None or _same_tokenizer(mine, theirs, corpus):
        return
    raise ValueError(
        f"{role} {corpus.directory} holds codes of another tokenizer than the prior {prior_dir} was trained on "
        f"(tokenizer {mine[:16]}…, the prior's {theirs[:16]}…); pass a corpus tokenized with the prior's tokenizer, "
        f"or leave out {role}= to use the prior's own."
    )


def check_same_tokenizer(corpora: Mapping[str, CodeCorpus | None]) -> None:
    """Refuse corpora used together (config key → corpus; None: not given) that were made by different tokenizers."""
    named = [(role, c, corpus_identity(c)) for role, c in corpora.items() if c is not None]
    named = [(role, c, identity) for role, c, identity in named if identity is not None]
    for (role_a, a, id_a), (role_b, b, id_b) in itertools.pairwise(named):
        if not _same_tokenizer(id_a, id_b, a) and not _same_tokenizer(id_b, id_a, b):
            raise ValueError(
                f"{role_a} {a.directory} and {role_b} {b.directory} hold codes of different tokenizers "
                f"({id_a[:16]}… and {id_b[:16]}…); tokenize both with the same tokenizer."
            )


def write_stream_sources(prior_dir: Path, streams: Mapping[str, Mapping[str, CodeCorpus | None]]) -> None:
    """Record in the folder of a prior over several code streams (the mixed prior) each stream's tokenizer and
    corpora: ``streams`` maps a stream (``image``) to its corpora by config key (``data.image_corpus``: the first
    one trained it)."""
    rel = lambda path: os.path.relpath(Path(path).resolve(), prior_dir.resolve())  # noqa: E731
    record: dict[str, Any] = {"corpora": {}, "tokenizers": {}, "modality": "mixed"}
    for stream, corpora in streams.items():
        present = {role: c for role, c in corpora.items() if c is not None}
        record["corpora"].update({role: rel(c.directory) for role, c in present.items()})
        first = next(iter(present.values()), None)
        if first is not None and first.tokenizer_dir is not None:
            record["tokenizers"][stream] = tokenizer_record(first.tokenizer_dir, corpus_identity(first), prior_dir)
    atomic_write_json(prior_dir / SOURCES_NAME, record)


def check_stream_corpora(prior_dir: Path, streams: Mapping[str, Mapping[str, CodeCorpus | None]]) -> None:
    """Refuse a corpus of another tokenizer than the one its stream was trained on, as :func:`write_stream_sources`
    recorded it (a prior without the record passes)."""
    tokenizers = read_sources(prior_dir).get("tokenizers")
    for stream, corpora in streams.items():
        record = tokenizers.get(stream) if isinstance(tokenizers, dict) else None
        recorded = record.get("sha256") if isinstance(record, dict) else None
        for role, corpus in corpora.items():
            if corpus is not None and isinstance(recorded, str):
                check_corpus_of(corpus, prior_dir, role, recorded)
