"""The gated PixelCNN over one 2-D code grid, with cached sampling (one level of a :class:`~priors.PixelCNNPrior`).

Dimension legend: ``b`` batch, ``d`` channels, ``H``/``W`` the grid, ``K`` codebook size, ``L``
layers, ``p = kernel_size // 2``.

Implements van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders": gated
blocks with vertical and horizontal stacks, class conditioning and a spatial condition (the
VQ-VAE-2 bottom prior's view of the top codes), and optional causal self-attention on the
horizontal stack as VQ-VAE-2's top prior has. Sampling caches every layer's activations, so each
position is computed once (Ramachandran et al. 2017) instead of re-running the network per code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from priors.layers import CausalSelfAttention, GatedBlock1d, GatedBlock2d, UpperLevelConditioner, apply_matrix


@dataclass
class ConvNetConfig:
    """Architecture of one level's convolutional prior (gated PixelCNN for grids, WaveNet for sequences).

    The defaults are a small model that trains in minutes on a CPU; VQ-VAE-2 uses far larger ones.
    """

    channels: int = 64  # d: width of every stack
    num_layers: int = 8  # gated blocks; the receptive field grows by p rows and p columns per block
    kernel_size: int = 5  # 2-D: odd, 2p + 1 (vertical p+1 × 2p+1, horizontal 1 × p+1); 1-D: taps (WaveNet uses 2)
    attention_every: int = 0  # a causal self-attention block after every N gated blocks (top level only); 0: none
    attention_heads: int = 4
    dilation_cycle: int = 8  # 1-D only: dilations 1, 2, 4, ... restart after this many layers
    condition_channels: int = 64  # width of the network that reads the level above (lower levels only)

    def __post_init__(self) -> None:
        for name in (
            "channels",
            "num_layers",
            "kernel_size",
            "attention_heads",
            "dilation_cycle",
            "condition_channels",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer; got {value!r}.")
        if self.attention_every < 0:
            raise ValueError(f"model.attention_every must be >= 0 (0: no attention); got {self.attention_every}.")
        if self.attention_every and self.channels % self.attention_heads:
            raise ValueError(
                f"model.attention_heads ({self.attention_heads}) must divide model.channels ({self.channels})."
            )


Draw = Callable[[torch.Tensor], torch.Tensor]  # logits (b, K) → codes (b,)


class ConvLevelNet(nn.Module):
    """What the 2-D and 1-D level networks share: code embedding, class and upper-level conditions, output head.

    The conditions of all ``L`` layers are computed at once as one ``(b, L · width, *grid)`` map, then
    split per layer; ``width`` is ``4d`` for the two stacks of a 2-D block and ``2d`` for a 1-D one.
    """

    def __init__(
        self,
        config: ConvNetConfig,
        shape: tuple[int, ...],
        codebook_size: int,
        num_classes: int,
        upper: tuple[int, tuple[int, ...]] | None,
        width: int,
    ) -> None:
        super().__init__()
        d, L = config.channels, config.num_layers
        self.config, self.shape, self.codebook_size, self.width = config, tuple(shape), codebook_size, width
        self.embed = nn.Embedding(codebook_size, d)
        self.class_condition = nn.Embedding(num_classes, L * width) if num_classes else None
        self.upper_condition = (
            UpperLevelConditioner(upper[0], config.condition_channels, L * width, self.shape) if upper else None
        )
        self.head_hidden = nn.Conv1d(d, d, 1)
        self.head_out = nn.Conv1d(d, codebook_size, 1)

    def conditions(
        self, batch: int, labels: torch.Tensor | None, upper_codes: torch.Tensor | None
    ) -> list[torch.Tensor | None]:
        """Per-layer condition biases: ``(b, width, *grid)`` (or ``(b, width, 1, ...)`` for a class only), or None each."""
        cond: torch.Tensor | None = None
        if self.class_condition is not None:
            if labels is None:
                raise ValueError("this level is class-conditional; pass labels.")
            cond = self.class_condition(labels).reshape(batch, -1, *([1] * len(self.shape)))
        if self.upper_condition is not None:
            if upper_codes is None:
                raise ValueError("this level is conditioned on the level above; pass its codes.")
            spatial = self.upper_condition(upper_codes)
            cond = spatial if cond is None else cond + spatial
        if cond is None:
            return [None] * self.config.num_layers
        return list(cond.chunk(self.config.num_layers, dim=1))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(b, d, *grid)`` → logits ``(b, K, *grid)``; also ``(b, d)`` → ``(b, K)`` for one position."""
        if x.ndim == 2:
            return apply_matrix(F.relu(apply_matrix(F.relu(x), self.head_hidden)), self.head_out)
        flat = x.flatten(2)
        logits = self.head_out(F.relu(self.head_hidden(F.relu(flat))))
        return logits.reshape(*logits.shape[:2], *x.shape[2:])


