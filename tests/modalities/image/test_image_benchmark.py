"""The image tokenizer benchmark runs and prints the JSON it promises."""

from __future__ import annotations

import json


def test_benchmark_json(capsys, load_benchmark):
    load_benchmark("image_tokenizer").main(["--quick", "--json", "--batch-size", "2", "--repeats", "1"])
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
