"""Checking and scaling images for an image tokenizer: pixels in, ``[-1, 1]`` tensors out, and back.

Dimension legend: ``b`` batch, ``c`` channels (1 grey, 3 RGB), ``h``/``w`` height and width.
"""

from __future__ import annotations

import numpy as np
import torch

# Float inputs may overshoot [0, 1] by rounding (e.g. after a resize); beyond this they are an error.
_RANGE_TOLERANCE = 1e-3


def as_image_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Bring ``(h, w)``, ``(c, h, w)`` or ``(b, c, h, w)`` numpy/torch images to a ``(b, c, h, w)`` tensor.

    The dtype is kept; ``(h, w)`` becomes ``(1, 1, h, w)`` and ``(c, h, w)`` becomes ``(1, c, h, w)``.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a torch.Tensor or numpy array of shape (h, w), (c, h, w) or (b, c, h, w); "
            f"got {type(images).__name__}. Convert PIL images with numpy.asarray(img) and move channels first."
        )
    if images.ndim == 2:
        return images[None, None]
    if images.ndim == 3:
        return images[None]
    if images.ndim == 4:
        return images
    raise ValueError(f"images must have shape (h, w), (c, h, w) or (b, c, h, w); got {tuple(images.shape)}.")


def check_layout(x: torch.Tensor, in_channels: int, multiple: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(b, in_channels, h, w)`` with ``h``, ``w`` multiples of ``multiple``."""
    if x.ndim != 4:
        raise ValueError(f"images must have shape (b, c, h, w); got {tuple(x.shape)}.")
    _, c, h, w = x.shape
    if c != in_channels:
        hint = ""
        if x.shape[-1] == in_channels:
            hint = " They look channels-last; move channels first, e.g. einops.rearrange(x, 'b h w c -> b c h w')."
        elif in_channels == 1:
            hint = " For a batch of grey (b, h, w) images add the channel axis: images[:, None]."
        raise ValueError(
            f"this tokenizer takes {in_channels}-channel images as (b, {in_channels}, h, w); "
            f"got shape {tuple(x.shape)} with {c} channels.{hint}"
        )
    if h % multiple or w % multiple or h == 0 or w == 0:
        h_up, w_up = (max(multiple, -(-n // multiple) * multiple) for n in (h, w))
        raise ValueError(
            f"image height and width must be positive multiples of the tokenizer's total downsampling "
            f"{multiple}; got {h}×{w}. Pad or resize them to {h_up}×{w_up} "
            "(e.g. torch.nn.functional.pad or torchvision.transforms.functional.resize)."
        )


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` pixels → float32 ``[0, 1]``, checking dtype and range."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(
            f"images must be uint8 in [0, 255] or floating point in [0, 1]; got dtype {x.dtype}. "
            "Convert integer pixels with .to(torch.uint8) (if they are 0..255) or divide them by their maximum."
        )
    x = x.float()
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("images contain NaN or infinite values.")
        if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"float images must lie in [0, 1]; got values from {lo:.4g} to {hi:.4g}. "
                "Divide 0..255 pixels by 255 (or pass them as uint8); map [-1, 1] images with (x + 1) / 2."
            )
    # Out of place: .float() returns the caller's own tensor when it already is float32.
    return x.clamp(0.0, 1.0)


def to_signed_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` pixels → float32 ``[-1, 1]``, the model's scale."""
    return to_unit(x) * 2.0 - 1.0


def from_signed_unit(x: torch.Tensor) -> torch.Tensor:
    """Model-scale ``[-1, 1]`` images back to float ``[0, 1]`` (clamped)."""
    return ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float ``[0, 1]`` images to uint8 ``[0, 255]`` (rounded), e.g. for PNG files."""
    return images.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