class GatedPixelCNN(ConvLevelNet):
    """Gated PixelCNN over one code grid: logits for every position given the codes before it.

    Shape contract for ``shape=(7, 7)``, ``codebook_size=64``: codes ``(8, 7, 7)`` → logits
    ``(8, 64, 7, 7)``; ``sample_cached`` → codes ``(8, 7, 7)``.

    Args:
        config: the architecture.
        shape: ``(H, W)`` of the grid (attention's position embeddings are made for it).
        codebook_size: ``K``.
        num_classes: class labels for conditioning (0: none).
        upper: ``(K_up, (h_up, w_up))`` of the level above to condition on, or None for the top level.
        attention: add the self-attention blocks of ``config.attention_every``.
    """

    def __init__(
        self,
        config: ConvNetConfig,
        shape: tuple[int, int],
        codebook_size: int,
        num_classes: int = 0,
        upper: tuple[int, tuple[int, ...]] | None = None,
        attention: bool = False,
    ) -> None:
        super().__init__(config, shape, codebook_size, num_classes, upper, width=4 * config.channels)
        if config.kernel_size % 2 == 0 or config.kernel_size < 3:
            raise ValueError(f"model.kernel_size must be odd and >= 3 for a 2-D PixelCNN; got {config.kernel_size}.")
        self.blocks = nn.ModuleList(GatedBlock2d(config.channels, config.kernel_size) for _ in range(config.num_layers))
        every = config.attention_every if attention else 0
        self.attention = nn.ModuleDict(
            {
                str(i): CausalSelfAttention(config.channels, config.attention_heads, *shape)
                for i in range(config.num_layers)
                if every and (i + 1) % every == 0
            }
        )

    def forward(
        self, codes: torch.Tensor, labels: torch.Tensor | None = None, upper_codes: torch.Tensor | None = None
    ) -> torch.Tensor:
        H, W = codes.shape[1:]
        x = self.embed(codes).movedim(-1, 1)  # (b, d, H, W)
        v = F.pad(x, (0, 0, 1, 0))[:, :, :H]  # shifted down one row: row i holds codes of row i-1
        h = F.pad(x, (1, 0))[..., :W]  # shifted right one column
        for i, (block, cond) in enumerate(
            zip(self.blocks, self.conditions(codes.shape[0], labels, upper_codes), strict=True)
        ):
            v, h = block(v, h, cond)
            if str(i) in self.attention:
                h = self.attention[str(i)](h)
        return self.head(h)

    @torch.no_grad()
    def sample_cached(
        self, batch: int, labels: torch.Tensor | None, upper_codes: torch.Tensor | None, draw: Draw
    ) -> torch.Tensor:
        """Codes ``(b, H, W)`` drawn position by position, each layer's activations computed once.

        The vertical stack of row ``i`` is computed for the whole row once row ``i - 1`` is known;
        the horizontal stack advances one position per code, reading a ``p + 1`` wide window of each
        layer's row buffer; attention keeps its keys and values.
        """
        H, W = self.shape
        p, d, L = self.config.kernel_size // 2, self.config.channels, self.config.num_layers
        ref = self.embed.weight
        conds = [None if c is None else c.expand(batch, -1, H, W) for c in self.conditions(batch, labels, upper_codes)]
        # vertical[l]: input of layer l's vertical stack, p zero rows on top and p zero columns each side.
        vertical = [ref.new_zeros((batch, d, p + H, W + 2 * p)) for _ in range(L)]
        caches = {key: att.new_cache(batch, H * W, ref) for key, att in self.attention.items()}
        codes = torch.zeros((batch, H, W), dtype=torch.long, device=ref.device)
        for i in range(H):
            if i > 0:
                vertical[0][:, :, p + i, p : p + W] = self.embed(codes[:, i - 1]).transpose(1, 2)
            links = []
            for l, block in enumerate(self.blocks):
                cond_row = None if conds[l] is None else conds[l][:, :, i]  # (b, 4d, W)
                v_next, link = block.step_row(
                    vertical[l][:, :, i : i + p + 1], vertical[l][:, :, p + i, p : p + W], cond_row
                )
                if l + 1 < L:
                    vertical[l + 1][:, :, p + i, p : p + W] = v_next
                links.append(link)
            # horizontal[l]: layer l's horizontal input along row i, p zero columns on the left.
            horizontal = [ref.new_zeros((batch, d, p + W)) for _ in range(L)]
            for j in range(W):
                for l, block in enumerate(self.blocks):
                    cond_h = None if conds[l] is None else conds[l][:, 2 * d :, i, j]
                    out = block.step_position(
                        horizontal[l][:, :, j : j + p + 1], horizontal[l][:, :, p + j], links[l][:, :, j], cond_h
                    )
                    if str(l) in self.attention:
                        out = self.attention[str(l)].step(out, i * W + j, i, j, caches[str(l)])
                    if l + 1 < L:
                        horizontal[l + 1][:, :, p + j] = out
                codes[:, i, j] = draw(self.head(out))
                if j + 1 < W:
                    horizontal[0][:, :, p + j + 1] = self.embed(codes[:, i, j])
        return codes


