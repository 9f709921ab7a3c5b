"""Quantizer speed and memory: tokenizers_vq's VectorQuantizer beside vector-quantize-pytorch.

    python benchmarks/quantizer.py            # table
    python benchmarks/quantizer.py --json     # {"rows": [...], "machine": {...}}
    python benchmarks/quantizer.py --quick    # smaller shapes, for a smoke run

For each shape (N vectors, D dims, K codes) and mode ("train": forward + backward with the EMA
update; "infer": codes only), both implementations run interleaved (ours, peer, ours, peer, ...)
and the median time is reported, with the peak extra resident memory of one call. Both use their
defaults for an EMA codebook without k-means initialisation or restarts. Codes only also runs
faiss-cpu's exact brute-force search (``faiss.knn``, top 1, the same threads) on the same inputs
and codebook (``faiss_ms``), and our own chunked search with faiss turned off (``torch_search_ms``,
``VQTOK_SEARCH=torch``): ours hands large codebooks to faiss (tokenizers_vq/search.py). ``roofline_fraction`` is
the distance computation's flops (2·N·K·D) over the time, divided by this machine's measured
float32 matrix-product rate. The peer is skipped where its N × K distance matrix would exceed
4 GiB (it materialises it).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable

from _cli import benchmark_parser, print_heading, report

SHAPES = [(32768, 64, 512), (16384, 256, 8192), (65536, 64, 65536)]
QUICK_SHAPES = [(4096, 64, 512), (2048, 256, 1024)]
PEER_LIMIT_BYTES = 4 * 2**30


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_mib(fn: Callable[[], object]) -> float | None:
    """Peak resident memory added while ``fn`` runs (Linux: resets VmHWM through clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    base = _status_mib("VmRSS:")
    fn()
    return max(0.0, _status_mib("VmHWM:") - base)


def matmul_gflops(torch) -> float:
    """The machine's float32 matrix-product rate: the best of 15 products of 2048 × 2048 matrices."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    out = torch.empty(2048, 2048)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(15):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t)
    return 2 * 2048**3 / min(times) / 1e9


def build(torch, impl: str, n: int, d: int, k: int):
    if impl == "ours":
        from tokenizers_vq import VectorQuantizer, VQConfig

        vq = VectorQuantizer(VQConfig(dim=d, codebook_size=k, init="random", dead_code="none"))

        def train(x):
            out = vq.train()(x)
            (out.quantized.sum() + out.loss).backward()

        def infer(x):
            with torch.no_grad():
                return vq.eval().encode(x)

        def fresh():
            vq._workspace.clear()

        def faiss_infer(x):
            import faiss

            faiss.omp_set_num_threads(torch.get_num_threads())
            return faiss.knn(x.reshape(n, d).numpy(), vq.codebook().detach().contiguous().numpy(), 1)[1]

        def torch_infer(x):
            os.environ["VQTOK_SEARCH"] = "torch"
            try:
                return infer(x)
            finally:
                os.environ.pop("VQTOK_SEARCH")

        return train, infer, fresh, faiss_infer, torch_infer

    else:
        from vector_quantize_pytorch import VectorQuantize

        vq = VectorQuantize(dim=d, codebook_size=k)

        def train(x):
            q, _, loss = vq.train()(x)
            (q.sum() + loss.sum()).backward()

        def infer(x):
            with torch.no_grad():
                return vq.eval()(x)[1]

        def fresh():
            pass  # keeps no buffers between calls

    return train, infer, fresh


def run(shapes, reps: int) -> dict:
    import torch
    from _timing import interleaved_medians  # imports torch: only after main() has set the malloc thresholds

    torch.manual_seed(0)
    peak = matmul_gflops(torch)
    rows = []
    for n, d, k in shapes:
        flops = 2 * n * k * d
        impls = ["ours"] + (["peer"] if n * k * 4 <= PEER_LIMIT_BYTES else [])
        fns = {impl: build(torch, impl, n, d, k) for impl in impls}
        faiss_infer, torch_infer = fns["ours"][3:]  # on our quantizer's codebook: the same codes
        for mode in ("train", "infer"):
            mem: dict[str, float | None] = {}
            x_train = torch.randn(1, n, d, requires_grad=True)
            x_infer = torch.randn(1, n, d)
            for impl in impls:  # warm-up, and one memory reading per implementation
                fn = fns[impl][0 if mode == "train" else 1]
                arg = x_train if mode == "train" else x_infer
                fns[impl][2]()  # drop kept buffers, so the reading includes them
                mem[impl] = peak_extra_mib(lambda fn=fn, arg=arg: fn(arg))
            calls = {
                impl: functools.partial(fns[impl][0 if mode == "train" else 1], x_train if mode == "train" else x_infer)
                for impl in impls
            }
            if mode == "infer":
                calls["faiss"] = functools.partial(faiss_infer, x_infer)
                calls["torch_search"] = functools.partial(torch_infer, x_infer)
                for extra in ("faiss", "torch_search"):
                    calls[extra]()  # warm-up
            medians = interleaved_medians(calls, reps if n * k < 2**31 else max(1, reps // 2), warm_up=False)
            ours = medians["ours"] * 1e3
            peer = medians["peer"] * 1e3 if "peer" in impls else None
            faiss_ms = medians["faiss"] * 1e3 if "faiss" in medians else None
            torch_ms = medians["torch_search"] * 1e3 if "torch_search" in medians else None
            rows.append(
                {
                    "shape": {"n": n, "d": d, "k": k},
                    "mode": mode,
                    "ours_ms": round(ours, 2),
                    "peer_ms": None if peer is None else round(peer, 2),
                    "speedup": None if peer is None else round(peer / ours, 2),
                    "faiss_ms": None if faiss_ms is None else round(faiss_ms, 2),
                    "vs_faiss": None if faiss_ms is None else round(faiss_ms / ours, 2),
                    "torch_search_ms": None if torch_ms is None else round(torch_ms, 2),
                    "vectors_per_s": round(n / ours * 1e3),
                    "roofline_fraction": round(flops / (ours / 1e3) / (peak * 1e9), 3),
                    "peak_mb": None if mem["ours"] is None else round(mem["ours"], 1),
                    "peer_peak_mb": None if mem.get("peer") is None else round(mem["peer"], 1),
                    "peer_note": None if peer is not None else "not run: needs an N x K distance matrix over 4 GiB",
                }
            )
            print(f"  measured {n}x{d} K={k} {mode}", file=sys.stderr, flush=True)
        del fns
    return {
        "machine": {
            "threads": torch.get_num_threads(),
            "matmul_gflops_fp32": round(peak, 1),
            "torch": torch.__version__,
        },
        "rows": rows,
    }


def print_table(result: dict) -> None:
    m = result["machine"]
    print_heading(
        f"{'N':>6} {'D':>4} {'K':>6} {'mode':<6} {'ours ms':>9} {'peer ms':>9} {'speedup':>8} {'faiss ms':>9} {'vs faiss':>8} {'torch ms':>9} {'Mvec/s':>7} {'roofline':>9} {'ours MiB':>9} {'peer MiB':>9}",
        f"float32 matmul rate: {m['matmul_gflops_fp32']} GFLOP/s, {m['threads']} threads, torch {m['torch']}",
    )
    for r in result["rows"]:
        s = r["shape"]

        def fmt(v, spec):
            return "n/a" if v is None else format(v, spec)

        print(
            f"{s['n']:>6} {s['d']:>4} {s['k']:>6} {r['mode']:<6} {r['ours_ms']:>9.1f} {fmt(r['peer_ms'], '.1f'):>9} "
            f"{fmt(r['speedup'], '.1f'):>8} {fmt(r['faiss_ms'], '.1f'):>9} {fmt(r['vs_faiss'], '.2f'):>8} "
            f"{fmt(r['torch_search_ms'], '.1f'):>9} {r['vectors_per_s'] / 1e6:>7.2f} {r['roofline_fraction']:>9.1%} "
            f"{fmt(r['peak_mb'], '.0f'):>9} {fmt(r['peer_peak_mb'], '.0f'):>9}"
        )


def main() -> None:
    parser = benchmark_parser(__doc__, "small shapes only (smoke run)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    # Fixed malloc thresholds make freed buffers leave the process, so each call's peak memory is
    # measured fresh instead of hidden in memory an earlier call left behind.
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        sys.exit(subprocess.run([sys.executable, *sys.argv], env=env).returncode)
    report(run(QUICK_SHAPES if args.quick else SHAPES, args.reps), args.json, print_table)


if __name__ == "__main__":
    main()
