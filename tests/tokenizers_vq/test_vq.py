"""VectorQuantizer: assignments, gradients, EMA, initialisation, dead codes, state, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers_vq import IdentityQuantizer, VectorQuantizer, VQConfig
from tokenizers_vq.search import nearest_codes


def brute_force(x: np.ndarray, codebook: np.ndarray, cosine: bool) -> np.ndarray:
    x = x.astype(np.float64)
    codebook = codebook.astype(np.float64)
    if cosine:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        codebook = codebook / np.linalg.norm(codebook, axis=1, keepdims=True)
    d = ((x[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)
    return d.argmin(1)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_bytes", [64, 4096, 2**24])  # one row per chunk, several chunks, one chunk
def test_assignments_match_numpy_reference(distance, chunk_bytes):
    torch.manual_seed(0)
    vq = VectorQuantizer(VQConfig(dim=6, codebook_size=37, distance=distance, init="random", chunk_bytes=chunk_bytes))
    x = torch.randn(5, 41, 6)
    codes = vq.encode(x)
    ref = brute_force(x.reshape(-1, 6).numpy(), vq.embedding.detach().numpy(), distance == "cosine")
    np.testing.assert_array_equal(codes.reshape(-1).numpy(), ref)
    assert codes.shape == (5, 41) and codes.dtype == torch.int64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_in_and_out(dtype):
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, init="random")).eval()
    x = torch.randn(3, 5, 4).to(dtype)
    out = vq(x)
    assert out.quantized.dtype == dtype
    ref = brute_force(x.float().reshape(-1, 4).numpy(), vq.embedding.detach().numpy(), False)
    np.testing.assert_array_equal(out.codes.reshape(-1).numpy(), ref)


def test_distances_stay_float32_under_autocast():
    vq = VectorQuantizer(VQConfig(dim=16, codebook_size=64, init="random")).eval()
    x = torch.randn(200, 16)
    want = vq.encode(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = vq(x).codes
    torch.testing.assert_close(got, want)


@given(n=st.integers(0, 30), k=st.integers(1, 20), d=st.integers(1, 5), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_decode_of_encode_is_the_nearest_code(n, k, d, seed):
    gen = torch.Generator().manual_seed(seed)
    vq = VectorQuantizer(VQConfig(dim=d, codebook_size=k, init="random", seed=seed))
    x = torch.randn(n, d, generator=gen)
    codes = vq.encode(x)
    assert codes.shape == (n,) and (codes >= 0).all() and (codes < k).all()
    snapped = vq.decode(codes)
    book = vq.embedding.detach().double()
    best = torch.cdist(x.double(), book).min(1).values ** 2 if n else torch.zeros(0, dtype=torch.float64)
    mine = ((x.double() - snapped.double()) ** 2).sum(1)
    # The fast search ranks by ‖e‖² − 2x·e in float32, so near-ties may flip by its rounding error.
    slack = 1e-5 * (1 + (x.double() ** 2).sum(1) + (book**2).sum(1).max())
    assert (mine <= best + slack).all()


def test_straight_through_gradient_is_identity():
    vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16))
    x = torch.randn(4, 9, 8, requires_grad=True)
    out = vq(x)
    upstream = torch.randn_like(x)
    (grad,) = torch.autograd.grad(out.quantized, x, upstream)
    torch.testing.assert_close(grad, upstream)


def test_losses_are_separate_terms_and_beta_weights_commitment():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    outs = {}
    for beta in (0.25, 1.0):
        vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, update="loss", init="random", beta=beta)).eval()
        outs[beta] = vq(x)
    torch.testing.assert_close(outs[1.0].commitment_loss * 0.25, outs[0.25].commitment_loss)
    torch.testing.assert_close(outs[1.0].codebook_loss, outs[0.25].codebook_loss)
    torch.testing.assert_close(outs[1.0].codebook_loss, outs[1.0].commitment_loss)  # same distance, β = 1


def test_codebook_loss_trains_codebook_and_commitment_does_not():
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8, update="loss", init="random"))
    x = torch.randn(32, 4, requires_grad=True)
    out = vq(x)
    (g_commit,) = torch.autograd.grad(out.commitment_loss, vq.embedding, allow_unused=True, retain_graph=True)
    assert g_commit is None or torch.count_nonzero(g_commit) == 0
    (g_book,) = torch.autograd.grad(out.codebook_loss, vq.embedding)
    assert torch.count_nonzero(g_book) > 0
    ema = VectorQuantizer(VQConfig(dim=4, codebook_size=8, update="ema"))
    assert not ema.embedding.requires_grad and float(ema(x).codebook_loss) == 0.0


def test_ema_buffers_change_only_in_training():
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
    x = torch.randn(100, 4)
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(x)
    vq.encode(x)
    for k, v in vq.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f"{k} changed in eval mode")
    vq.train()
    vq(x)
    changed = [k for k, v in vq.state_dict().items() if not torch.equal(v, before[k])]
    assert {"embedding", "cluster_size", "embed_sum", "initialized", "steps"} <= set(changed)


@pytest.mark.parametrize("training", [True, False])
def test_empty_batch(training):
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8)).train(training)
    x = torch.randn(0, 7, 4, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == (0, 7, 4) and out.codes.shape == (0, 7)
    assert torch.isfinite(out.loss) and float(out.loss.detach()) == 0.0
    out.loss.backward()
    assert not bool(vq.initialized)  # nothing to initialise from yet
    assert vq.encode(torch.randn(0, 4)).shape == (0,)


def test_kmeans_init_is_reproducible_from_seed():
    data = torch.randn(500, 8)
    books = []
    for seed in (3, 3, 4):
        vq = VectorQuantizer(VQConfig(dim=8, codebook_size=32, init="kmeans", seed=seed, dead_code="none"))
        vq(data)
        assert bool(vq.initialized)
        books.append(vq.embedding.detach().clone())
    torch.testing.assert_close(books[0], books[1], rtol=0, atol=0)
    assert not torch.allclose(books[0], books[2])


def test_dead_code_restart_revives_a_collapsed_codebook():
    """Codes start far from the data: plain VQ uses one code forever, restarts revive them all."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(16, 8, generator=gen) * 5 + 40.0  # far from the N(0, 1) initial codebook
    usage = {}
    for policy in ("none", "restart"):
        vq = VectorQuantizer(VQConfig(dim=8, codebook_size=16, init="random", dead_code=policy))
        for _ in range(60):
            x = centres[torch.randint(16, (512,), generator=gen)] + 0.1 * torch.randn(512, 8, generator=gen)
            out = vq(x)
        usage[policy] = float(out.usage)
    assert usage["none"] <= 2 / 16
    assert usage["restart"] >= 14 / 16


