"""Two CPU processes (gloo) keep identical codebooks, equal to one process on the joined batches; with DDP's
averaged gradients every kind's parameters get the gradient one process would (LFQ's batch entropy included)."""

from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tokenizers_vq import FSQConfig, LFQConfig, RVQConfig, SimVQConfig, VQConfig, build_quantizer

STEPS = 12
# K larger than the data's clusters, so k-means init, EMA updates and dead-code restarts all happen.
VQ = VQConfig(dim=6, codebook_size=48, update="ema", init="kmeans", dead_code="restart", decay=0.8, seed=7)
CONFIGS = {
    "vq": VQ,
    "rvq": RVQConfig(VQ, num_levels=2, dropout_prob=0.5),
    "vq-rotation": VQConfig(dim=6, codebook_size=48, update="loss", gradient="rotation", seed=7),
    "fsq": FSQConfig(dim=6, levels=[5, 4, 3]),
    "residual-fsq": RVQConfig(FSQConfig(dim=6, levels=[5, 5]), num_levels=2, dropout_prob=0.5),
    "lfq": LFQConfig(dim=6, codebook_size=16, temperature=0.1),  # at 0.01 float32 rounding alone differs by 1e-3
    "bsq": LFQConfig(dim=6, codebook_size=16, geometry="sphere"),
    "simvq": SimVQConfig(dim=6, codebook_size=48, gradient="rotation", seed=7),
}
WITH_PARAMETERS = ["vq-rotation", "fsq", "lfq", "bsq", "simvq", "residual-fsq"]


def make_quantizer(kind: str):
    torch.manual_seed(0)  # projections are nn.Linear layers
    return build_quantizer(CONFIGS[kind])


def batches():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 6, generator=gen) * 4
    for _ in range(STEPS):
        yield centres[torch.randint(10, (96,), generator=gen)] + 0.3 * torch.randn(96, 6, generator=gen)


def _finish() -> None:
    """End a worker once its results are saved: meet the other rank, close the group, and leave at once.

    Leaving by ``os._exit`` skips the interpreter's teardown, where gloo's threads of a destroyed group
    were sometimes still being joined and the process aborted ("terminate called without an active
    exception") after it had done everything right; the results are on disk by then.
    """
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _worker(rank: int, world: int, init_file: str, out_dir: str, kind: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    q = make_quantizer(kind)
    for step, batch in enumerate(batches()):
        shard = batch.chunk(world)[rank]
        if rank == 1 and step == 3:
            shard = shard[:0]  # an empty shard on one rank must not desynchronise anything
        q(shard)
        books = torch.cat([p.detach().reshape(-1) for p in q.state_dict().values() if p.is_floating_point()])
        gathered = [torch.empty_like(books) for _ in range(world)]
        dist.all_gather(gathered, books)
        if not all(torch.equal(gathered[0], g) for g in gathered):
            raise AssertionError(f"codebooks differ across ranks after step {step}")
    torch.save(q.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    _finish()


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_ddp_codebooks_identical_and_equal_single_process(tmp_path, kind):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path), kind), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    single = make_quantizer(kind)
    for step, batch in enumerate(batches()):
        if step == 3:
            batch = batch.chunk(world)[0]  # rank 1's shard was empty at this step
        single(batch)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0, msg=f"{key} differs across ranks")
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-5, atol=1e-5, msg=f"{key} differs from one process")


def _loss(q, x: torch.Tensor) -> torch.Tensor:
    out = q(x)
    return out.loss + out.quantized.square().mean()  # the quantizer's terms and a stand-in reconstruction


def _gradient_worker(rank: int, world: int, init_file: str, out_dir: str, kind: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    q = make_quantizer(kind)
    for batch in list(batches())[:3]:
        q.zero_grad()
        _loss(q, batch.chunk(world)[rank]).backward()
        for p in q.parameters():  # what DDP does: the mean of the ranks' gradients
            dist.all_reduce(p.grad)
            p.grad /= world
        with torch.no_grad():
            for p in q.parameters():
                p -= 0.1 * p.grad
    grads = {name: p.grad for name, p in q.named_parameters()}
    torch.save({"grads": grads, "state": q.state_dict()}, os.path.join(out_dir, f"grad{rank}.pt"))
    _finish()


@pytest.mark.parametrize("kind", WITH_PARAMETERS)
def test_ddp_gradients_equal_single_process(tmp_path, kind):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    world = 2
    mp.spawn(_gradient_worker, args=(world, str(tmp_path / "init"), str(tmp_path), kind), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"grad{r}.pt") for r in range(world)]
    single = make_quantizer(kind)
    for batch in list(batches())[:3]:
        single.zero_grad()
        _loss(single, batch).backward()
        with torch.no_grad():
            for p in single.parameters():
                p -= 0.1 * p.grad
    assert ranks[0]["grads"], "the kind has parameters to compare"
    for name, p in single.named_parameters():
        torch.testing.assert_close(ranks[0]["grads"][name], ranks[1]["grads"][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0]["grads"][name], p.grad, rtol=1e-4, atol=1e-5, msg=f"{name}'s gradient")
    for key, value in single.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-4, atol=1e-6, msg=f"{key} differs")
