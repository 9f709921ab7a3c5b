"""The tokenizer interface every modality implements, and the codes it makes.

Dimension legend: ``b`` batch, ``*grid_l`` the grid of level ``l`` (``(h_l, w_l)`` for images, ``(n,)``
for speech), ``n`` codes per item over all levels.

A tokenizer is an ``nn.Module`` that turns a batch of inputs into :class:`Codes` (``encode``, never
training) and codes back into inputs (``decode``); it saves itself as a model directory
(:mod:`tokenizers_vq.pretrained`) and loads from one. ``save_pretrained`` and ``from_pretrained`` are
written here once; a concrete tokenizer names its ``kind``, ``modality`` and ``config_class``.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from tokenizers_vq.hub import push_to_hub, resolve_model
from tokenizers_vq.pretrained import content_identity, load_model_directory, read_model_config, save_model_directory

C = TypeVar("C", bound="Codes")
T = TypeVar("T", bound="Tokenizer")


@dataclass(eq=False)
class Codes:
    """Codes of a batch: ``levels[l]`` is an int64 ``(b, *grid_l)`` tensor, top (coarsest) level first.

    A one-level image VQ-VAE at factor 4 gives ``[(8, 8, 8)]`` for eight 32×32 images, a two-level
    VQ-VAE-2 ``[(8, 4, 4), (8, 8, 8)]``; a speech tokenizer gives ``[(1, 51)]`` for one second at 50
    codes/s (``frame_rate=50.0``; code ``i`` is centred at ``first_frame_time + i / frame_rate`` s),
    and a 4-level residual one four ``(1, 51)`` levels. Integer index → a batch of one (the batch axis
    is kept), slices, index lists and boolean masks select items.
    """

    levels: list[torch.Tensor]
    frame_rate: float | None = None  # codes per second for sequences; None for images
    first_frame_time: float = 0.0  # seconds: centre of code 0

    grid_ndim: ClassVar[int | None] = None  # the grid's dimensions every level must have (None: any)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if isinstance(self.levels, torch.Tensor) or not isinstance(self.levels, Sequence) or not self.levels:
            raise TypeError(
                f"{name}.levels must be a non-empty list of (b, *grid) integer tensors, top level first; "
                f"got {type(self.levels).__name__}. Wrap a single grid as {name}([codes])."
            )
        levels = []
        for i, grid in enumerate(self.levels):
            if isinstance(grid, np.ndarray):
                grid = torch.from_numpy(grid)
            if not isinstance(grid, torch.Tensor):
                raise TypeError(f"{name}.levels[{i}] must be a tensor; got {type(grid).__name__}.")
            if grid.is_floating_point() or grid.is_complex() or grid.dtype == torch.bool:
                raise ValueError(f"{name}.levels[{i}] must hold integer codes; got dtype {grid.dtype}.")
            want = self.grid_ndim
            if grid.ndim < 2 or (want is not None and grid.ndim != want + 1):
                grid_text = "(b, h, w)" if want == 2 else "(b, n)" if want == 1 else "(b, *grid)"
                raise ValueError(
                    f"{name}.levels[{i}] must have shape {grid_text}; got {tuple(grid.shape)}. "
                    "Add a batch axis for a single item (codes[None])."
                )
            levels.append(grid.long())
        if len({g.shape[0] for g in levels}) != 1:
            raise ValueError(f"all levels of {name} must have the same batch size; got shapes {_shapes(levels)}.")
        if len({g.device for g in levels}) != 1:
            raise ValueError(f"all levels of {name} must be on the same device; move them with .to(device).")
        self.levels = levels

    def with_levels(self: C, levels: list[torch.Tensor]) -> C:
        """Codes of the same kind and timing holding ``levels`` instead."""
        return replace(self, levels=levels)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Grid of each level without the batch axis, top first."""
        return [tuple(g.shape[1:]) for g in self.levels]

    @property
    def batch_size(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def device(self) -> torch.device:
        return self.levels[0].device

    @property
    def codes_per_item(self) -> int:
        """Number of codes per item over all levels."""
        return sum(int(np.prod(s)) for s in self.shapes)

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self: C, index: int | slice | Sequence[int] | torch.Tensor) -> C:
        if isinstance(index, int):
            b = self.batch_size
            if not -b <= index < b:
                raise IndexError(f"item index {index} is out of range for a batch of {b}.")
            # Keep the batch axis, so codes[i] can go straight to a tokenizer's decode.
            index = slice(index % b, index % b + 1)
        return self.with_levels([g[index] for g in self.levels])

    def to(self: C, device: torch.device | str) -> C:
        return self.with_levels([g.to(device) for g in self.levels])

    def cpu(self: C) -> C:
        return self.to("cpu")

    def numpy(self) -> list[np.ndarray]:
        """The levels as int64 numpy arrays (on the CPU), top first."""
        return [g.cpu().numpy() for g in self.levels]

    def flatten(self) -> torch.Tensor:
        """All codes of each item in one row, ``(b, n)``: levels top first, each in raster order."""
        return torch.cat([g.reshape(g.shape[0], -1) for g in self.levels], dim=1)

    def equal(self, other: Codes) -> bool:
        """True when both hold the same levels with the same codes."""
        return self.shapes == other.shapes and all(
            torch.equal(a, b.to(a.device)) for a, b in zip(self.levels, other.levels, strict=True)
        )