def test_ema_recovers_gaussian_mixture_means():
    gen = torch.Generator().manual_seed(1)
    means = torch.randn(16, 4, generator=gen) * 10.0
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=16, update="ema", init="kmeans", decay=0.9))
    for _ in range(150):
        labels = torch.randint(16, (1024,), generator=gen)
        out = vq(means[labels] + 0.1 * torch.randn(1024, 4, generator=gen))
    assert float(out.usage) == 1.0
    dist = torch.cdist(means, vq.embedding.detach())  # (16 means, 16 codes)
    assert dist.min(1).values.max() < 0.1, "every true mean has a centroid within 0.1"
    assert len(set(dist.argmin(1).tolist())) == 16, "one code per mean"


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_state_dict_round_trip_never_reinitialises(update, monkeypatch):
    cfg = VQConfig(dim=6, codebook_size=24, update=update, init="kmeans", codebook_dim=3)
    vq = VectorQuantizer(cfg)
    for _ in range(3):
        vq(torch.randn(200, 6))
    fresh = VectorQuantizer(cfg)
    assert not bool(fresh.initialized)
    fresh.load_state_dict(vq.state_dict())
    x = torch.randn(50, 6)
    torch.testing.assert_close(fresh.encode(x), vq.encode(x))

    import tokenizers_vq.vq as vq_module

    def no_kmeans(*args, **kwargs):
        raise AssertionError("a loaded codebook must not be re-initialised")

    monkeypatch.setattr(vq_module, "kmeans", no_kmeans)
    fresh.train()(x)  # trains from the loaded state without touching k-means


