"""The convolutional prior over a whole code layout: one network per level, each lower level given the one above.

Dimension legend: ``b`` batch, ``*grid`` a level's grid, ``K`` codebook size, ``n`` codes per item.

For images this is VQ-VAE-2's pair of priors (Razavi et al. 2019): a gated PixelCNN over the top
codes (with self-attention when ``attention_every > 0``) and, for each lower level, a gated PixelCNN
conditioned on the level above through a spatial map. For a one-level VQ-VAE it is a single
PixelCNN (van den Oord et al. 2017); for speech codes it is the WaveNet-like 1-D variant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from priors.base import CodeLayout, CodePrior, PriorOutput, SampleResult
from priors.pixelcnn import ConvLevelNet, ConvNetConfig, GatedPixelCNN, WaveNetPrior
from priors.sampling import SamplingConfig, draw
from tokenizers_vq.pretrained import load_model_directory, save_model_directory

KIND = "pixelcnn-prior"


class PixelCNNPrior(CodePrior):
    """Gated PixelCNN priors (2-D grids) or WaveNet priors (1-D sequences) over every level of ``layout``.

    Shape contract for ``CodeLayout(shapes=[(4, 4), (8, 8)], codebook_sizes=[32, 32], num_classes=10)``:
    ``forward([top (b, 4, 4), bottom (b, 8, 8)], labels (b,))`` → logits ``[(b, 4, 4, 32), (b, 8, 8, 32)]``
    and NLL ``(b, 80)``; ``sample(labels)`` → the same two grids, top first.

    Args:
        layout: shapes, codebook sizes and classes of the codes.
        config: the architecture of every level's network.
    """

    def __init__(self, layout: CodeLayout, config: ConvNetConfig | None = None) -> None:
        super().__init__()
        self.layout, self.config = layout, config or ConvNetConfig()
        nets: list[ConvLevelNet] = []
        for level, (shape, k) in enumerate(zip(layout.shapes, layout.codebook_sizes, strict=True)):
            upper = (layout.codebook_sizes[level - 1], layout.shapes[level - 1]) if level else None
            if layout.ndim == 2:
                nets.append(GatedPixelCNN(self.config, shape, k, layout.num_classes, upper, attention=level == 0))
            else:
                nets.append(WaveNetPrior(self.config, shape, k, layout.num_classes, upper))
        self.levels = torch.nn.ModuleList(nets)

    def forward(self, levels: Sequence[torch.Tensor], labels: torch.Tensor | None = None) -> PriorOutput:
        self.layout.check(levels, labels)
        device = self.levels[0].embed.weight.device
        levels = [g.to(device).long() for g in levels]
        labels = None if labels is None else labels.to(device).long()
        logits = []
        for level, net in enumerate(self.levels):
            out = net(levels[level], labels, levels[level - 1] if level else None)  # (b, K, *grid)
            logits.append(out.movedim(1, -1))
        return PriorOutput.from_logits(logits, levels)

    def _sample(
        self, labels: torch.Tensor | None, batch_size: int | None, sampling: SamplingConfig, cached: bool
    ) -> SampleResult:
        """Codes of every level, top first, given ``labels`` ``(b,)`` (conditional) or ``batch_size``.

        ``cached=True`` computes each position once (fast); ``cached=False`` re-runs the whole network
        for every code, as the reference implementations do. Both draw from the same seeded generator
        in the same order, so they give the same codes for the same ``sampling.seed``.
        """
        batch = self._batch(labels, batch_size)
        device = self.levels[0].embed.weight.device
        labels = None if labels is None else labels.to(device).long()
        generator = sampling.generator(device)

        def pick(logits: torch.Tensor) -> torch.Tensor:
            return draw(logits, sampling, generator)

        was_training = self.training
        self.eval()
        start = time.perf_counter()
        try:
            out: list[torch.Tensor] = []
            for net in self.levels:
                upper = out[-1] if out else None
                if cached:
                    out.append(net.sample_cached(batch, labels, upper, pick))
                else:
                    out.append(self._sample_naive(net, batch, labels, upper, pick))
        finally:
            self.train(was_training)
        return SampleResult(levels=out, labels=labels, seconds=time.perf_counter() - start)

    @staticmethod
    def _sample_naive(
        net: ConvLevelNet, batch: int, labels: torch.Tensor | None, upper: torch.Tensor | None, pick
    ) -> torch.Tensor:
        """One full forward pass per code: the reference the cached sampler must match."""
        codes = torch.zeros((batch, *net.shape), dtype=torch.long, device=net.embed.weight.device)
        flat = codes.view(batch, -1)  # a view: writing into it fills `codes`
        for position in range(flat.shape[1]):
            logits = net(codes, labels, upper).flatten(2)[:, :, position]  # (b, K)
            flat[:, position] = pick(logits)
        return codes

    # ---- saving -----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` (layout and architecture) and ``model.safetensors`` into ``directory``."""
        config = {"layout": self.layout.to_dict(), "model": asdict(self.config)}
        return save_model_directory(directory, KIND, config, self.state_dict())

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> PixelCNNPrior:
        """Load a prior written by :meth:`save_pretrained`, in eval mode, on ``map_location``."""
        config, state = load_model_directory(directory, KIND)
        model = cls(CodeLayout.from_dict(config["layout"]), ConvNetConfig(**config["model"]))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{directory}: the weights do not match its config.json.\n{err}") from err
        return model.to(map_location).eval()
