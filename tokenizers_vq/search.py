"""Nearest-codebook search in bounded memory, and seeded k-means built on it.

Dimension legend: ``n`` vectors, ``k`` codebook entries, ``d`` vector dimension.

Two exact engines give the same codes: our chunked search (a fused ``‖e‖² − 2 x·eᵀ`` product per
chunk of rows, then an argmin) and faiss's brute-force ``knn`` (the same product in cache-sized
blocks whose minimum is taken while the block is still in cache). On a CPU, faiss is faster for
large codebooks, where our chunk no longer fits the cache; ours is faster for small ones, where
faiss's fixed blocks and its copy into NumPy cost more than the search. ``VQTOK_SEARCH`` picks the
engine: ``auto`` (default: faiss where it wins and is installed), ``torch`` or ``faiss``.
"""

from __future__ import annotations

import functools
import math
import os

import torch

#: Bytes of the reusable distance buffer. 64 MiB keeps K = 65,536 searches at 256 rows per chunk
#: (each chunk is still a large matrix product) and the working memory far below 256 MiB.
DEFAULT_CHUNK_BYTES = 64 * 2**20
#: At most this many rows per chunk, so small codebooks work on cache-sized pieces.
MAX_CHUNK_ROWS = 4096
#: ``auto`` hands CPU searches to faiss from this codebook size on (benchmarks/quantizer.py: faiss
#: wins at K = 8,192 and 65,536, ours at K = 512).
FAISS_MIN_CODES = 2048
SEARCH_ENGINES = ("auto", "torch", "faiss")


def search_engine() -> str:
    """The engine ``VQTOK_SEARCH`` asks for (``auto`` when unset); raises ``ValueError`` for another value."""
    engine = os.environ.get("VQTOK_SEARCH", "auto").strip().lower() or "auto"
    if engine not in SEARCH_ENGINES:
        raise ValueError(f"VQTOK_SEARCH must be one of {', '.join(SEARCH_ENGINES)}; got {engine!r}.")
    return engine


@functools.cache
def _faiss():
    """The faiss module, or None where it is not installed (looked up once: a failed import is not cheap)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _use_faiss(x: torch.Tensor, k: int) -> bool:
    engine = search_engine()
    if engine == "torch" or x.device.type != "cpu":
        return False
    if engine == "faiss":
        if _faiss() is None:
            raise ImportError("VQTOK_SEARCH=faiss needs faiss-cpu: pip install faiss-cpu (or unset VQTOK_SEARCH).")
        return True
    return k >= FAISS_MIN_CODES and _faiss() is not None


def _faiss_codes(x: torch.Tensor, codebook: torch.Tensor, cosine: bool) -> torch.Tensor:
    """faiss's exact brute-force search on the same threads as torch: the first nearest row, as ours."""
    faiss = _faiss()
    faiss.omp_set_num_threads(torch.get_num_threads())
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    xq = x.detach().float().contiguous().numpy()
    xb = codebook.detach().float().contiguous().numpy()
    _, index = faiss.knn(xq, xb, 1, metric=metric)
    return torch.from_numpy(index[:, 0]).to(torch.int64)


