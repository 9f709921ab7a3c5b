"""The two exact search engines (ours, faiss) give the same codes; VQTOK_SEARCH picks between them."""

from __future__ import annotations

import pytest
import torch

from tokenizers_vq import VectorQuantizer, VQConfig, search
from tokenizers_vq.search import FAISS_MIN_CODES, nearest_codes

faiss = pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install faiss-cpu)")


def _codes(engine: str, monkeypatch, x, codebook, norms):
    monkeypatch.setenv("VQTOK_SEARCH", engine)
    return nearest_codes(x, codebook, norms, chunk_bytes=4096)


@pytest.mark.parametrize("cosine", [False, True])
@pytest.mark.parametrize(("n", "k", "d"), [(1, 1, 1), (37, 5, 3), (500, 300, 17), (257, 2100, 64)])
def test_engines_give_the_same_codes(monkeypatch, cosine, n, k, d):
    gen = torch.Generator().manual_seed(n * 31 + k)
    x, codebook = torch.randn(n, d, generator=gen), torch.randn(k, d, generator=gen)
    if cosine:
        x, codebook = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(codebook, dim=1)
    norms = None if cosine else (codebook * codebook).sum(1)
    ours = _codes("torch", monkeypatch, x, codebook, norms)
    theirs = _codes("faiss", monkeypatch, x, codebook, norms)
    assert theirs.dtype == torch.int64 and theirs.shape == (n,)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=0)
    exact = torch.cdist(x.double(), codebook.double()).argmin(1)
    torch.testing.assert_close(ours, exact, rtol=0, atol=0)


def test_ties_go_to_the_first_row_in_both_engines(monkeypatch):
    """Repeated codebook rows (a restart that drew one input twice): both engines pick the lowest index."""
    gen = torch.Generator().manual_seed(0)
    codebook = torch.randn(50, 8, generator=gen).repeat(3, 1)  # rows i, i + 50 and i + 100 are equal
    x = torch.randn(400, 8, generator=gen)
    norms = (codebook * codebook).sum(1)
    ours, theirs = (_codes(e, monkeypatch, x, codebook, norms) for e in ("torch", "faiss"))
    assert int(ours.max()) < 50
    torch.testing.assert_close(theirs, ours, rtol=0, atol=0)


def test_auto_hands_large_codebooks_to_faiss(monkeypatch):
    calls = []
    real = search._faiss_codes
    monkeypatch.setattr(search, "_faiss_codes", lambda *a, **kw: calls.append(a[1].shape[0]) or real(*a, **kw))
    monkeypatch.delenv("VQTOK_SEARCH", raising=False)
    x = torch.randn(20, 4)
    for k in (FAISS_MIN_CODES - 1, FAISS_MIN_CODES):
        codebook = torch.randn(k, 4)
        nearest_codes(x, codebook, (codebook * codebook).sum(1))
    assert calls == [FAISS_MIN_CODES]
    monkeypatch.setenv("VQTOK_SEARCH", "torch")
    nearest_codes(x, codebook, (codebook * codebook).sum(1))
    assert calls == [FAISS_MIN_CODES]


def test_quantizer_trains_the_same_with_either_engine(monkeypatch):
    """A few EMA steps with restarts: the codebooks stay bit-identical whichever engine searches."""
    states = []
    for engine in ("torch", "faiss"):
        monkeypatch.setenv("VQTOK_SEARCH", engine)
        torch.manual_seed(0)
        vq = VectorQuantizer(VQConfig(dim=6, codebook_size=40, init="kmeans", seed=3)).train()
        for _ in range(4):
            vq(torch.randn(300, 6))
        states.append(vq.state_dict())
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=0, atol=0, msg=key)


def test_unknown_engine_is_refused(monkeypatch):
    monkeypatch.setenv("VQTOK_SEARCH", "annoy")
    with pytest.raises(ValueError, match="VQTOK_SEARCH must be one of auto, torch, faiss"):
        nearest_codes(torch.randn(3, 2), torch.randn(4, 2))


def test_faiss_engine_without_faiss_says_what_to_install(monkeypatch):
    monkeypatch.setenv("VQTOK_SEARCH", "faiss")
    monkeypatch.setattr(search, "_faiss", lambda: None)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        nearest_codes(torch.randn(3, 2), torch.randn(4, 2))
