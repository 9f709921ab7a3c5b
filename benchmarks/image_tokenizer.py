"""Image tokenizer throughput: images per second to encode (pixels → codes) and decode (codes → pixels).

    python benchmarks/image_tokenizer.py                 # table
    python benchmarks/image_tokenizer.py --json          # {"rows": [...], "machine": {...}}
    python benchmarks/image_tokenizer.py --quick         # small models and batches, for a smoke run
    python benchmarks/image_tokenizer.py --device cuda   # on a GPU

A VQ-VAE and a two-level VQ-VAE-2 run on 28×28 grey (MNIST-sized) and 32×32 RGB (CIFAR-sized)
batches of random uint8 images; speed does not depend on the weights, so the models are freshly
initialised. Encode and decode are timed separately, each over ``--repeats`` runs after a warm-up,
and the median is reported. On 28×28 the VQ-VAE-2 uses ``downsample=2`` (7×7 top, 14×14 bottom),
since 28 is not a multiple of 8.
"""

from __future__ import annotations

import sys

import torch
from _cli import add_repeats_and_device, benchmark_parser, median_of, parse_with_defaults, print_heading, report
from _timing import machine, median_seconds

from modalities.image import ImageTokenizer, ImageTokenizerConfig

# (name, image shape (c, h, w), config overrides)
CASES = [
    ("vqvae", (1, 28, 28), {"kind": "vqvae", "downsample": 4}),
    ("vqvae2", (1, 28, 28), {"kind": "vqvae2", "num_levels": 2, "downsample": 2}),
    ("vqvae", (3, 32, 32), {"kind": "vqvae", "downsample": 4}),
    ("vqvae2", (3, 32, 32), {"kind": "vqvae2", "num_levels": 2, "downsample": 4}),
]
QUICK = {"hidden_channels": 32, "res_channels": 8, "num_res_blocks": 1, "codebook_size": 64, "code_dim": 16}


def run(batch_size: int, repeats: int, device: torch.device, quick: bool) -> dict:
    torch.manual_seed(0)
    rows = []
    for name, (c, h, w), overrides in CASES:
        config = ImageTokenizerConfig(in_channels=c, init="random", **overrides, **(QUICK if quick else {}))
        tok = ImageTokenizer(config).to(device).eval()
        images = torch.randint(0, 256, (batch_size, c, h, w), dtype=torch.uint8, device=device)
        codes = tok.encode(images)
        encode_s = median_seconds(lambda tok=tok, images=images: tok.encode(images), repeats, device)
        decode_s = median_seconds(lambda tok=tok, codes=codes: tok.decode(codes), repeats, device)
        rows.append(
            {
                "model": name,
                "input": f"{h}x{w}x{c}",
                "batch_size": batch_size,
                "code_grids": [list(s) for s in codes.shapes],
                "parameters": sum(p.numel() for p in tok.parameters()),
                "encode_ms": round(encode_s * 1e3, 3),
                "decode_ms": round(decode_s * 1e3, 3),
                "encode_images_per_s": round(batch_size / encode_s, 1),
                "decode_images_per_s": round(batch_size / decode_s, 1),
            }
        )
        print(f"  measured {name} on {h}x{w}x{c}", file=sys.stderr, flush=True)
    return {"rows": rows, "machine": machine(device), "quick": quick, "repeats": repeats}


def print_table(result: dict) -> None:
    print_heading(
        f"{'model':<7} {'input':<9} {'batch':>5} {'codes':<14} {'params':>9} {'encode img/s':>13} {'decode img/s':>13}",
        median_of(result),
    )
    for r in result["rows"]:
        grids = "+".join(f"{a}x{b}" for a, b in r["code_grids"])
        print(
            f"{r['model']:<7} {r['input']:<9} {r['batch_size']:>5} {grids:<14} {r['parameters']:>9,} "
            f"{r['encode_images_per_s']:>13,.0f} {r['decode_images_per_s']:>13,.0f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = benchmark_parser(__doc__, "small models, batch 8 and 2 repeats (smoke run)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per call (default 64; 8 with --quick)")
    add_repeats_and_device(parser, repeats=7)
    args = parse_with_defaults(parser, argv, batch_size=(64, 8), repeats=(7, 2))
    with torch.inference_mode():
        result = run(args.batch_size, args.repeats, torch.device(args.device), args.quick)
    report(result, args.json, print_table)


if __name__ == "__main__":
    main()
