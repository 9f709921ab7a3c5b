"""Lossless coding of codes with a prior: the prior's probabilities drive :mod:`tokenizers_vq.entropy`'s range coder.

Dimension legend: ``b`` items in a chunk, ``K`` a level's codebook size, ``n`` code positions of an item.

Bit-exact decoding needs the encoder's probability tables to equal the decoder's in every bit. A
teacher-forced forward pass and the sequential (cached) pass compute the same function but may
differ in the last float bits, so both directions here run the *sequential* pass: the sampler of
each prior (:meth:`GatedPixelCNN.sample_cached`, :meth:`WaveNetPrior.sample_cached`, or a KV-cached
loop for the transformer) with a chooser in place of the random draw. Encoding, the chooser
codes the known code and returns it; decoding, it decodes a code and returns that; either way the
next position sees the same codes, so the computation, and every table, is the same.

Sequences with an end code (speech corpora pad each utterance with code ``K - 1`` after its last
frame) stop coding an item once its end code is coded; the rest of its row is end codes for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from priors.base import CodePrior
from priors.conv_prior import PixelCNNPrior
from priors.transformer import TransformerPrior
from tokenizers_vq.entropy import CodeDecoder, CodeEncoder, probabilities

Chooser = Callable[[int, int, torch.Tensor], torch.Tensor]  # (level, position, logits (b, K)) → codes (b,)


@torch.no_grad()
def sequential_pass(prior: CodePrior, batch: int, labels: torch.Tensor | None, choose: Chooser) -> list[torch.Tensor]:
    """Run ``prior``'s sequential computation over every level, ``choose`` picking each code in raster order.

    Returns the chosen codes, one ``(b, *grid_l)`` int64 tensor per level, top first.
    """
    if labels is not None:
        prior.layout.check_labels(labels, batch)
    if isinstance(prior, PixelCNNPrior):
        return _pixelcnn_pass(prior, batch, labels, choose)
    if isinstance(prior, TransformerPrior):
        return _transformer_pass(prior, batch, labels, choose)
    raise TypeError(f"no sequential pass for {type(prior).__name__}; entropy coding supports the shipped priors.")


def _pixelcnn_pass(
    prior: PixelCNNPrior, batch: int, labels: torch.Tensor | None, choose: Chooser
) -> list[torch.Tensor]:
    device = prior.levels[0].embed.weight.device
    labels = None if labels is None else labels.to(device).long()
    out: list[torch.Tensor] = []
    for level, net in enumerate(prior.levels):
        position = iter(range(prior.layout.level_lengths[level]))  # sample_cached visits positions in raster order

        def draw(logits: torch.Tensor, level: int = level, position=position) -> torch.Tensor:
            return choose(level, next(position), logits).to(logits.device)

        out.append(net.sample_cached(batch, labels, out[-1] if out else None, draw))
    return out


def _transformer_pass(
    prior: TransformerPrior, batch: int, labels: torch.Tensor | None, choose: Chooser
) -> list[torch.Tensor]:
    tokens, layout = prior.tokens, prior.layout
    device = prior._allowed.device
    step = prior.model(input_ids=tokens.prefix(labels, batch, device), use_cache=True)
    ids = []
    for level, (length, k) in enumerate(zip(layout.level_lengths, layout.codebook_sizes, strict=True)):
        lo = tokens.offset(level)
        for position in range(length):
            code = choose(level, position, step.logits[:, -1, lo : lo + k]).to(device).long()
            ids.append(code + lo)
            step = prior.model(input_ids=ids[-1][:, None], past_key_values=step.past_key_values, use_cache=True)
    return tokens.to_codes(torch.stack(ids, dim=1))


def encode_codes(
    prior: CodePrior,
    levels: Sequence[torch.Tensor],
    labels: torch.Tensor | None,
    encoder: CodeEncoder,
    end_code: int | None = None,
) -> None:
    """Code one chunk of items (``levels``: one ``(b, *grid_l)`` tensor per level) into ``encoder``.

    Class labels (a conditional prior) go first, each uniform over the classes; then every position
    in order, its codes for the whole chunk at once. With ``end_code``, an item's positions after
    its first end code must all be end codes (as a padded speech corpus has them) and are not stored.
    """
    batch = prior.layout.check(levels, labels)
    if labels is not None:
        encoder.encode_uniform(labels, prior.layout.num_classes)
    flat = [g.flatten(1).long().cpu() for g in levels]
    done = past_end_code(flat, end_code) if end_code is not None else None

    def choose(level: int, position: int, logits: torch.Tensor) -> torch.Tensor:
        codes = flat[level][:, position]
        table = probabilities(logits)
        live = np.ones(batch, dtype=bool) if done is None else ~done[:, position]
        encoder.encode(codes.numpy()[live], table[live])
        return codes

    sequential_pass(prior, batch, labels, choose)


def past_end_code(flat: Sequence[torch.Tensor], end_code: int) -> np.ndarray:
    """``(b, n)`` bool: whether an item's end code came before each position (not coded); raises if codes follow it."""
    if len(flat) != 1:
        raise ValueError("end codes are for single-level sequences; this layout has several levels.")
    codes = flat[0].numpy()
    seen = np.cumsum(codes == end_code, axis=1) > 0
    before = np.zeros_like(seen)
    before[:, 1:] = seen[:, :-1]
    if (codes[before] != end_code).any():
        raise ValueError(f"after an item's end code ({end_code}) every position must hold the end code too.")
    return before


def decode_codes(
    prior: CodePrior, batch: int, decoder: CodeDecoder, end_code: int | None = None
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Decode one chunk of ``batch`` items written by :func:`encode_codes`: codes per level and labels (or None)."""
    labels = None
    if prior.layout.num_classes:
        labels = torch.from_numpy(decoder.decode_uniform(batch, prior.layout.num_classes))
    done = torch.zeros(batch, dtype=torch.bool) if end_code is not None else None

    def choose(level: int, position: int, logits: torch.Tensor) -> torch.Tensor:
        table = probabilities(logits)
        if done is None:
            return torch.from_numpy(decoder.decode(table))
        live = ~done.numpy()
        codes = np.full(batch, end_code, dtype=np.int64)
        codes[live] = decoder.decode(table[live])
        done.logical_or_(torch.from_numpy(codes == end_code))
        return torch.from_numpy(codes)

    levels = sequential_pass(prior, batch, labels, choose)
    return [g.cpu() for g in levels], labels
