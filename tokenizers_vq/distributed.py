"""Collective helpers that are no-ops in a single process.

Every rank must call these in the same order with tensors of the same shape (except
``all_gather_rows``, which accepts a different number of rows per rank).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place and return it."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_sum_autograd(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks as a new tensor whose gradient is summed over ranks too.

    A loss built from it on every rank has, on each rank, the gradient of the sum of all ranks' losses
    with respect to that rank's inputs, so DDP's average of gradients is the gradient one process
    would get from a term (such as a batch entropy) of the joined batch.
    """
    if not is_distributed():
        return t
    return _SumOverRanks.apply(t)


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce`` (sum) forward and backward, both synchronous.

    Not ``torch.distributed.nn.functional.all_reduce``: its work can still be pending when a process
    group is destroyed, and a process that exits then aborts ("terminate called without an active
    exception"); tests/tokenizers_vq/test_distributed.py caught it under load.
    """

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.detach().clone().contiguous()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Copy rank ``src``'s ``t`` into every rank's ``t`` in place and return it."""
    if is_distributed():
        dist.broadcast(t, src=src)
    return t


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``x`` (shape ``(n_r, d)``, ``n_r`` may differ) from all ranks in rank order."""
    if not is_distributed():
        return x
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes_int = [int(s) for s in sizes]
    longest = max(sizes_int)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes_int]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes_int, strict=True)])
