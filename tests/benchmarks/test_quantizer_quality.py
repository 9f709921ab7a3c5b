"""The quantizer quality benchmark's smoke run: every method, ours and the peer's, in the promised JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest
import torch


def test_quick_json_has_a_row_per_method_and_implementation(
    load_benchmark: Callable[[str], ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    module = load_benchmark("quantizer_quality")
    assert module.main(["--quick", "--json", "--steps", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [(r["method"], r["impl"]) for r in rows] == [(m, i) for m in module.METHODS for i in ("ours", "vqp")]
    for r in rows:
        assert set(r) == {"method", "impl", "bits", "psnr", "ssim", "usage", "perplexity", "seconds"}
        assert r["bits"] == 6.0 and r["psnr"] > 0 and 0 < r["usage"] <= 1 and r["perplexity"] >= 1 and r["seconds"] > 0
    assert result["steps"] == 2 and result["quick"] is True


def test_the_peer_drops_into_the_same_model(load_benchmark: Callable[[str], ModuleType]) -> None:
    module = load_benchmark("quantizer_quality")
    ours, peer = (module.build("fsq", impl, module.QUICK_MODEL, seed=0) for impl in ("ours", "vqp"))
    assert type(ours.quantizers[0]).__name__ == "FiniteScalarQuantizer"
    assert type(peer.quantizers[0].module).__name__ == "FSQ" and peer.codebook_sizes == ours.codebook_sizes == [64]
    for (name, a), (_, b) in zip(ours.decoder.named_parameters(), peer.decoder.named_parameters(), strict=True):
        assert torch.equal(a, b), f"the decoder's {name} differs: not the same model"
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    out = peer(peer.preprocess(images))
    assert out.codes.levels[0].shape == (4, 7, 7) and torch.isfinite(out.loss)


def test_unknown_methods_are_refused(load_benchmark: Callable[[str], ModuleType], capsys) -> None:
    with pytest.raises(SystemExit):
        load_benchmark("quantizer_quality").main(["--quick", "--methods", "vq,pq"])
    assert "--methods takes names from" in capsys.readouterr().err
