"""Quantizer quality method by method: the same small VQ-VAE trained with our quantizer and with vector-quantize-pytorch's.

    python benchmarks/quantizer_quality.py                 # table
    python benchmarks/quantizer_quality.py --json          # {"rows": [{"method", "impl", "bits", "psnr", ...}], ...}
    python benchmarks/quantizer_quality.py --quick         # a smaller model, a few steps, under a minute
    python benchmarks/quantizer_quality.py --steps 3000    # longer training

One VQ-VAE (our ``ImageTokenizer``: 28×28 Fashion-MNIST to 7×7 codes) is trained once per method and
implementation at about 9 bits per code: VQ and SimVQ with K = 512, FSQ with levels 8·8·8, LFQ and
BSQ with 9 bits, VQ and SimVQ also with the rotation trick. For the peer ("vqp"), its module of the
same method (``VectorQuantize`` with and without ``rotation_trick``, ``FSQ``, ``LFQ`` with and without
``spherical``, ``SimVQ``) replaces our quantizer in the same model, built from the same seed (the
same encoder and decoder weights, and the same projections and SimVQ basis in the quantizer), fed the same batches in the same order; the two train in lockstep,
taking turns step by step, and each step is timed on its own. Each row reports
held-out PSNR and SSIM (on [0, 1]), the codebook usage and perplexity of the held-out codes, and
the training time. Without Fashion-MNIST's files (Debian's ``dataset-fashion-mnist``, or
``$VQTOK_DATA/fashion-mnist``) it trains on the bundled 16×16 digits (4×4 codes) and says so.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch
from _cli import benchmark_parser, print_heading, report
from _timing import machine

from modalities.image import ImageTokenizer, ImageTokenizerConfig, load_image_dataset
from modalities.image.metrics import per_image_metrics
from tokenizers_vq.metrics import code_stats

# Our tokenizer's fields for each method (on top of MODEL), at 9 bits per code.
METHODS: dict[str, dict[str, Any]] = {
    "vq": {"quantizer": "vq"},
    "vq-rotation": {"quantizer": "vq", "gradient": "rotation"},
    "fsq": {"quantizer": "fsq", "fsq_levels": [8, 8, 8]},
    "lfq": {"quantizer": "lfq"},
    "bsq": {"quantizer": "bsq"},
    "simvq": {"quantizer": "simvq"},
    "simvq-rotation": {"quantizer": "simvq", "gradient": "rotation"},
}
MODEL = {"hidden_channels": 32, "res_channels": 16, "num_res_blocks": 2, "codebook_size": 512, "code_dim": 64}
# --quick: a narrower model at 6 bits per code (FSQ 4·4·4), so that k-means and the entropy terms are cheap too.
QUICK_MODEL = {"hidden_channels": 16, "res_channels": 8, "num_res_blocks": 1, "codebook_size": 64, "code_dim": 16,
               "fsq_levels": [4, 4, 4]}  # fmt: skip
# (steps, training images, held-out images, batch size), full and --quick
SIZES = {False: (2000, 60000, 5000, 128), True: (12, 256, 128, 32)}
LR = 1e-3


def peer_module(method: str, cfg: ImageTokenizerConfig) -> torch.nn.Module:
    """vector-quantize-pytorch's module of ``method`` with the same sizes and weights as ours (β, entropy weight)."""
    import vector_quantize_pytorch as vqp

    d, k = cfg.code_dim, cfg.codebook_size
    if method in ("vq", "vq-rotation"):
        return vqp.VectorQuantize(dim=d, codebook_size=k, decay=cfg.decay, commitment_weight=cfg.beta,
                                  kmeans_init=True, threshold_ema_dead_code=1, rotation_trick=method == "vq-rotation")  # fmt: skip
    if method == "fsq":
        return vqp.FSQ(levels=list(cfg.fsq_levels), dim=d)
    if method in ("lfq", "bsq"):
        return vqp.LFQ(dim=d, codebook_size=k, entropy_loss_weight=cfg.lfq_entropy_weight,
                       commitment_loss_weight=cfg.beta, spherical=method == "bsq")  # fmt: skip
    return vqp.SimVQ(dim=d, codebook_size=k, rotation_trick=method == "simvq-rotation",
                     input_to_quantize_commit_loss_weight=cfg.beta)  # fmt: skip


