"""End-to-end speed: training the image VQ-VAE beside rosinality's, tokenizing images and speech, sampling priors.

    python benchmarks/end_to_end.py                  # the table (about two minutes on 2 CPU cores)
    python benchmarks/end_to_end.py --json           # one JSON object
    python benchmarks/end_to_end.py --quick          # small models and inputs: a smoke run in seconds
    python benchmarks/end_to_end.py --threads 2 --device cuda --image-size 64 --batch-size 64

1. Training throughput, images per second of one optimizer step (forward, backward, Adam step) on
   a fixed batch of random RGB images in [-1, 1]: rosinality/vq-vae-2-pytorch's ``VQVAE`` (our
   re-implementation in ``peers/rosinality_vqvae.py``, its training loss MSE + 0.25 × latent loss)
   beside our ``ImageTokenizer`` with the same hyperparameters (width 128, two residual blocks of
   32 channels, K = 512 codes of 64 dimensions per level, EMA decay 0.99, bottom level 4× down):
   as a two-level VQ-VAE-2 (top level 8× down, like the peer) and as a one-level VQ-VAE. Ours runs
   as its recipes train it (k-means initialisation, done in the warm-up step, and dead-code
   restarts). The models take turns step by step, so load on a shared machine falls on all alike;
   medians of ``--steps`` steps after one warm-up step each.
2. Tokenizing throughput: ``image_tokenizer.run`` (encode and decode images/s) and
   ``speech_tokenizer.run`` (real-time factors) of the sibling benchmarks.
3. Prior sampling: ``prior_sampling.run``, the cached gated PixelCNN and the KV-cached transformer
   (``--naive`` adds the uncached loops, over a minute more).

Speed does not depend on the weights or the data, so every model is freshly initialised.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import image_tokenizer
import prior_sampling
import speech_tokenizer
import torch
from _cli import benchmark_parser, report
from _timing import interleaved_medians, machine
from peers.rosinality_vqvae import VQVAE, training_loss

from modalities.image import ImageTokenizer, ImageTokenizerConfig
from recipes.engine.results import format_table

# rosinality's VQVAE defaults (its keyword names), and a small version of them for --quick
PEER_ARCH = {"channel": 128, "n_res_block": 2, "n_res_channel": 32, "embed_dim": 64, "n_embed": 512, "decay": 0.99}
QUICK_ARCH = {"channel": 32, "n_res_block": 1, "n_res_channel": 8, "embed_dim": 16, "n_embed": 64, "decay": 0.99}
LR = 3e-4  # train_vqvae.py's Adam learning rate


def ours_config(arch: dict[str, Any], kind: str, in_channels: int = 3) -> ImageTokenizerConfig:
    """Our tokenizer with the peer's hyperparameters: ``kind`` "vqvae2" (two levels, 4× and 8× down) or "vqvae"."""
    return ImageTokenizerConfig(
        kind=kind,
        num_levels=2 if kind == "vqvae2" else 1,
        in_channels=in_channels,
        hidden_channels=arch["channel"],
        res_channels=arch["n_res_channel"],
        num_res_blocks=arch["n_res_block"],
        downsample=4,
        codebook_size=arch["n_embed"],
        code_dim=arch["embed_dim"],
        decay=arch["decay"],
    )


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _step(model: torch.nn.Module, loss: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> Callable:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(images).backward()
        optimizer.step()

    return step


def training(batch_size: int, image_size: int, steps: int, device: torch.device, quick: bool) -> dict[str, Any]:
    """Images/s of a training step of the peer's VQVAE and of our VQ-VAE-2 and VQ-VAE at the same size and batch."""
    arch = QUICK_ARCH if quick else PEER_ARCH
    torch.manual_seed(0)
    images = (torch.rand(batch_size, 3, image_size, image_size) * 2 - 1).to(device)
    peer = VQVAE(in_channel=3, **arch).to(device).train()
    ours2 = ImageTokenizer(ours_config(arch, "vqvae2")).to(device).train()
    ours1 = ImageTokenizer(ours_config(arch, "vqvae")).to(device).train()
    models: dict[str, tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor], list[list[int]]]] = {
        "rosinality VQVAE (peer)": (
            peer, lambda x: training_loss(peer, x), [[image_size // 8] * 2, [image_size // 4] * 2]
        ),
        "ours VQ-VAE-2": (ours2, lambda x: ours2(x).loss, [list(s) for s in ours2.level_shapes(image_size, image_size)]),
        "ours VQ-VAE": (ours1, lambda x: ours1(x).loss, [list(s) for s in ours1.level_shapes(image_size, image_size)]),
    }  # fmt: skip
    medians = interleaved_medians(
        {name: _step(m, loss, images) for name, (m, loss, _) in models.items()}, steps, device
    )
    peer_rate = batch_size / medians["rosinality VQVAE (peer)"]
    rows = []
    for name, (model, _, grids) in models.items():
        rate = batch_size / medians[name]
        rows.append(
            {
                "model": name,
                "code_grids": grids,
                "trainable_parameters": _trainable(model),
                "ms_per_step": round(medians[name] * 1e3, 2),
                "images_per_second": round(rate, 1),
                "relative_to_peer": round(rate / peer_rate, 3),
            }
        )
    print("  measured training throughput", file=sys.stderr, flush=True)
    return {"batch_size": batch_size, "image_size": image_size, "steps": steps, "rows": rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    quick = args.quick
    steps = args.steps or (2 if quick else 10)
    repeats = 1 if quick else 3
    result: dict[str, Any] = {"quick": quick, "machine": machine(device)}
    result["training"] = training(args.batch_size or (4 if quick else 32), args.image_size, steps, device, quick)
    with torch.inference_mode():
        result["image_tokenizing"] = image_tokenizer.run(4 if quick else 64, repeats, device, quick)
        result["speech_tokenizing"] = speech_tokenizer.run(0.5 if quick else 10.0, repeats, device, quick, [])
        result["sampling"] = prior_sampling.run(quick, naive=args.naive, naive_transformer=args.naive)
    return result


def print_tables(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"{m['device']}, {m['threads']} torch threads, {m['cpu_count']} CPUs, torch {m['torch']}")
    t = result["training"]
    print(f"\ntraining: {t['image_size']}x{t['image_size']} RGB, batch {t['batch_size']}, forward + backward + Adam step"
          f" (median of {t['steps']} steps, models in turns)")  # fmt: skip
    rows = [[r["model"], "+".join(f"{a}x{b}" for a, b in r["code_grids"]), r["trainable_parameters"],
             round(r["ms_per_step"]), round(r["images_per_second"]), f"{r['relative_to_peer']:.2f}x"] for r in t["rows"]]  # fmt: skip
    print(format_table(["model", "codes", "parameters", "ms/step", "images/s", "vs peer"], rows))
    it = result["image_tokenizing"]
    print(f"\nimage tokenizing (median of {it['repeats']} calls)")
    rows = [[r["model"], r["input"], r["batch_size"], round(r["encode_images_per_s"]), round(r["decode_images_per_s"])]
            for r in it["rows"]]  # fmt: skip
    print(format_table(["model", "input", "batch", "encode images/s", "decode images/s"], rows))
    st = result["speech_tokenizing"]
    print(f"\nspeech tokenizing, {st['rows'][0]['audio_seconds']} s of audio: times faster than real time")
    rows = [[r["model"], round(r["bitrate"]), *(round(1 / r[k]) for k in ("encode_rtf", "decode_mel_rtf", "decode_wave_rtf"))]
            for r in st["rows"]]  # fmt: skip
    print(format_table(["model", "bit/s", "encode", "decode to log-mel", "decode to waveform"], rows))
    s = result["sampling"]
    print(f"\nprior sampling: {s['batch']} grids of {s['grid'][0]}x{s['grid'][1]} codes (K = {s['codebook_size']})")
    rows = [[r["model"], r["parameters"], round(r["cached_seconds"] * 1e3), round(r["codes_per_second"]),
             None if r["naive_seconds"] is None else round(r["naive_seconds"] * 1e3)] for r in s["rows"]]  # fmt: skip
    print(format_table(["prior", "parameters", "cached ms", "codes/s", "naive ms"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "small models and inputs, few repeats (a smoke run)", output="the tables")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default 32; 4 with --quick)")
    parser.add_argument("--image-size", type=int, default=32, help="training image side, a multiple of 8 (default 32)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per model (default 10)")
    parser.add_argument("--naive", action="store_true", help="also time uncached sampling (slow)")
    args = parser.parse_args(argv)
    if args.image_size < 8 or args.image_size % 8:
        parser.error(f"--image-size must be a positive multiple of 8 (both models go 8x down); got {args.image_size}")
    for name in ("threads", "batch_size", "steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    report(run(args), args.json, print_tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