def _shapes(levels: Sequence[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(g.shape) for g in levels]


class Tokenizer(nn.Module, ABC):
    """A model that turns inputs into discrete :class:`Codes` and back (VQ-VAE, van den Oord et al. 2017).

    Subclasses set ``kind`` (the ``config.json`` kind, e.g. ``"image-tokenizer"``), ``modality``
    (``"image"``, ``"speech"``) and ``config_class`` (a dataclass with ``to_dict``/``from_dict``), keep
    their config in ``self.config``, and implement ``codebook_sizes``, ``encode`` and ``decode``.

    ``data_source``: the data section of the run that trained it (a dict, or None), saved with the
    weights so that verbs given only the tokenizer know which data set it belongs to.
    """

    kind: ClassVar[str]
    modality: ClassVar[str]
    config_class: ClassVar[type]
    config: Any
    data_source: dict[str, Any] | None = None

    @property
    @abstractmethod
    def codebook_sizes(self) -> list[int]:
        """Entries of each level's codebook, top first."""

    @property
    def num_levels(self) -> int:
        return len(self.codebook_sizes)

    @abstractmethod
    def encode(self, x: Any, *args: Any, **options: Any) -> Codes:
        """Codes of a batch of inputs; never trains (EMA codebooks stay as they are)."""

    @abstractmethod
    def decode(self, codes: Codes, *args: Any, **options: Any) -> torch.Tensor:
        """Inputs reconstructed from ``codes``."""

    def content_id(self) -> str:
        """The canonical hash of this tokenizer's config and tensors (:func:`tokenizers_vq.pretrained.content_identity`)."""
        return content_identity(self.config.to_dict(), self.state_dict())

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (each atomically); returns it."""
        extra = {"data": self.data_source} if self.data_source else {}
        return save_model_directory(directory, self.kind, self.config.to_dict(), self.state_dict(), extra=extra)

    def push_to_hub(self, repo_id: str, **options: Any) -> str:
        """Save this tokenizer and publish it as the Hub repository ``repo_id`` with a model card; returns the
        commit URL (``options``: those of :func:`tokenizers_vq.hub.push_to_hub`)."""
        with tempfile.TemporaryDirectory() as tmp:
            return push_to_hub(self.save_pretrained(Path(tmp) / "model"), repo_id, **options)

    @classmethod
    def from_pretrained(
        cls: type[T],
        directory: str | os.PathLike[str],
        map_location: str | torch.device = "cpu",
        revision: str | None = None,
    ) -> T:
        """Load a tokenizer written by :meth:`save_pretrained` (a folder, or a Hub repo id at ``revision``), in
        eval mode, on ``map_location``.

        Codebooks come back exactly as saved (their ``initialized`` flags included), so training on
        from here never re-runs the k-means initialisation.
        """
        directory = resolve_model(directory, revision)
        config, state = load_model_directory(directory, cls.kind)
        model = cls(cls.config_class.from_dict(config))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:  # missing, unexpected or misshapen tensors
            raise ValueError(
                f"{directory}: the weights do not match its config.json; the directory is damaged or was "
                f"edited by hand.\n{err}"
            ) from err
        data = read_model_config(directory).get("data")
        model.data_source = data if isinstance(data, dict) else None
        return model.to(map_location).eval()
