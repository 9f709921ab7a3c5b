"""vector-quantize-pytorch's quantizers behind our ``Quantizer`` interface, so they drop into our tokenizers.

Dimension legend: ``b`` batch, ``n`` flattened grid, ``d`` vector dimension.

The peer's modules take ``(b, n, d)`` (four-dimensional inputs would be read as channels first) and return
tuples whose length depends on the class: ``VectorQuantize`` and ``SimVQ`` give ``(quantized, indices,
loss)``, ``LFQ`` ``(quantized, indices, entropy_aux_loss)``, ``FSQ`` ``(quantized, indices)``. The adapter
flattens the grid, names the parts, and adds the peer's loss to ours as the commitment term.
"""

from __future__ import annotations

import torch
from torch import nn

from tokenizers_vq.base import Quantizer, QuantizerOutput, check_vectors
from tokenizers_vq.metrics import perplexity_from_counts


class PeerQuantizer(Quantizer):
    """One of vector-quantize-pytorch's quantizers (``module``) with ``codebook_size`` codes, channels last."""

    def __init__(self, module: nn.Module, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.module, self.dim, self._codebook_size = module, dim, codebook_size

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def num_levels(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        check_vectors(x, self.dim)
        out = self.module(x.reshape(x.shape[0], -1, self.dim))  # (b, n, d)
        quantized, indices = out[0], out[1]
        loss = out[2].sum() if len(out) > 2 else x.new_zeros(())
        counts = torch.bincount(indices.reshape(-1).long(), minlength=self.codebook_size).float()
        zero = x.new_zeros(())
        return QuantizerOutput(
            quantized=quantized.reshape(x.shape),
            codes=indices.reshape(x.shape[:-1]).long(),
            commitment_loss=loss,
            codebook_loss=zero,
            perplexity=perplexity_from_counts(counts),
            usage=(counts > 0).float().mean(),
            dead_codes=torch.zeros((), dtype=torch.int64),
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the benchmark reconstructs through forward; the peer's lookups differ per class")
