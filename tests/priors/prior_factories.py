"""Tiny priors of every kind, with random weights large enough that every dependency shows, and random codes."""

from __future__ import annotations

from collections.abc import Callable

import torch

from priors import CodeLayout, ConvNetConfig, PixelCNNPrior, TransformerConfig, TransformerPrior
from priors.base import CodePrior

# Two image levels (top 3×4, bottom 6×8, different codebooks), and a speech-like sequence.
GRID_LAYOUT = CodeLayout(shapes=[(3, 4), (6, 8)], codebook_sizes=[7, 5], num_classes=3)
SEQ_LAYOUT = CodeLayout(shapes=[(24,)], codebook_sizes=[9], num_classes=3)


def _scramble(model: torch.nn.Module, seed: int) -> None:
    """Random weights of a fixed scale, so no dependency hides behind a near-zero initial weight."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)


def make_pixelcnn(layout: CodeLayout = GRID_LAYOUT, **overrides) -> PixelCNNPrior:
    kernel = 3 if layout.ndim == 2 else 2
    config = ConvNetConfig(
        **{"channels": 8, "num_layers": 4, "kernel_size": kernel, "attention_every": 2, "attention_heads": 2,
           "dilation_cycle": 3, "condition_channels": 8, **overrides}
    )  # fmt: skip
    model = PixelCNNPrior(layout, config).double().eval()
    _scramble(model, 0)
    return model


def make_transformer(layout: CodeLayout = GRID_LAYOUT) -> TransformerPrior:
    torch.manual_seed(0)
    config = TransformerConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32)
    return TransformerPrior(layout, config).double().eval()


MAKERS: dict[str, Callable[[], CodePrior]] = {
    "pixelcnn-2d": make_pixelcnn,
    "wavenet-1d": lambda: make_pixelcnn(SEQ_LAYOUT),
    "transformer-2d": make_transformer,
    "transformer-1d": lambda: make_transformer(SEQ_LAYOUT),
}


def random_codes(layout: CodeLayout, batch: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, k, (batch, *s), generator=gen)
        for s, k in zip(layout.shapes, layout.codebook_sizes, strict=True)
    ]


def random_labels(layout: CodeLayout, batch: int, seed: int = 0) -> torch.Tensor | None:
    if layout.num_classes == 0:
        return None
    return torch.randint(0, layout.num_classes, (batch,), generator=torch.Generator().manual_seed(seed + 1))