class WaveNetPrior(ConvLevelNet):
    """The 1-D variant for speech codes: dilated causal convolutions with gates, residuals and skips.

    Shape contract for ``shape=(100,)``, ``codebook_size=128``: codes ``(8, 100)`` → logits ``(8, 128, 100)``.
    Dilations run ``1, 2, 4, ...`` and restart every ``config.dilation_cycle`` layers; the receptive
    field is ``1 + (kernel_size - 1) · sum(dilations)`` codes. Arguments as :class:`GatedPixelCNN`.
    """

    def __init__(
        self,
        config: ConvNetConfig,
        shape: tuple[int],
        codebook_size: int,
        num_classes: int = 0,
        upper: tuple[int, tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__(config, shape, codebook_size, num_classes, upper, width=2 * config.channels)
        if config.kernel_size < 2:
            raise ValueError(f"model.kernel_size must be >= 2 for the 1-D prior; got {config.kernel_size}.")
        self.blocks = nn.ModuleList(
            GatedBlock1d(config.channels, config.kernel_size, 2 ** (i % config.dilation_cycle))
            for i in range(config.num_layers)
        )

    @property
    def receptive_field(self) -> int:
        return 1 + sum(block.reach for block in self.blocks)

    def forward(
        self, codes: torch.Tensor, labels: torch.Tensor | None = None, upper_codes: torch.Tensor | None = None
    ) -> torch.Tensor:
        T = codes.shape[1]
        x = F.pad(self.embed(codes).movedim(-1, 1), (1, 0))[..., :T]  # (b, d, T) shifted right one step
        skips = torch.zeros_like(x)
        for block, cond in zip(self.blocks, self.conditions(codes.shape[0], labels, upper_codes), strict=True):
            x, skip = block(x, cond)
            skips = skips + skip
        return self.head(skips)

    @torch.no_grad()
    def sample_cached(
        self, batch: int, labels: torch.Tensor | None, upper_codes: torch.Tensor | None, draw: Draw
    ) -> torch.Tensor:
        """Codes ``(b, T)`` drawn step by step; each layer keeps its past inputs (fast WaveNet's queues)."""
        (T,) = self.shape
        d = self.config.channels
        ref = self.embed.weight
        conds = [None if c is None else c.expand(batch, -1, T) for c in self.conditions(batch, labels, upper_codes)]
        # inputs[l]: layer l's input, `reach` zero steps in front so every window is in range.
        inputs = [ref.new_zeros((batch, d, block.reach + T)) for block in self.blocks]
        codes = torch.zeros((batch, T), dtype=torch.long, device=ref.device)
        for t in range(T):
            skips = ref.new_zeros((batch, d))
            for l, block in enumerate(self.blocks):
                patch = inputs[l][:, :, t : t + block.reach + 1 : block.dilation]  # (b, d, k)
                cond = None if conds[l] is None else conds[l][:, :, t]
                out, skip = block.step(patch, inputs[l][:, :, block.reach + t], cond)
                skips = skips + skip
                if l + 1 < len(self.blocks):
                    inputs[l + 1][:, :, self.blocks[l + 1].reach + t] = out
            codes[:, t] = draw(self.head(skips))
            if t + 1 < T:
                inputs[0][:, :, self.blocks[0].reach + t + 1] = self.embed(codes[:, t])
        return codes