def build(method: str, impl: str, model: dict[str, Any], seed: int) -> ImageTokenizer:
    """Our tokenizer for ``method``; for ``impl="vqp"`` the same one (same seed, same weights) with the peer's quantizer."""
    from peers.vector_quantize import PeerQuantizer

    torch.manual_seed(seed)
    fields = {**model, **METHODS[method]}
    if "fsq_levels" in model:
        fields["fsq_levels"] = model["fsq_levels"]
    tokenizer = ImageTokenizer(ImageTokenizerConfig(in_channels=1, **fields))
    if impl == "vqp":
        cfg = tokenizer.config
        torch.manual_seed(seed + 1)
        peer = peer_module(method, cfg)
        share_weights(tokenizer.quantizers[0], peer, SHARED[method.split("-")[0]])
        tokenizer.quantizers[0] = PeerQuantizer(peer, cfg.code_dim, cfg.num_codes)
    return tokenizer


# Our quantizer's tensors → the peer's of the same role, so both start from the same projections and
# codebook basis (VQ has none: both codebooks start from k-means of the first batch).
SHARED: dict[str, dict[str, str]] = {
    "vq": {},
    "fsq": {name: name for name in ("project_in.weight", "project_in.bias", "project_out.weight", "project_out.bias")},
    "simvq": {"basis": "frozen_codebook", "transform.weight": "code_transform.weight"},
}
SHARED["lfq"] = SHARED["bsq"] = SHARED["fsq"]


def share_weights(ours: torch.nn.Module, peer: torch.nn.Module, names: dict[str, str]) -> None:
    """Copy ``ours``' tensors into ``peer``'s (``names``: ours → peer); a missing name or shape is an error."""
    mine, theirs = ours.state_dict(), peer.state_dict()
    for src, dst in names.items():
        if src not in mine or dst not in theirs or mine[src].shape != theirs[dst].shape:
            raise RuntimeError(f"cannot share {src} -> {dst}: the peer's modules changed; update SHARED")
        theirs[dst] = mine[src].clone()
    peer.load_state_dict(theirs)


def train(tokenizers: dict[str, ImageTokenizer], images: torch.Tensor, order: torch.Tensor) -> dict[str, float]:
    """Adam over the batches ``order`` ``(steps, batch)`` indexes, for every tokenizer in lockstep.

    The implementations take turns step by step (the first one alternating), and each step is timed
    on its own, so whatever else the machine runs slows every implementation alike; returns each
    one's total seconds.
    """
    opts = {impl: torch.optim.Adam(tok.parameters(), lr=LR) for impl, tok in tokenizers.items()}
    seconds = dict.fromkeys(tokenizers, 0.0)
    impls = list(tokenizers)
    for tok in tokenizers.values():
        tok.train()
    for step, indices in enumerate(order):
        batch = images[indices]
        for impl in impls[step % len(impls) :] + impls[: step % len(impls)]:
            tok, opt = tokenizers[impl], opts[impl]
            start = time.perf_counter()
            out = tok(tok.preprocess(batch))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            if images.device.type == "cuda":
                torch.cuda.synchronize(images.device)
            seconds[impl] += time.perf_counter() - start
    return seconds


@torch.no_grad()
def evaluate(tokenizer: ImageTokenizer, images: torch.Tensor) -> dict[str, float]:
    """Held-out PSNR and SSIM of the reconstructions through the quantizer (eval mode), and code usage."""
    tokenizer.eval()
    scores, codes = [], []
    for batch in images.split(500):
        out = tokenizer(tokenizer.preprocess(batch))
        scores.append(per_image_metrics(batch.float() / 255, ((out.reconstruction + 1) / 2).clamp(0, 1)))
        codes.append(out.codes.levels[0].reshape(-1))
    stats = code_stats(torch.cat(codes), tokenizer.codebook_sizes[0])
    _, psnr, ssim = (torch.cat(parts) for parts in zip(*scores, strict=True))
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "usage": stats.usage,
            "perplexity": stats.perplexity}  # fmt: skip


