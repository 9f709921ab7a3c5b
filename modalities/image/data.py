"""Image data sets as in-memory uint8 arrays, read from local files unless a download is asked for.

Dimension legend: ``n`` images, ``c`` channels (1 grey, 3 RGB), ``h``/``w`` height and width.

Data sets (``name``: splits, image size, where the files come from):

- ``"digits"``: ``train`` (first 1,497) / ``test`` (last 300); 1×16×16. scikit-learn's bundled
  ``load_digits`` (8×8, values 0–16) scaled to 0–255 and resized bilinearly to 16×16, so a tokenizer
  with ``downsample=4`` gives 4×4 codes. Always available offline.
- ``"fashion_mnist"``: ``train`` (60,000), ``train_minus_val`` (first 55,000 of train), ``val`` (last
  5,000 of train), ``test`` (10,000); 1×28×28. The IDX files of Debian's ``dataset-fashion-mnist``
  (``.gz`` or not) from ``root``, else ``$VQTOK_DATA/fashion-mnist``, else
  ``/usr/share/datasets/fashion-mnist``.
- ``"cifar10_subset"``: ``train`` (first 3,500) / ``test`` (last 500); 3×32×32. The first 4,000
  CIFAR-10 training images as ConvNetJS PNG batches, from ``root`` or ``$VQTOK_DATA/cifar10-subset``.
- ``"mnist"``, ``"fashionmnist"``, ``"cifar10"``: ``train`` / ``test`` through torchvision from
  ``root`` (else ``$VQTOK_DATA``), downloaded there only with ``download=True``.
- ``"imagefolder"``: ``root/<split>/<class>/*.png`` when ``root/<split>`` exists, else
  ``root/<class>/*.png``; every image the same size; grey when all images are grey, else RGB.

``root`` may be the data set's own folder or a data folder that holds it under the name above.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modalities.image.config import ImageTokenizerConfig
from modalities.image.files import open_image, stack_images
from modalities.image.hf import load_hf_images
from tokenizers_vq.corpus import CodeCorpus

DATASETS = ("digits", "fashion_mnist", "cifar10_subset", "mnist", "fashionmnist", "cifar10", "imagefolder", "hf")
DATA_ENV = "VQTOK_DATA"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

DIGITS_SIZE = 16  # 8×8 digits are upsampled to 16×16: room for a 4×4 code grid at downsample 4
DIGITS_TRAIN = 1497
FASHION_MNIST_VAL = 5000  # the last 5,000 training images form the validation split
CIFAR10_SUBSET_TRAIN = 3500


@dataclass
class ImageArrays:
    """A split of an image data set held in memory.

    ``images``: uint8 ``(n, c, h, w)``, e.g. ``(1497, 1, 16, 16)`` for digits/train; ``labels``: int64
    ``(n,)`` in ``[0, len(class_names))``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str
    split: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"ImageArrays.images must be uint8 (n, c, h, w); got {self.images.dtype} {tuple(self.images.shape)}."
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"ImageArrays.labels must be int64 ({self.images.shape[0]},); "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}."
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(c, h, w)`` of every image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)


def load_image_dataset(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
) -> ImageArrays:
    """Load split ``split`` of data set ``name`` (see the module docstring for names and splits).

    Args:
        name: one of :data:`DATASETS`.
        split: a split of that data set, e.g. ``"train"`` or ``"test"``.
        root: where the files are; defaults per data set (``$VQTOK_DATA`` and system locations).
        download: let torchvision download ``mnist``/``fashionmnist``/``cifar10`` into ``root`` when
            absent. The other data sets are read from local files only.
        image_column, label_column: ``hf`` only: the dataset's columns (None: its Image and ClassLabel columns).

    Raises ``ValueError`` for an unknown name or split and ``FileNotFoundError``, saying what to
    install or pass, when the files are not there.
    """
    loaders = {
        "digits": _load_digits,
        "fashion_mnist": _load_fashion_mnist,
        "cifar10_subset": _load_cifar10_subset,
        "mnist": _load_torchvision,
        "fashionmnist": _load_torchvision,
        "cifar10": _load_torchvision,
        "imagefolder": _load_image_folder,
        "hf": functools.partial(load_hf_images, image_column=image_column, label_column=label_column),
    }
    if name not in loaders:
        raise ValueError(f"unknown image data set {name!r}; choose one of {list(DATASETS)}.")
    images, labels, class_names = loaders[name](name, split, None if root is None else Path(root), download)
    return ImageArrays(images=images, labels=labels, class_names=class_names, name=name, split=split)