@torch.no_grad()
def nearest_codes(
    x: torch.Tensor,
    codebook: torch.Tensor,
    codebook_sq_norms: torch.Tensor | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    workspace: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Index of the nearest codebook row for every row of ``x``, without an ``n × k`` matrix.

    Euclidean: ``argmin_j ‖e_j‖² − 2 x·e_j`` (``‖x‖²`` is constant per row). Pass
    ``codebook_sq_norms=None`` with unit-norm inputs and codebook for cosine similarity
    (then the ``‖e_j‖²`` term is constant and dropped).

    Shapes: ``x`` ``(n, d)``, ``codebook`` ``(k, d)``, both float32; returns ``(n,)`` int64.
    E.g. ``x`` ``(65536, 64)`` against ``(65536, 64)`` uses one 64 MiB buffer of 256 rows.
    Pass the same ``workspace`` dict on every call to keep that buffer between calls: fresh pages
    cost as much as the argmin at small ``d``. On a CPU with ``k >= FAISS_MIN_CODES`` (and
    ``VQTOK_SEARCH`` not ``torch``) the search runs in faiss instead, to the same codes.
    """
    n, k = x.shape[0], codebook.shape[0]
    if n and _use_faiss(x, k):
        return _faiss_codes(x, codebook, cosine=codebook_sq_norms is None)
    codes = torch.empty(n, dtype=torch.int64, device=x.device)
    if n == 0:
        return codes
    rows = max(1, min(n, MAX_CHUNK_ROWS, chunk_bytes // (4 * k)))
    buf = workspace.get("distances") if workspace is not None else None
    if buf is None or buf.shape[0] < rows or buf.shape[1] != k or buf.device != x.device:
        buf = torch.empty(rows, k, dtype=torch.float32, device=x.device)
        if workspace is not None:
            workspace["distances"] = buf
    codebook_t = codebook.t()
    for start in range(0, n, rows):
        chunk = x[start : start + rows]
        dist = buf[: chunk.shape[0]]
        if codebook_sq_norms is None:
            torch.mm(chunk, codebook_t, out=dist)
            dist.neg_()
        else:
            # One fused pass: dist = ‖e‖² − 2 x·eᵀ written into the reused buffer.
            torch.addmm(codebook_sq_norms, chunk, codebook_t, beta=1.0, alpha=-2.0, out=dist)
        torch.argmin(dist, dim=1, out=codes[start : start + chunk.shape[0]])
    return codes


#: Largest codebook seeded by k-means++; larger ones start from random rows.
KMEANS_PP_MAX_K = 4096


def _kmeans_plus_plus(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (as scikit-learn does): at each step draw ``2 + ln k`` candidates
    with probability ∝ squared distance to the nearest centre, keep the one that lowers the total most."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = x.new_empty(k, x.shape[1])
    centroids[0] = x[first]
    min_d2 = ((x - x[first]) ** 2).sum(1)
    for i in range(1, k):
        weights = min_d2.cpu().double()
        if float(weights.sum()) <= 0:  # fewer distinct points than k: any row will do
            weights = torch.ones(n, dtype=torch.float64)
        picks = torch.multinomial(weights, trials, replacement=True, generator=gen).to(x.device)
        cand_d2 = torch.minimum(min_d2[None], torch.cdist(x[picks], x).pow_(2))  # (trials, n)
        best = int(cand_d2.sum(1).argmin())
        centroids[i] = x[picks[best]]
        min_d2 = cand_d2[best]
    return centroids


def kmeans(
    x: torch.Tensor, k: int, iters: int = 10, seed: int = 0, cosine: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with a seeded start: returns centroids ``(k, d)`` and cluster sizes ``(k,)``.

    Deterministic for a given ``x`` and ``seed``. Centroids start by k-means++ seeding (Arthur and
    Vassilvitskii 2007) for ``k <= KMEANS_PP_MAX_K``, which finds well-separated clusters that
    plain random starts merge; above that, at ``k`` distinct random rows (its ``k`` sequential
    passes would cost more than the search itself). Rows repeat, with a tiny seeded jitter, when ``n < k``. A cluster that empties keeps
    its previous centroid. With ``cosine`` the centroids are kept on the unit sphere.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans needs a non-empty (n, d) tensor; got shape {tuple(x.shape)}")
    x = x.float()
    n = x.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if n < k:
        start = torch.randint(n, (k,), generator=gen)
        jitter = torch.randn(k, x.shape[1], generator=gen).to(x.device) * 1e-3 * (x.std() + 1e-6)
        centroids = x[start.to(x.device)] + jitter
    elif k <= KMEANS_PP_MAX_K:
        centroids = _kmeans_plus_plus(x, k, gen)
    else:
        centroids = x[torch.randperm(n, generator=gen)[:k].to(x.device)].clone()
    if cosine:
        centroids = torch.nn.functional.normalize(centroids, dim=-1)
    counts = torch.zeros(k, device=x.device)
    for _ in range(max(1, iters)):
        norms = None if cosine else (centroids * centroids).sum(1)
        assign = nearest_codes(x, centroids, norms)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        new = torch.where(filled[:, None], sums / counts.clamp_min(1)[:, None], centroids)
        centroids = torch.nn.functional.normalize(new, dim=-1) if cosine else new
    return centroids, counts


@torch.no_grad()
def penalized_codes(distances: torch.Tensor, penalty: float | torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Code sequences that trade distance against code changes, by dynamic programming (Viterbi).

    For each row ``b`` returns the ``c_1..c_n`` minimising ``Σ_t distances[b, t, c_t] + penalty_b ×
    #{t : c_t ≠ c_{t-1}}``: a duration-penalised segmentation of a sequence into runs of one code, as
    Kamper & van Niekerk (2021) use on VQ-VAE and VQ-CPC codes to find phone-like segments. With
    ``penalty = 0`` it is the nearest code of every frame. ``relative``: ``penalty`` is in units of the
    row's mean distance to its nearest codes (its mean quantization error), so one value suits any
    feature scale; e.g. 2 on squared distances makes a code change cost twice an average frame's error.

    Shapes: ``distances`` ``(b, n, k)`` (e.g. squared Euclidean distances to the codebook),
    ``penalty`` a number or ``(b,)``, one per sequence; returns ``(b, n)`` int64. Time is ``O(n·k)``
    per row, memory ``b·n·k`` int32 back-pointers.
    """
    if distances.ndim != 3 or distances.shape[-1] < 1:
        raise ValueError(f"distances must be (b, n, k) with k >= 1; got shape {tuple(distances.shape)}.")
    b, n, k = distances.shape
    penalty = torch.as_tensor(penalty, dtype=torch.float32, device=distances.device).reshape(-1)
    if penalty.numel() == 1:
        penalty = penalty.expand(b)
    if penalty.numel() != b or not bool(torch.isfinite(penalty).all()) or bool((penalty < 0).any()):
        raise ValueError(f"penalty must be one finite value >= 0 or {b} of them; got {penalty.tolist()}.")
    codes = torch.empty(b, n, dtype=torch.int64, device=distances.device)
    if n == 0:
        return codes
    distances = distances.float()
    if relative:
        penalty = penalty * distances.min(dim=2).values.mean(dim=1)
    keep = torch.arange(k, dtype=torch.int32, device=distances.device).expand(b, k)
    back = torch.empty(b, n, k, dtype=torch.int32, device=distances.device)
    cost = distances[:, 0].clone()
    for t in range(1, n):
        best, arg = cost.min(dim=1)  # (b,)
        switch = best + penalty  # enter any code from the cheapest one
        stay = cost <= switch[:, None]  # (b, k); ties keep the code
        back[:, t] = torch.where(stay, keep, arg.to(torch.int32)[:, None])
        cost = torch.minimum(cost, switch[:, None]) + distances[:, t]
    current = cost.argmin(dim=1)
    rows = torch.arange(b, device=distances.device)
    for t in range(n - 1, -1, -1):
        codes[:, t] = current
        if t:
            current = back[rows, t, current].long()
    return codes
