"""Sampling speed of the priors: cached vs naive gated PixelCNN, and the transformer with and without its KV cache.

    python benchmarks/prior_sampling.py            # table
    python benchmarks/prior_sampling.py --json     # {"speedup": ..., "rows": [...], "machine": {...}}
    python benchmarks/prior_sampling.py --quick    # a smaller model and grid, for a smoke run

One 16×16 code grid (K = 512), batch 16, class-conditional, with random weights (speed does not
depend on training). The gated PixelCNN samples with its cache (every layer's activations computed
once per position) and with the naive loop (one full forward pass per code, as
rosinality/vq-vae-2-pytorch does), the same model and seed; the benchmark checks that both give
the same codes. The transformer (a Llama decoder from a config) runs ``generate()`` with and
without its KV cache. ``speedup`` is naive time / cached time of the PixelCNN.

Threads matter: the cached paths run many small operations, for which a second torch thread mostly
adds synchronisation (on a busy 2-core machine, 2 threads made cached sampling ~100x slower than 1);
compare runs with ``--threads 1`` and ``--threads 2``.
"""

from __future__ import annotations

import sys

import torch
from _cli import benchmark_parser, report
from _timing import machine, timed

from priors import CodeLayout, ConvNetConfig, PixelCNNPrior, SamplingConfig, TransformerConfig, TransformerPrior


def _sample(prior, labels, cached: bool, seed: int) -> tuple[float, list[torch.Tensor]]:
    seconds, out = timed(lambda: prior.sample(labels, sampling=SamplingConfig(seed=seed), cached=cached))
    return seconds, out.levels


def run(quick: bool = False, naive: bool = True, naive_transformer: bool = True) -> dict:
    """Time cached (and, with ``naive``/``naive_transformer``, uncached) sampling; the result ``--json`` prints."""
    side, batch, codes = (8, 4, 64) if quick else (16, 16, 512)
    layout = CodeLayout(shapes=[(side, side)], codebook_sizes=[codes], num_classes=10)
    pix_cfg = (
        ConvNetConfig(channels=32, num_layers=4)
        if quick
        else ConvNetConfig(channels=64, num_layers=8, attention_every=4)
    )
    tf_cfg = (
        TransformerConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=192)
        if quick
        else TransformerConfig(hidden_size=160, num_layers=4, num_heads=4, intermediate_size=480)
    )
    torch.manual_seed(0)
    labels = torch.arange(batch) % 10
    rows = []
    pixelcnn = PixelCNNPrior(layout, pix_cfg).eval()
    _sample(pixelcnn, labels[:2], True, 0)  # warm-up (allocator, kernels)
    cached_s, cached_codes = _sample(pixelcnn, labels, True, 1)
    naive_s, same = None, None
    if naive:
        naive_s, naive_codes = _sample(pixelcnn, labels, False, 1)
        same = all(torch.equal(a, b) for a, b in zip(cached_codes, naive_codes, strict=True))
    rows.append({"model": "gated PixelCNN", "parameters": sum(p.numel() for p in pixelcnn.parameters()),
                 "cached_seconds": cached_s, "naive_seconds": naive_s,
                 "speedup": None if naive_s is None else naive_s / cached_s, "same_codes": same})  # fmt: skip

    transformer = TransformerPrior(layout, tf_cfg).eval()
    _sample(transformer, labels[:2], True, 0)
    kv_s, _ = _sample(transformer, labels, True, 1)
    full_s = _sample(transformer, labels, False, 1)[0] if naive_transformer else None
    rows.append({"model": "transformer (Llama)", "parameters": sum(p.numel() for p in transformer.parameters()),
                 "cached_seconds": kv_s, "naive_seconds": full_s,
                 "speedup": None if full_s is None else full_s / kv_s, "same_codes": None})  # fmt: skip
    for row in rows:
        row["codes_per_second"] = batch * side * side / row["cached_seconds"]
    return {
        "grid": [side, side],
        "batch": batch,
        "codebook_size": codes,
        "speedup": rows[0]["speedup"],
        "transformer_speedup": rows[1]["speedup"],
        "rows": rows,
        "machine": machine(),
    }


def print_table(result: dict) -> None:
    side, batch, codes = result["grid"][0], result["batch"], result["codebook_size"]
    print(f"sampling one {side}x{side} grid (K={codes}), batch {batch}, class-conditional; "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip
    header = f"{'model':<22}{'params':>12}{'cached s':>12}{'naive s':>12}{'speedup':>10}  same codes"
    print(header)
    for r in result["rows"]:
        naive = "-" if r["naive_seconds"] is None else f"{r['naive_seconds']:.2f}"
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        same = "-" if r["same_codes"] is None else ("yes" if r["same_codes"] else "NO")
        print(f"{r['model']:<22}{r['parameters']:>12,}{r['cached_seconds']:>12.2f}{naive:>12}{speedup:>10}  {same}")


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "8×8 grid, a small model: a smoke run in seconds", output="the table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--skip-naive-transformer", action="store_true", help="time the transformer with its cache only"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report(run(args.quick, naive_transformer=not args.skip_naive_transformer), args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