# ---- helpers ---------------------------------------------------------------------------------------
def _check_split(name: str, split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ValueError(f"data set {name!r} has splits {list(splits)}; got {split!r}.")


def _find_folder(
    root: Path | None, subfolder: str, required: list[str], fallbacks: tuple[Path, ...] = ()
) -> Path | None:
    """First of ``root``, ``root/subfolder``, ``$VQTOK_DATA/subfolder``, ``fallbacks`` holding every file in ``required``.

    A file ``x`` also counts when only ``x.gz`` exists. An explicit ``root`` is the only place searched.
    """
    if root is not None:
        candidates: list[Path] = [root, root / subfolder]
    else:
        env = os.environ.get(DATA_ENV)
        candidates = ([Path(env) / subfolder] if env else []) + list(fallbacks)
    for folder in candidates:
        if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in required):
            return folder
    return None


def _read_maybe_gzip(path: Path) -> bytes:
    gz = path.with_name(path.name + ".gz")
    if not gz.is_file():
        return path.read_bytes()
    try:
        with gzip.open(gz, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:  # not gzip, cut short, or damaged inside
        raise ValueError(f"cannot read {gz}: it is not a whole gzip file ({err}); fetch it again.") from err


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format): magic ``0x0000080N``, N big-endian sizes, data."""
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expected_ndim:
        raise ValueError(f"{path} is not a uint8 IDX file with {expected_ndim} dimension(s).")
    dims = np.frombuffer(raw, dtype=">u4", count=expected_ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * expected_ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}.")
    return data.reshape(tuple(dims)).copy()


_Loaded = tuple[torch.Tensor, torch.Tensor, list[str]]  # images (n, c, h, w) uint8, labels (n,), class names


def _labels(values: np.ndarray | list[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.int64)


# ---- the data sets ------------------------------------------------------------------------------
def _load_digits(name: str, split: str, root: Path | None, download: bool) -> _Loaded:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, never downloads

    _check_split(name, split, ("train", "test"))
    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] * (255.0 / 16.0)  # (n, 1, 8, 8)
    images = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    labels = _labels(digits.target)
    part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return images[part].contiguous(), labels[part].contiguous(), [str(i) for i in range(10)]


def _load_fashion_mnist(name: str, split: str, root: Path | None, download: bool) -> _Loaded:
    _check_split(name, split, ("train", "train_minus_val", "val", "test"))
    prefix = "t10k" if split == "test" else "train"
    files = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    folder = _find_folder(root, "fashion-mnist", files, fallbacks=(DEBIAN_FASHION_MNIST,))
    if folder is None:
        where = str(root) if root is not None else f"${DATA_ENV}/fashion-mnist or {DEBIAN_FASHION_MNIST}"
        raise FileNotFoundError(
            f"Fashion-MNIST files {files} (.gz) not found in {where}. Install them with "
            "`apt-get install dataset-fashion-mnist`, pass root= the folder holding them, or use "
            "name='fashionmnist' with download=True to fetch them through torchvision."
        )
    images = torch.from_numpy(_read_idx(folder / files[0], 3))[:, None]  # (n, 1, 28, 28)
    labels = _labels(_read_idx(folder / files[1], 1))
    if split in ("train_minus_val", "val"):
        part = slice(None, -FASHION_MNIST_VAL) if split == "train_minus_val" else slice(-FASHION_MNIST_VAL, None)
        images, labels = images[part].contiguous(), labels[part].contiguous()
    return images, labels, list(FASHION_MNIST_CLASSES)


def _load_cifar10_subset(name: str, split: str, root: Path | None, download: bool) -> _Loaded:
    _check_split(name, split, ("train", "test"))
    files = [f"cifar10_batch_{k}.png" for k in range(4)] + ["labels.txt"]
    folder = _find_folder(root, "cifar10-subset", files)
    if folder is None:
        where = str(root) if root is not None else f"${DATA_ENV}/cifar10-subset (set {DATA_ENV})"
        raise FileNotFoundError(
            f"CIFAR-10 subset files ({', '.join(files)}) not found in {where}. Pass root= the cifar10-subset "
            f"folder, or set {DATA_ENV} to the data folder that holds it."
        )
    # (1000, 1024, 3) each: one flattened image per row
    batches = [np.asarray(open_image(folder / f"cifar10_batch_{k}.png").convert("RGB")) for k in range(4)]
    pixels = np.concatenate(batches).reshape(-1, 32, 32, 3)  # row = 32×32 pixels in (y, x) order, RGB
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (n, 3, 32, 32)
    try:
        labels = _labels(np.loadtxt(folder / "labels.txt", dtype=np.int64))
    except ValueError as err:
        raise ValueError(f"{folder / 'labels.txt'} must hold one integer label per line ({err}).") from err
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels in labels.txt.")
    part = slice(0, CIFAR10_SUBSET_TRAIN) if split == "train" else slice(CIFAR10_SUBSET_TRAIN, None)
    return images[part].contiguous(), labels[part].contiguous(), list(CIFAR10_CLASSES)


def _load_torchvision(name: str, split: str, root: Path | None, download: bool) -> _Loaded:
    from torchvision import datasets

    _check_split(name, split, ("train", "test"))
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise FileNotFoundError(
                f"data set {name!r} needs a folder: pass root= (add download=True to fetch it there) or set {DATA_ENV}."
            )
        root = Path(env)
    cls = {"mnist": datasets.MNIST, "fashionmnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    try:
        dataset = cls(str(root), train=split == "train", download=download)
    except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(
            f"torchvision's {cls.__name__} files were not found under {root} ({err}). Pass download=True to fetch "
            "them, or root= the folder that holds them."
        ) from err
    data = torch.as_tensor(np.asarray(dataset.data))
    images = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)  # grey (n, h, w) or RGB (n, h, w, 3)
    return images.contiguous().to(torch.uint8), _labels(dataset.targets), list(dataset.classes)


def _load_image_folder(name: str, split: str, root: Path | None, download: bool) -> _Loaded:
    from torchvision.datasets import ImageFolder

    if root is None:
        raise FileNotFoundError("name='imagefolder' needs root= a folder of class subfolders (root/<class>/*.png).")
    folder = root / split if (root / split).is_dir() else root
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist.")
    listing = ImageFolder(str(folder), loader=lambda path: path)  # only the file list and classes
    loaded = [open_image(path) for path, _ in listing.samples]  # 8-bit, a damaged file named
    if not loaded:
        raise FileNotFoundError(f"no images in the class folders of {folder}.")
    return stack_images(loaded, str(folder)), _labels([label for _, label in listing.samples]), list(listing.classes)


def load_split(data: Any, split: str, limit: int | None = None, seed: int | None = None) -> ImageArrays:
    """Split ``split`` of ``data``; with ``limit``, the first ``limit`` images, or a random subset when ``seed``.

    The subset is drawn with its own generator, so it does not disturb the global RNG.
    """
    columns = {"image_column": getattr(data, "image_column", None), "label_column": getattr(data, "label_column", None)}
    images = load_image_dataset(data.name, split, root=data.root, download=data.download, **columns)
    if len(images) == 0:
        raise ValueError(f"data set {data.name!r} split {split!r} holds no images.")
    if limit is None or limit >= len(images):
        return images
    if seed is None:
        keep = torch.arange(limit)
    else:
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return ImageArrays(
        images=images.images[keep].contiguous(),
        labels=images.labels[keep].contiguous(),
        class_names=images.class_names,
        name=images.name,
        split=images.split,
    )


def check_fits(model: ImageTokenizerConfig, data: ImageArrays) -> None:
    """Raise ``ValueError`` unless a tokenizer with config ``model`` can take the images of ``data``, saying what to change."""
    c, h, w = data.image_shape
    if c != model.in_channels:
        raise ValueError(
            f"data set {data.name!r} has {c}-channel images but model.in_channels={model.in_channels}; "
            f"pass model.in_channels={c}, or data.name= the data set this tokenizer was trained on."
        )
    f = model.total_downsample
    if h % f or w % f:
        raise ValueError(
            f"data set {data.name!r} has {h}×{w} images, which the model's total downsampling {f} "
            f"(model.downsample={model.downsample}, model.num_levels={model.num_levels}) does not divide; "
            "choose a smaller model.downsample."
        )


def corpus_images(corpus: CodeCorpus, root: str | None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (uint8) and labels of the data set split that ``corpus`` was made from, first ``limit`` of them."""
    dataset: dict[str, Any] = corpus.meta.get("dataset", {})
    data = load_image_dataset(dataset["name"], dataset["split"], root=root)
    n = len(data) if limit is None else min(limit, len(data))
    return data.images[:n], data.labels[:n]
