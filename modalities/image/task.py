"""The image modality plug-in: loading image splits, checking a tokenizer fits them, evaluating, code corpora.

Dimension legend: ``n`` images, ``c`` channels, ``h``/``w`` image size, ``h_l``/``w_l`` level ``l``'s grid.

``data`` below is a recipe's data section: ``name``, ``root``, ``download``, ``train_split``,
``eval_split`` (see ``recipes.tokenizer.config``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from modalities.base import CodingItems, CorpusSource, ItemCodes, RateTraits
from modalities.image.codecs import codec_points, read_image_files, save_png
from modalities.image.codes import ImageCodes
from modalities.image.data import ImageArrays, check_fits, load_split
from modalities.image.grid import comparison_grid, png_bytes
from modalities.image.metrics import evaluate_images, reconstruction_metrics
from modalities.image.preprocess import to_uint8
from modalities.image.tokenizer import ImageTokenizer
from modalities.image.training import ImageTraining, training_data
from tokenizers_vq.corpus import code_dtype, save_array
from tokenizers_vq.io import atomic_write_bytes
from tokenizers_vq.progress import progress


class ImageModality:
    """Images: data sets of ``modalities.image.data``, VQ-VAE / VQ-VAE-2 tokenizers, grid corpora."""

    name = "image"
    tokenizer_class = ImageTokenizer
    reconstruction_figures = "reconstructions.json"  # the JSON file `reconstruct` writes beside its outputs

    training_data = staticmethod(training_data)  # the training items and the held-out ones (modalities.image.training)
    training = staticmethod(ImageTraining.build)  # the training set, step and evaluation of a model over them

    def prepare(self, model: ImageTokenizer, cfg: Any) -> ImageTokenizer:
        return model

    def corpus_source(self, model: ImageTokenizer, cfg: Any, split: str) -> CorpusSource:
        data = load_split(cfg.data, split)
        check_fits(model.config, data)
        n, (_, h, w) = len(data), data.image_shape
        shapes, sizes = model.level_shapes(h, w), model.codebook_sizes
        dtypes = [code_dtype(k) for k in sizes]
        batch_size = cfg.tokenize.batch_size

        images = data.images  # decoded when the split was loaded: reading a chunk is slicing it

        def read(start: int, stop: int) -> dict[str, np.ndarray]:
            return {"images": images[start:stop].numpy()}  # uint8 (m, c, h, w)

        def encode_inputs(net: ImageTokenizer, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            chunk = torch.from_numpy(inputs["images"])
            levels: list[list[np.ndarray]] = [[] for _ in shapes]
            for first in range(0, len(chunk), batch_size):
                codes = net.encode(chunk[first : first + batch_size])
                for parts, grid, dtype in zip(levels, codes.numpy(), dtypes, strict=True):
                    parts.append(grid.astype(dtype))  # (b, h_l, w_l)
            return {f"codes_level{i}": np.concatenate(parts) for i, parts in enumerate(levels)}

        def encode(start: int, stop: int) -> dict[str, np.ndarray]:
            return encode_inputs(model, read(start, stop))

        def write(tmp: Path, chunks: Iterator[dict[str, np.ndarray]]) -> dict[str, Any]:
            arrays = [
                open_memmap(tmp / f"codes_level{i}.npy", mode="w+", dtype=dt, shape=(n, *shape))
                for i, (dt, shape) in enumerate(zip(dtypes, shapes, strict=True))
            ]
            done = 0
            for chunk in chunks:
                m = len(chunk["codes_level0"])
                for i, array in enumerate(arrays):
                    array[done : done + m] = chunk[f"codes_level{i}"]
                done += m
            assert done == n, f"the chunks hold {done} images, the split {n}"
            for array in arrays:
                array.flush()
            del arrays  # close the memory maps before the files are renamed
            save_array(tmp / "labels.npy", data.labels.numpy().astype(np.int64))
            return {
                "levels": [
                    {"file": f"codes_level{i}.npy", "shape": list(s), "codebook_size": k, "dtype": dt.name}
                    for i, (s, k, dt) in enumerate(zip(shapes, sizes, dtypes, strict=True))
                ],
                "labels": "labels.npy",
                "dataset": {"name": data.name, "split": data.split, "class_names": data.class_names},
                "count": n,
                "image_shape": list(data.image_shape),
            }

        def result(out: Path, merged: bool) -> dict[str, Any]:
            return {
                "out_dir": str(out),
                "num_images": n,
                "dataset": data.name,
                "split": data.split,
                "level_shapes": [list(s) for s in shapes],
                "codebook_sizes": list(sizes),
                "dtypes": [dt.name for dt in dtypes],
            }

        identity = {"dataset": data.name, "split": data.split}
        return CorpusSource(data.name, data.split, n, identity, encode, write, result, read=read,
                            encode_inputs=encode_inputs)  # fmt: skip

    def evaluate(self, model: ImageTokenizer, cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        data = load_split(cfg.data, cfg.eval.split or cfg.data.eval_split, cfg.eval.max_images)
        check_fits(model.config, data)
        figures = evaluate_images(model, data, cfg.eval.batch_size)
        return {"dataset": data.name, "split": data.split}, figures

    def reconstruct(self, model: ImageTokenizer, cfg: Any, out: Path) -> dict[str, Any]:
        """``reconstruct.num_images`` images (seeded draw) of the held-out split above their reconstructions,
        as ``reconstructions.png`` in ``out``; returns the figures (MSE, PSNR, SSIM) and which images."""
        data = load_split(cfg.data, cfg.reconstruct.split or cfg.data.eval_split)
        check_fits(model.config, data)
        count = min(cfg.reconstruct.num_images, len(data))
        indices = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))[:count].sort().values
        originals = data.images[indices]
        with torch.no_grad():
            reconstructions = model.reconstruct(originals).float().cpu()
        figures = reconstruction_metrics(originals, reconstructions).to_dict()
        grid = comparison_grid(originals, to_uint8(reconstructions), cfg.reconstruct.per_row, cfg.reconstruct.min_cell)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "reconstructions.png", png_bytes(grid))
        return {
            "out_dir": str(out),
            "grid": str(out / "reconstructions.png"),
            "dataset": data.name,
            "split": data.split,
            "indices": [int(i) for i in indices],
            "figures": figures,
        }

    # The rate verbs (compress, decompress, rd)
    rate = RateTraits(
        item="image",
        unit="pixel",
        amount="pixels",
        metrics=(("psnr", "PSNR (dB)"), ("ssim", "SSIM")),
        codecs=("jpeg", "webp"),
        setting="quality",
        lossless="png",
    )

    def split_of(self, data: Any, role: str) -> str:
        return data.train_split if role == "train" else data.eval_split

    def load_items(
        self, model: ImageTokenizer, data: Any, split: str, limit: int | None, seed: int | None = None
    ) -> CodingItems:
        arrays = load_split(data, split, limit, seed)
        return _coding_items(model, arrays, [int(label) for label in arrays.labels], None, f"{arrays.name}_{split}")

    def read_files(self, model: ImageTokenizer, path: str) -> CodingItems:
        images, names = read_image_files(path, model.config.in_channels)
        f, (h, w) = model.config.total_downsample, images.shape[-2:]
        if h % f or w % f:  # the files, not a data set or the model, are what to change
            raise ValueError(
                f"{path} holds {h}×{w} images, which this tokenizer's total downsampling {f} does not divide; "
                f"crop or pad them to multiples of {f}."
            )
        arrays = ImageArrays(images, torch.zeros(len(images), dtype=torch.long), [], "files", "input")
        return _coding_items(model, arrays, [None] * len(names), names, Path(path).expanduser().stem)

    def item_codes(self, model: ImageTokenizer, items: CodingItems) -> ItemCodes:
        images = items.data
        starts = progress(range(0, len(images), CODING_BATCH), desc="encoding", unit="batch")
        parts = [model.encode(images[s : s + CODING_BATCH]).levels for s in starts]
        levels = [torch.cat([g.cpu() for g in level]) for level in zip(*parts, strict=True)]
        return ItemCodes(levels, model.codebook_sizes)

    def check_output(self, model: ImageTokenizer, options: Any) -> None:
        return None  # images.npy always, PNGs when options.png: nothing to check

    def write_outputs(
        self, model: ImageTokenizer, codes: ItemCodes, stems: list[str], directory: Path, options: Any
    ) -> dict[str, Any]:
        """``images.npy`` (uint8 ``(n, c, h, w)``) and, with ``options.png``, one PNG per image."""
        images = _decode(model, codes).numpy()
        save_array(directory / "images.npy", images)
        if options.png:
            for stem, image in zip(stems, images, strict=True):
                save_png(directory / f"{stem}.png", image)
        return {"image_shape": list(images.shape[1:])}

    def distortion(self, model: ImageTokenizer, items: CodingItems, codes: ItemCodes, depth: int | None) -> dict:
        metrics = reconstruction_metrics(items.data, _decode(model, codes))
        return {"psnr": metrics.psnr, "ssim": metrics.ssim}

    def describe_model(self, model: ImageTokenizer, codes: ItemCodes, depth: int | None) -> tuple[str, dict[str, Any]]:
        shapes = [list(g.shape[1:]) for g in codes.levels]
        grids = "+".join("x".join(map(str, s)) for s in shapes)
        label = f"{model.config.kind}, K={model.config.num_codes}, {grids}"
        return label, {"kind": model.config.kind, "codebook_size": model.config.num_codes, "level_shapes": shapes}

    def codec_points(
        self, model: ImageTokenizer, items: CodingItems, options: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        points = codec_points(items.data, options.jpeg_qualities, options.webp_qualities, options.codec_layout)
        return points, {"codec_layout": options.codec_layout}


CODING_BATCH = 256  # images the rate verbs encode or decode at once


def _coding_items(
    model: ImageTokenizer, arrays: ImageArrays, labels: list[int | None], names: list[str] | None, stem: str
) -> CodingItems:
    check_fits(model.config, arrays)
    n, shape = len(arrays), list(arrays.image_shape)
    description = {"dataset": arrays.name, "split": arrays.split, "num_images": n, "image_shape": shape}
    title = f"{arrays.name}/{arrays.split}, {n} images"
    return CodingItems(arrays.images, labels, names, stem, float(n * shape[1] * shape[2]), {"image_shape": shape},
                       description, title)  # fmt: skip


def _decode(model: ImageTokenizer, codes: ItemCodes) -> torch.Tensor:
    """Codes → uint8 images ``(n, c, h, w)`` on the CPU."""
    device = next(model.parameters()).device
    n = codes.levels[0].shape[0]
    return torch.cat([to_uint8(model.decode(ImageCodes([g[s : s + CODING_BATCH].to(device) for g in codes.levels]))).cpu()
                      for s in range(0, n, CODING_BATCH)])  # fmt: skip
