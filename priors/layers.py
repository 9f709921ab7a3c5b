"""Building blocks of the convolutional priors, each with a full pass and a one-position step.

Dimension legend: ``b`` batch, ``d`` channels, ``H``/``W`` grid height and width, ``T`` sequence
length, ``n = H·W`` raster positions, ``p`` left/top reach of a causal kernel, ``k`` kernel taps.

Every block has ``forward`` (all positions at once, for training and scoring) and step methods that
compute one row or one position from cached inputs (for sampling, Ramachandran et al. 2017). The
step methods use the very same weights, reshaped into matrices, so both paths compute the same
function; ``tests/priors`` checks that they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def gate(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """PixelCNN's gated activation ``tanh(a) ⊙ σ(b)`` with ``a, b`` the two halves of ``x`` along ``dim``."""
    a, b = x.chunk(2, dim=dim)
    return torch.tanh(a) * torch.sigmoid(b)


def conv_as_matrix(conv: nn.Conv1d | nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A convolution's weight as an ``(out, in · taps)`` matrix and its bias, for one output position.

    The matrix multiplies a flattened input patch ``(b, in, *taps)`` → ``(b, in · taps)``, in the
    same (channel-major) order as the weight; so patch @ matrix.T equals the convolution there.
    """
    return conv.weight.reshape(conv.weight.shape[0], -1), conv.bias


def apply_matrix(patch: torch.Tensor, conv: nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    """The output ``(b, out)`` of ``conv`` at one position whose input patch is ``patch`` ``(b, in, *taps)``."""
    weight, bias = conv_as_matrix(conv)
    return F.linear(patch.reshape(patch.shape[0], -1), weight, bias)


class GatedBlock2d(nn.Module):
    """One layer of the gated PixelCNN (van den Oord et al. 2016) with vertical and horizontal stacks.

    The vertical stack at row ``i`` sees rows ``< i`` (its input is shifted down one row before the
    first layer) through a ``(p + 1) × (2p + 1)`` kernel over rows ``i - p .. i``; the horizontal stack
    at ``(i, j)`` sees columns ``j - p .. j`` of its own row (its input is shifted right one column)
    plus the vertical stack at ``(i, j)`` through a 1×1 link. Together they see every earlier
    position in raster order and nothing else: no blind spot. Class and spatial conditions enter
    as biases of both stacks' pre-activations (``cond`` below).

    Shapes: ``v``, ``h`` ``(b, d, H, W)`` → the same; ``cond`` ``(b, 4d, H, W)``, ``(b, 4d, 1, 1)`` or None.

    Args:
        channels: ``d``.
        kernel_size: odd ``2p + 1``; the vertical kernel is ``(p + 1) × (2p + 1)``, the horizontal ``1 × (p + 1)``.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3; got {kernel_size}.")
        d, self.p = channels, kernel_size // 2
        self.v_conv = nn.Conv2d(d, 2 * d, (self.p + 1, kernel_size))
        self.h_conv = nn.Conv2d(d, 2 * d, (1, self.p + 1))
        self.v_to_h = nn.Conv2d(2 * d, 2 * d, 1)
        self.h_out = nn.Conv2d(d, d, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.p
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))  # (b, 2d, H, W): rows i-p..i, columns j-p..j+p
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0)))  # (b, 2d, H, W): columns j-p..j of row i
        if cond is not None:
            cond_v, cond_h = cond.chunk(2, dim=1)
            v_pre, h_pre = v_pre + cond_v, h_pre + cond_h
        h_pre = h_pre + self.v_to_h(v_pre)
        return v + gate(v_pre), h + self.h_out(gate(h_pre))

    def step_row(
        self, v_window: torch.Tensor, v_row: torch.Tensor, cond_row: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertical stack of one row: ``v_window`` ``(b, d, p + 1, W + 2p)`` are the padded input rows
        ``i - p .. i``, ``v_row`` ``(b, d, W)`` the input row ``i`` itself, ``cond_row`` ``(b, 4d, W)`` or ``(b, 4d, 1)``.

        Returns the next layer's vertical row ``(b, d, W)`` and the link into the horizontal stack ``(b, 2d, W)``.
        """
        v_pre = self.v_conv(v_window)[:, :, 0]  # (b, 2d, W)
        if cond_row is not None:
            v_pre = v_pre + cond_row.chunk(2, dim=1)[0]
        link = self.v_to_h(v_pre[..., None])[..., 0]
        return v_row + gate(v_pre), link

    def step_position(
        self, h_patch: torch.Tensor, h_here: torch.Tensor, link: torch.Tensor, cond_h: torch.Tensor | None
    ) -> torch.Tensor:
        """The horizontal stack at one position: ``h_patch`` ``(b, d, p + 1)`` are the inputs at columns
        ``j - p .. j``, ``h_here`` ``(b, d)`` the input at ``j``, ``link`` ``(b, 2d)`` and ``cond_h`` ``(b, 2d)``
        this position's vertical link and horizontal condition. Returns the output ``(b, d)``."""
        h_pre = apply_matrix(h_patch, self.h_conv) + link
        if cond_h is not None:
            h_pre = h_pre + cond_h
        return h_here + apply_matrix(gate(h_pre), self.h_out)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over a flattened grid in raster order; position ``i`` attends to ``0 .. i``.

    Used on the horizontal stack of the top-level PixelCNN (as VQ-VAE-2 adds attention to its top
    prior): the features at ``i`` depend only on codes before ``i``, so attending to ``i`` itself is
    allowed. A learned row and column embedding tells the attention where each position is.

    Shapes: ``x`` ``(b, d, H, W)`` → the same (residual added).
    """

    def __init__(self, channels: int, heads: int, height: int, width: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels}).")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.row = nn.Parameter(torch.zeros(height, channels))
        self.col = nn.Parameter(torch.zeros(width, channels))
        nn.init.normal_(self.row, std=0.02)
        nn.init.normal_(self.col, std=0.02)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def _qkv(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` features and positional embeddings → ``(..., 3d)`` queries, keys and values."""
        return self.qkv(self.norm(x) + pos)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        seq = rearrange(x, "b d h w -> b (h w) d")
        pos = rearrange(self.row[:H, None] + self.col[None, :W], "h w d -> (h w) d")
        q, k, v = rearrange(self._qkv(seq, pos), "b n (three e d) -> three b e n d", three=3, e=self.heads)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (b, e, n, d/e)
        out = self.out(rearrange(att, "b e n d -> b n (e d)"))
        return x + rearrange(out, "b (h w) d -> b d h w", h=H, w=W)

    def new_cache(self, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
        """Empty keys and values for ``length`` positions: ``(2, b, e, n, d/e)``."""
        d = self.qkv.in_features
        return like.new_zeros((2, batch, self.heads, length, d // self.heads))

    def step(self, x: torch.Tensor, index: int, row: int, col: int, cache: torch.Tensor) -> torch.Tensor:
        """The output ``(b, d)`` at raster position ``index`` = ``(row, col)`` from its input ``x`` ``(b, d)``;
        stores this position's key and value in ``cache`` (from :meth:`new_cache`)."""
        q, k, v = rearrange(
            self._qkv(x, self.row[row] + self.col[col]), "b (three e d) -> three b e d", three=3, e=self.heads
        )
        cache[0, :, :, index], cache[1, :, :, index] = k, v
        keys, values = cache[0, :, :, : index + 1], cache[1, :, :, : index + 1]  # (b, e, i+1, d/e)
        scores = torch.einsum("bed,bend->ben", q, keys) / math.sqrt(q.shape[-1])
        att = torch.einsum("ben,bend->bed", scores.softmax(dim=-1), values)
        return x + self.out(rearrange(att, "b e d -> b (e d)"))


class GatedBlock1d(nn.Module):
    """One WaveNet layer (van den Oord et al. 2016): a dilated causal convolution, gated, with residual and skip.

    The output at ``t`` sees inputs ``t - dilation·(k - 1) .. t``; the first layer's input is shifted
    right one step, so the network at ``t`` sees codes ``< t``. A condition (class, or an upper code
    level brought to this length) enters as a bias of the pre-activation.

    Shapes: ``x`` ``(b, d, T)`` → residual output ``(b, d, T)`` and skip ``(b, d, T)``; ``cond`` ``(b, 2d, T)``,
    ``(b, 2d, 1)`` or None.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"kernel_size must be at least 2 for a causal convolution; got {kernel_size}.")
        self.dilation, self.kernel_size = dilation, kernel_size
        self.reach = dilation * (kernel_size - 1)
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        pre = self.conv(F.pad(x, (self.reach, 0)))  # (b, 2d, T): inputs t - reach .. t
        if cond is not None:
            pre = pre + cond
        g = gate(pre)
        return x + self.res(g), self.skip(g)

    def step(
        self, patch: torch.Tensor, here: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``patch`` ``(b, d, k)`` are the inputs at ``t - reach, ..., t`` (every ``dilation``-th),
        ``here`` ``(b, d)`` the input at ``t``, ``cond`` ``(b, 2d)``. Returns residual output and skip, ``(b, d)`` each."""
        pre = apply_matrix(patch, self.conv)
        if cond is not None:
            pre = pre + cond
        g = gate(pre)
        return here + apply_matrix(g, self.res), apply_matrix(g, self.skip)


class UpperLevelConditioner(nn.Module):
    """Upper-level codes → a condition map on the lower level's grid (VQ-VAE-2's bottom prior given the top).

    Not causal: the upper level is fully known when the lower one is sampled. Embeds the codes,
    refines them with a convolution, resizes to the lower grid (nearest neighbour) and refines again.

    Shapes (2-D): codes ``(b, h, w)`` → ``(b, out, H, W)``; (1-D): ``(b, t)`` → ``(b, out, T)``.
    """

    def __init__(self, codebook_size: int, channels: int, out_channels: int, target: tuple[int, ...]) -> None:
        super().__init__()
        conv = nn.Conv2d if len(target) == 2 else nn.Conv1d
        self.target = tuple(target)
        self.embed = nn.Embedding(codebook_size, channels)
        self.before = conv(channels, channels, 3, padding=1)
        self.after = nn.Sequential(conv(channels, channels, 3, padding=1), nn.ReLU(), conv(channels, out_channels, 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes).movedim(-1, 1)  # (b, c, *grid)
        x = F.relu(self.before(x))
        x = F.interpolate(x, size=self.target, mode="nearest")
        return self.after(x)