def test_low_dimensional_codebook_projects():
    vq = VectorQuantizer(VQConfig(dim=32, codebook_size=10, codebook_dim=4))
    assert vq.embedding.shape == (10, 4)
    out = vq(torch.randn(2, 3, 32))
    assert out.quantized.shape == (2, 3, 32)
    torch.testing.assert_close(vq.eval()(torch.ones(1, 32)).quantized, vq.decode(vq.encode(torch.ones(1, 32))))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(3, 5), "shape \\(..., 4\\)"),
        (torch.ones(3, 4, dtype=torch.int64), "floating-point"),
        (torch.tensor([[0.0, float("nan"), 0.0, 0.0]]), "NaN or infinite"),
        (torch.tensor([[0.0, float("inf"), 0.0, 0.0]]), "NaN or infinite"),
        (torch.tensor(1.0), "shape"),
    ],
)
def test_bad_input_raises_clear_value_error(x, message):
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
    with pytest.raises(ValueError, match=message):
        vq(x)
    with pytest.raises(ValueError, match=message):
        vq.encode(x)


def test_bad_codes_raise():
    vq = VectorQuantizer(VQConfig(dim=4, codebook_size=8))
    with pytest.raises(ValueError, match=r"\[0, 7\].*got values from 0 to 8"):
        vq.decode(torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="from -1"):
        vq.decode(torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match="integer"):
        vq.decode(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError):
        vq.decode([0, 1])


def test_bad_config_raises():
    with pytest.raises(ValueError, match="distance"):
        VQConfig(dim=4, distance="manhattan")
    with pytest.raises(ValueError, match="codebook_size"):
        VQConfig(dim=4, codebook_size=0)


def test_identity_quantizer():
    q = IdentityQuantizer(5)
    x = torch.randn(2, 3, 5)
    out = q(x)
    assert out.quantized is x and out.codes.shape == (2, 3) and float(out.loss) == 0.0
    assert q.codebook_size == 1 and q.num_levels == 1


@pytest.mark.parametrize("engine", ["torch", "faiss"])
def test_chunked_search_memory_is_bounded(engine, monkeypatch):
    """K = 65,536 codes, D = 64: our search holds a 64 MiB buffer, faiss its blocks, never the n × K matrix."""
    if engine == "faiss":
        pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    monkeypatch.setenv("VQTOK_SEARCH", engine)
    k, d, n = 65536, 64, 4096
    codebook = torch.randn(k, d)
    x = torch.randn(n, d)
    full_matrix_mib = n * k * 4 / 2**20  # 1 GiB if it were materialised
    rss = _peak_rss_delta_mib(lambda: nearest_codes(x, codebook, (codebook * codebook).sum(1)))
    if rss is None:
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    assert rss < 100, f"search used {rss:.0f} MiB extra; the full distance matrix would be {full_matrix_mib:.0f} MiB"
    ref = torch.cdist(x[:256], codebook).argmin(1)
    got = nearest_codes(x[:256], codebook, (codebook * codebook).sum(1))
    assert (ref == got).float().mean() > 0.999  # ties/rounding at most


def _peak_rss_delta_mib(fn) -> float | None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None

    def status(field: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(field)

    base = status("VmRSS:")
    fn()
    return status("VmHWM:") - base


def test_atomic_write_replaces_whole_file_with_usual_mode(tmp_path):
    import os

    from tokenizers_vq.io import atomic_path, atomic_write_text

    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("crash before the rename")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"], "no temporary file is left behind"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
