"""Image tokenizers: VQ-VAE (van den Oord et al. 2017) and its hierarchy VQ-VAE-2 (Razavi et al. 2019).

Dimension legend: ``b`` batch, ``c`` image channels, ``h``/``w`` image size, ``d`` code dimension,
``k`` hidden channels, ``h_l``/``w_l`` the grid of level ``l``. Levels count top first: level 0 is the
coarsest grid, level ``L - 1`` the bottom one (factor ``downsample``); one level is plain VQ-VAE.

Encoding runs bottom-up then quantizes top-down, as in VQ-VAE-2::

    image ─enc[L-1]─▶ f[L-1] ─enc[L-2]─▶ f[L-2] ... ─enc[0]─▶ f[0]           (features, k channels)
    z[0] = pre[0](f[0]);  z[l] = pre[l](cat(f[l], cond[l-1](q[l-1])))         (q[l] = quantized z[l])
    reconstruction = dec(cat(up[0](q[0]), ..., up[L-2](q[L-2]), q[L-1]))     (all at the bottom grid)

``cond[l-1]`` decodes level ``l - 1``'s codes to level ``l``'s grid, so each level encodes what the
levels above it left out; ``up[l]`` brings level ``l`` to the bottom grid for the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from modalities.image.codes import ImageCodes
from modalities.image.config import ImageTokenizerConfig
from modalities.image.layers import Decoder, Encoder, upsampler
from modalities.image.preprocess import as_image_batch, check_layout, from_signed_unit, to_signed_unit
from tokenizers_vq import QuantizerOutput, build_quantizer
from tokenizers_vq.tokenizer import Tokenizer

KIND = "image-tokenizer"


@dataclass
class ImageTokenizerOutput:
    """What :meth:`ImageTokenizer.forward` returns, for a batch ``(b, c, h, w)`` in ``[-1, 1]``.

    - ``reconstruction``: ``(b, c, h, w)``, in the model's ``[-1, 1]`` scale like the input.
    - ``codes``: the :class:`ImageCodes` chosen in this pass, top level first.
    - ``loss``: scalar, ``reconstruction_loss`` plus every level's quantizer loss; what training backprops.
    - ``reconstruction_loss``: scalar mean squared error in the ``[-1, 1]`` scale.
    - ``quantizer_outputs``: one :class:`~tokenizers_vq.QuantizerOutput` per level, top first
      (their ``quantized`` and ``codes`` are channels-last, ``(b, h_l, w_l, d)`` and ``(b, h_l, w_l)``).
    """

    reconstruction: torch.Tensor
    codes: ImageCodes
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    quantizer_outputs: list[QuantizerOutput]


class ImageTokenizer(Tokenizer):
    """Turns images into grids of discrete codes and back: VQ-VAE or VQ-VAE-2 (see the module docstring).

    Shape contract for ``ImageTokenizerConfig(kind="vqvae2", in_channels=3, downsample=4, num_levels=2)``:
    images ``(8, 3, 32, 32)`` → ``encode`` → ``ImageCodes`` with levels ``(8, 4, 4)`` (top) and
    ``(8, 8, 8)`` (bottom) → ``decode`` → float images ``(8, 3, 32, 32)`` in ``[0, 1]``.

    ``forward`` is the training pass (it updates EMA codebooks when ``self.training``); ``encode``,
    ``decode`` and ``reconstruct`` never change the model. The module does not choose a device:
    move it with ``.to(device)``; ``preprocess`` puts inputs on the device of the parameters.

    Args:
        config: the architecture and codebooks.
    """

    kind = KIND
    modality = "image"
    config_class = ImageTokenizerConfig

    def __init__(self, config: ImageTokenizerConfig) -> None:
        super().__init__()
        if not isinstance(config, ImageTokenizerConfig):
            raise TypeError(f"ImageTokenizer needs an ImageTokenizerConfig; got {type(config).__name__}.")
        self.config = config
        cfg = config
        num_levels, k, d = cfg.num_levels, cfg.hidden_channels, cfg.code_dim
        blocks = (cfg.res_channels, cfg.num_res_blocks)
        act = cfg.activation
        bottom_steps = cfg.downsample.bit_length() - 1  # log2(downsample) strided convs
        # encoders[l] makes level l's features: the bottom one from the image, each upper one from the
        # features of the level below it, halving the grid once more.
        self.encoders = nn.ModuleList(
            [Encoder(k, k, *blocks, num_downsamples=1, act=act) for _ in range(num_levels - 1)]
            + [Encoder(cfg.in_channels, k, *blocks, num_downsamples=bottom_steps, act=act)]
        )
        # conditioners[l - 1] decodes level l-1's quantized vectors to level l's grid (VQ-VAE-2's top decoder).
        self.conditioners = nn.ModuleList(
            Decoder(d, d, k, *blocks, num_upsamples=1, act=act) for _ in range(num_levels - 1)
        )
        self.pre_quantize = nn.ModuleList(
            nn.Conv2d(k if level == 0 else k + d, d, kernel_size=1) for level in range(num_levels)
        )
        self.quantizers = nn.ModuleList(build_quantizer(cfg.quantizer_config(level)) for level in range(num_levels))
        self.upsamplers = nn.ModuleList(upsampler(d, num_levels - 1 - level, act) for level in range(num_levels - 1))
        self.decoder = Decoder(d * num_levels, cfg.in_channels, k, *blocks, num_upsamples=bottom_steps, act=act)

    # ---- layout ---------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    @property
    def total_downsample(self) -> int:
        """Image sides must be multiples of this (the top level's factor)."""
        return self.config.total_downsample

    def level_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Code grid ``(h_l, w_l)`` of each level, top first, for ``height × width`` images."""
        f = self.total_downsample
        if height % f or width % f or height <= 0 or width <= 0:
            raise ValueError(f"image sides must be positive multiples of {f}; got {height}×{width}.")
        return [
            (height // self.config.level_downsample(lvl), width // self.config.level_downsample(lvl))
            for lvl in range(self.num_levels)
        ]

    @property
    def codebook_sizes(self) -> list[int]:
        """Entries of each level's codebook, top first."""
        return [q.codebook_size for q in self.quantizers]

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    # ---- inputs ---------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images → float ``(b, c, h, w)`` in ``[-1, 1]`` on the model's device, ready for ``forward``.

        Takes uint8 pixels in ``[0, 255]`` or floats in ``[0, 1]``, shaped ``(h, w)``, ``(c, h, w)`` or
        ``(b, c, h, w)``, as numpy arrays or tensors. E.g. uint8 ``(28, 28)`` → float ``(1, 1, 28, 28)``.
        Raises ``ValueError`` for a wrong channel count, sides that are not multiples of
        ``total_downsample``, or a wrong dtype or value range.
        """
        x = as_image_batch(images)
        check_layout(x, self.config.in_channels, self.total_downsample)
        p = self._param()
        return to_signed_unit(x.to(p.device)).to(p.dtype)

    def _check_model_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("forward takes the float (b, c, h, w) tensor made by preprocess(images).")
        check_layout(x, self.config.in_channels, self.total_downsample)

    # ---- the network ------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features ``(b, k, h_l, w_l)`` of every level, top first."""
        features = [self.encoders[-1](x)]
        for encoder in reversed(self.encoders[:-1]):
            features.append(encoder(features[-1]))
        return features[::-1]

    def _pre_quantize(self, level: int, features: torch.Tensor, above: torch.Tensor | None) -> torch.Tensor:
        """Channels-last vectors ``(b, h_l, w_l, d)`` to quantize at ``level``, given the level above's ``q``."""
        if above is not None:
            features = torch.cat([features, self.conditioners[level - 1](above)], dim=1)
        return rearrange(self.pre_quantize[level](features), "b d h w -> b h w d")

    def _decode_quantized(self, quantized: list[torch.Tensor]) -> torch.Tensor:
        """Quantized vectors ``(b, d, h_l, w_l)`` of every level (top first) → images ``(b, c, h, w)`` in [-1, 1]."""
        *upper, bottom = quantized
        on_bottom_grid = [up(q) for up, q in zip(self.upsamplers, upper, strict=True)]
        return self.decoder(torch.cat([*on_bottom_grid, bottom], dim=1))

    def forward(self, x: torch.Tensor) -> ImageTokenizerOutput:
        """Training pass on ``x = preprocess(images)`` (``(b, c, h, w)`` in ``[-1, 1]``).

        Gradients reach the encoders through the quantizers by the straight-through estimator;
        in training mode the codebooks also take their EMA / k-means / restart updates.
        """
        self._check_model_input(x)
        outputs: list[QuantizerOutput] = []
        quantized: list[torch.Tensor] = []
        for level, features in enumerate(self._features(x)):
            z = self._pre_quantize(level, features, quantized[-1] if quantized else None)
            out = self.quantizers[level](z)
            outputs.append(out)
            quantized.append(rearrange(out.quantized, "b h w d -> b d h w"))
        reconstruction = self._decode_quantized(quantized)
        reconstruction_loss = F.mse_loss(reconstruction.float(), x.float())
        loss = reconstruction_loss + sum(out.loss for out in outputs)
        return ImageTokenizerOutput(
            reconstruction=reconstruction,
            codes=ImageCodes([out.codes for out in outputs]),
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            quantizer_outputs=outputs,
        )

    # ---- tokenizer API --------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: torch.Tensor | np.ndarray) -> ImageCodes:
        """Codes of ``images`` (anything ``preprocess`` takes); leaves the model unchanged, even in training mode."""
        x = self.preprocess(images)
        grids: list[torch.Tensor] = []
        above: torch.Tensor | None = None
        for level, features in enumerate(self._features(x)):
            # Snap with encode/decode, never forward: forward would move EMA codebooks in training mode.
            codes = self.quantizers[level].encode(self._pre_quantize(level, features, above))
            grids.append(codes)
            above = self._lookup(level, codes)
        return ImageCodes(grids)

    def _lookup(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors ``(b, d, h_l, w_l)`` of ``codes`` ``(b, h_l, w_l)``."""
        vectors = self.quantizers[level].decode(codes).to(self._param().dtype)
        return rearrange(vectors, "b h w d -> b d h w")

    def check_codes(self, codes: ImageCodes) -> None:
        """Raise ``ValueError`` unless ``codes`` has this tokenizer's levels, shapes and code range."""
        if not isinstance(codes, ImageCodes):
            raise TypeError(f"codes must be ImageCodes (from encode); got {type(codes).__name__}.")
        if codes.num_levels != self.num_levels:
            raise ValueError(
                f"this tokenizer has {self.num_levels} level(s) but the codes have {codes.num_levels}; "
                "were they made by another tokenizer?"
            )
        bottom_h, bottom_w = codes.shapes[-1]
        expected = self.level_shapes(bottom_h * self.config.downsample, bottom_w * self.config.downsample)
        if codes.shapes != expected:
            raise ValueError(
                f"code grids {codes.shapes} do not fit together: for a {bottom_h}×{bottom_w} bottom grid this "
                f"tokenizer expects {expected} (top first; each level half the size of the one below)."
            )
        for level, (grid, size) in enumerate(zip(codes.levels, self.codebook_sizes, strict=True)):
            if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= size):
                raise ValueError(
                    f"level {level} codes must lie in [0, {size - 1}]; got {int(grid.min())}..{int(grid.max())}."
                )

    @torch.no_grad()
    def decode(self, codes: ImageCodes) -> torch.Tensor:
        """Float images ``(b, c, h, w)`` in ``[0, 1]`` from ``codes``, e.g. levels ``[(8, 4, 4), (8, 8, 8)]``
        → ``(8, 3, 32, 32)`` for ``downsample=4``."""
        self.check_codes(codes)
        codes = codes.to(self._param().device)
        quantized = [self._lookup(level, grid) for level, grid in enumerate(codes.levels)]
        return from_signed_unit(self._decode_quantized(quantized))

    def reconstruct(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``decode(encode(images))``: float ``(b, c, h, w)`` in ``[0, 1]``."""
        return self.decode(self.encode(images))
