"""Images from a Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder or a local ``imagefolder``.

``data.name=hf data.root=FOLDER`` reads split ``data.train_split`` / ``data.eval_split`` of the dataset in
``FOLDER`` (a ``DatasetDict`` saved with ``save_to_disk``, a single saved ``Dataset`` whose split is
its only one, or a folder of images laid out as ``datasets``' ``imagefolder`` builder reads it). The
image column is ``data.image_column`` or the dataset's ``Image`` column; the labels are
``data.label_column`` or its ``ClassLabel`` column (none: every label -1). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalities.image.files import stack_images, to_8bit


def _open(root: Path, split: str) -> Any:
    import datasets

    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"the dataset in {root} has splits {list(loaded)}, not {split!r}; set data.train_split "
                                 "and data.eval_split to two of them.")  # fmt: skip
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset("imagefolder", data_dir=str(root), split=split)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"{root} is neither a saved datasets folder nor an image folder with split {split!r} "
                         f"({' '.join(str(err).split())}).") from err  # fmt: skip


def _column(dataset: Any, wanted: str | None, kind: str, role: str) -> str | None:
    if wanted is not None:
        if wanted not in dataset.column_names:
            raise ValueError(f"data.{role}_column={wanted!r} is not a column of the dataset; its columns are "
                             f"{dataset.column_names}.")  # fmt: skip
        return wanted
    return next((name for name, f in dataset.features.items() if type(f).__name__ == kind), None)


def load_hf_images(
    name: str, split: str, root: Path | None, download: bool, image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:  # fmt: skip
    """Images ``(n, c, h, w)`` uint8, labels ``(n,)`` and class names of split ``split`` of the dataset at ``root``."""

    if root is None:
        raise FileNotFoundError("data.name=hf needs data.root= a datasets folder (save_to_disk) or an image folder.")
    if not root.is_dir():
        raise FileNotFoundError(f"datasets folder {root} does not exist.")
    dataset = _open(root, split)
    image = _column(dataset, image_column, "Image", "image")
    if image is None:
        raise ValueError(f"the dataset in {root} has no Image column (columns {dataset.column_names}); set "
                         "data.image_column.")  # fmt: skip
    label = _column(dataset, label_column, "ClassLabel", "label")
    where = f"{root} ({split}, column {image!r})"
    stored = getattr(dataset.features[image], "dtype", None)  # an array column's element type
    pictures = [to_8bit(p if hasattr(p, "convert") else _as_pil(p, stored, where), where) for p in dataset[image]]
    if not pictures:
        raise ValueError(f"split {split!r} of the dataset in {root} holds no images.")
    labels = torch.tensor(dataset[label] if label is not None else [-1] * len(pictures), dtype=torch.long)
    feature = dataset.features.get(label) if label is not None else None
    names = list(getattr(feature, "names", None) or [])
    return stack_images(pictures, f"{root} ({split})"), labels, names


def _as_pil(value: Any, dtype: str | None, where: str) -> Any:
    """An array image as a PIL image: 8-bit as it is, 16-bit kept at 16 bits for :func:`to_8bit` to scale."""
    from PIL import Image

    pixels = np.asarray(value, dtype=dtype if dtype in ("uint8", "uint16") else None)
    if pixels.dtype == np.uint8:
        return Image.fromarray(pixels)
    if pixels.dtype == np.uint16 and pixels.ndim == 2:
        return Image.fromarray(pixels)  # mode I;16, scaled by to_8bit
    raise ValueError(f"{where} holds {pixels.dtype} pixels of shape {pixels.shape}; store 8-bit images (or 16-bit grey).")
