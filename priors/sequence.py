"""A causal transformer over variable-length id sequences: a Llama built from a config, padding and scoring.

Dimension legend: ``b`` batch, ``n`` tokens of the longest sequence in the batch, ``V`` vocabulary size.

:class:`~priors.transformer.TransformerPrior` models fixed grids of codes. Token streams whose
length varies (speech units, unit-BPE tokens, mixed text + image + audio sequences from a
:class:`~tokenizers_vq.token_space.TokenSpace`) are right-padded into a batch and scored with an
attention mask; the model is a plain ``LlamaForCausalLM`` that ``AutoModelForCausalLM`` loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from priors.transformer import TransformerConfig


def build_causal_lm(
    vocab_size: int, max_length: int, config: TransformerConfig, bos: int, eos: int, pad: int
) -> LlamaForCausalLM:
    """A fresh ``LlamaForCausalLM`` with ``vocab_size`` ids, sized by ``config`` (nothing is downloaded).

    ``max_length`` is the longest sequence it is meant for (rotary positions extrapolate past it).
    """
    if vocab_size < 2 or max_length < 2:
        raise ValueError(f"a sequence model needs vocab_size >= 2 and max_length >= 2; got {vocab_size}, {max_length}.")
    c = config
    hf = LlamaConfig(vocab_size=vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                     num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_heads,
                     max_position_embeddings=max_length, attention_dropout=c.attention_dropout, bos_token_id=bos,
                     eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=False)  # fmt: skip
    return LlamaForCausalLM(hf)


def pad_sequences(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into ``ids`` ``(b, n)`` int64 and an attention ``mask`` ``(b, n)`` (1 on real tokens)."""
    if not sequences or any(len(s) < 2 for s in sequences):
        raise ValueError("pad_sequences needs at least one sequence, each of two or more ids (e.g. <bos> ... <eos>).")
    n = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), n), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), n), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def token_nll(
    model: LlamaForCausalLM, ids: torch.Tensor, mask: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """NLL in nats of every token after the first, ``(b, n - 1)``; 0 at padding.

    ``allowed`` ``(b, n - 1, V)`` bool, when given, renormalises each prediction over the ids allowed
    there (what a constrained sampler draws from), e.g. :meth:`priors.grammar.SegmentGrammar.masks`.
    """
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (b, n-1, V): position i predicts i+1
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(device), float("-inf"))
    target = ids[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (b, n-1)
    # where, not a product: a padding position may have no allowed id (its NLL is inf or NaN, and dropped).
    return torch.where(mask[:, 1:].bool(), nll, torch.zeros_like(nll))


def lm_nll_sum(
    model: LlamaForCausalLM, sequences: Sequence[Sequence[int]], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL in nats of a batch of id lists, and the number of tokens it predicts (both 0-d, on the model's device).

    The parts of :func:`lm_loss`, for callers that divide by another count, e.g. the predicted tokens of
    a whole global batch of which ``sequences`` is one rank's share.
    """
    ids, mask = pad_sequences(sequences, pad)
    nll = token_nll(model, ids, mask)
    return nll.sum(), mask[:, 1:].sum().to(nll.device)


def lm_loss(model: LlamaForCausalLM, sequences: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """Mean NLL in nats per predicted token of a batch of id lists (the training objective, full softmax)."""
    total, tokens = lm_nll_sum(model, sequences, pad)
    return total / tokens


@torch.no_grad()
def sequence_nll(
    model: LlamaForCausalLM,
    sequences: Sequence[Sequence[int]],
    pad: int,
    batch_size: int = 64,
    allowed: Callable[[Sequence[int], int], torch.Tensor] | None = None,
) -> list[np.ndarray]:
    """Per-token NLL in nats of each sequence, one ``(len - 1,)`` float64 array each (eval mode, no gradients).

    ``allowed(ids, n)``, when given, returns the ``(n - 1, V)`` mask of one sequence padded to ``n``
    (e.g. :meth:`priors.grammar.SegmentGrammar.masks`), and each prediction is renormalised over it.
    """
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            ids, mask = pad_sequences(chunk, pad)
            masks = None if allowed is None else torch.stack([allowed(s, ids.shape[1]) for s in chunk])
            nll = token_nll(model, ids, mask, masks).double().cpu().numpy()
            out += [row[: len(s) - 1] for row, s in zip(nll, chunk, strict=True)]
    finally:
        model.train(was_training)
    return out
