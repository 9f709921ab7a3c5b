"""ImageCodes: validation, layout, indexing and conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modalities.image import ImageCodes


def _codes(batch: int = 5) -> ImageCodes:
    top = torch.arange(batch * 4).reshape(batch, 2, 2)
    bottom = torch.arange(batch * 16).reshape(batch, 4, 4) + 100
    return ImageCodes([top, bottom])


def test_layout():
    codes = _codes()
    assert codes.num_levels == 2
    assert codes.shapes == [(2, 2), (4, 4)]
    assert codes.batch_size == len(codes) == 5
    assert codes.codes_per_image == 20
    assert codes.device == torch.device("cpu")


def test_integer_index_keeps_the_batch_axis():
    codes = _codes()
    one = codes[2]
    assert one.batch_size == 1 and one.shapes == codes.shapes
    assert torch.equal(one.levels[1][0], codes.levels[1][2])
    assert torch.equal(codes[-1].levels[0], codes.levels[0][4:])
    with pytest.raises(IndexError):
        codes[5]


def test_slices_lists_and_masks_select_images():
    codes = _codes()
    assert codes[1:3].batch_size == 2
    assert torch.equal(codes[[0, 4]].levels[0], codes.levels[0][[0, 4]])
    mask = torch.tensor([True, False, True, False, False])
    assert codes[mask].batch_size == 2


def test_flatten_round_trip_and_order():
    codes = _codes()
    flat = codes.flatten()
    assert flat.shape == (5, 20)
    assert torch.equal(flat[0, :4], torch.arange(4))  # top level first, raster order
    assert ImageCodes.unflatten(flat, codes.shapes).equal(codes)
    with pytest.raises(ValueError, match="need 16"):
        ImageCodes.unflatten(flat, [(4, 4)])


def test_cat_numpy_and_device():
    codes = _codes()
    joined = ImageCodes.cat([codes[:2], codes[2:]])
    assert joined.equal(codes)
    arrays = codes.numpy()
    assert [a.dtype for a in arrays] == [np.int64, np.int64]
    assert ImageCodes(arrays).equal(codes)  # numpy grids are accepted too
    assert codes.to("cpu").equal(codes.cpu())
    with pytest.raises(ValueError, match="level shapes"):
        ImageCodes.cat([codes, ImageCodes([codes.levels[1]])])


def test_int32_grids_become_int64():
    codes = ImageCodes([torch.zeros(2, 3, 3, dtype=torch.int32)])
    assert codes.levels[0].dtype == torch.int64


@pytest.mark.parametrize(
    ("levels", "error", "match"),
    [
        ([], TypeError, "non-empty list"),
        (torch.zeros(2, 3, 3, dtype=torch.long), TypeError, r"ImageCodes\(\[codes\]\)"),
        ([torch.zeros(2, 3, 3)], ValueError, "integer"),
        ([torch.zeros(3, 3, dtype=torch.long)], ValueError, r"codes\[None\]"),
        ([torch.zeros(2, 2, 2, dtype=torch.long), torch.zeros(3, 4, 4, dtype=torch.long)], ValueError, "batch size"),
        (["0"], TypeError, "tensor"),
    ],
)
def test_rejects_bad_levels(levels, error, match):
    with pytest.raises(error, match=match):
        ImageCodes(levels)