def load_data(quick: bool) -> tuple[str, torch.Tensor, torch.Tensor]:
    _, n_train, n_eval, _ = SIZES[quick]
    try:
        train_set, test_set = (load_image_dataset("fashion_mnist", split) for split in ("train", "test"))
        name = "fashion_mnist"
    except FileNotFoundError as err:
        print(f"note: {err}\n  training on the bundled digits instead.", file=sys.stderr)
        train_set, test_set = (load_image_dataset("digits", split) for split in ("train", "test"))
        name = "digits"
    return name, train_set.images[:n_train], test_set.images[:n_eval]


def run(steps: int, methods: list[str], quick: bool, device: torch.device, seed: int = 0) -> dict[str, Any]:
    dataset, train_images, eval_images = (part.to(device) if i else part for i, part in enumerate(load_data(quick)))
    _, _, _, batch = SIZES[quick]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randint(len(train_images), (steps, batch), generator=gen)  # the same batches for every run
    model = QUICK_MODEL if quick else MODEL
    rows = []
    for method in methods:
        tokenizers = {impl: build(method, impl, model, seed).to(device) for impl in ("ours", "vqp")}
        seconds = train(tokenizers, train_images, order)
        for impl, tokenizer in tokenizers.items():
            figures = evaluate(tokenizer, eval_images)
            bits = math.log2(tokenizer.codebook_sizes[0])
            rows.append({"method": method, "impl": impl, "bits": round(bits, 2), **{k: round(v, 4) for k, v in
                         figures.items()}, "seconds": round(seconds[impl], 2)})  # fmt: skip
            print(f"  trained {method} ({impl}): {figures['psnr']:.2f} dB in {seconds[impl]:.1f} s", file=sys.stderr)
    return {
        "rows": rows,
        "dataset": dataset,
        "steps": steps,
        "batch_size": batch,
        "train_images": len(train_images),
        "eval_images": len(eval_images),
        "quick": quick,
        "machine": machine(device),
    }


def print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print_heading(
        f"{'method':<15} {'impl':<5} {'bits':>5} {'psnr':>7} {'ssim':>6} {'usage':>6} {'perplexity':>10} {'seconds':>8}"
        f" {'Δpsnr':>6} {'time':>6}",
        f"{result['dataset']}, {result['steps']} steps of {result['batch_size']} images, held-out "
        f"{result['eval_images']} images; {m['device']}, {m['threads']} threads, torch {m['torch']}",
        "Δpsnr: ours − peer (dB); time: ours / peer",
    )
    peer = {r["method"]: r for r in result["rows"] if r["impl"] == "vqp"}
    for r in result["rows"]:
        p = peer.get(r["method"])
        delta = f"{r['psnr'] - p['psnr']:+6.2f}" if r["impl"] == "ours" and p else ""
        ratio = f"{r['seconds'] / p['seconds']:6.2f}" if r["impl"] == "ours" and p else ""
        print(f"{r['method']:<15} {r['impl']:<5} {r['bits']:>5.1f} {r['psnr']:>7.2f} {r['ssim']:>6.3f} "
              f"{r['usage']:>6.3f} {r['perplexity']:>10.1f} {r['seconds']:>8.1f} {delta:>6} {ratio:>6}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "a smaller model at 6 bits, 12 steps on 256 images: under a minute")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per run (default 2000; 12 with --quick)"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        parser.error(f"--methods takes names from {', '.join(METHODS)}; got {args.methods!r}")
    steps = args.steps if args.steps is not None else SIZES[args.quick][0]
    if steps < 1:
        parser.error("--steps must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    report(run(steps, methods, args.quick, torch.device(args.device)), args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
