"""The image tokenizer benchmark runs and prints the JSON it promises."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "image_tokenizer.py"


def test_benchmark_json(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))  # the benchmarks import their sibling _timing
    spec = importlib.util.spec_from_file_location("image_tokenizer_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--json", "--batch-size", "2", "--repeats", "1"])
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [(r["model"], r["input"]) for r in rows] == [
        ("vqvae", "28x28x1"),
        ("vqvae2", "28x28x1"),
        ("vqvae", "32x32x3"),
        ("vqvae2", "32x32x3"),
    ]
    assert [r["code_grids"] for r in rows] == [[[7, 7]], [[7, 7], [14, 14]], [[8, 8]], [[4, 4], [8, 8]]]
    for r in rows:
        assert r["encode_images_per_s"] > 0 and r["decode_images_per_s"] > 0 and r["batch_size"] == 2
