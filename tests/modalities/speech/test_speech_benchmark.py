"""The speech tokenizer benchmark runs and prints the JSON it promises."""

from __future__ import annotations

import json


def test_speech_benchmark_json(capsys, load_benchmark) -> None:
    load_benchmark("speech_tokenizer").main(["--quick", "--json", "--seconds", "0.5", "--repeats", "1"])
    result = json.loads(capsys.readouterr().out)
    rows = result["rows"]
    assert [r["sample_rate"] for r in rows] == [16000, 8000, 16000, 16000, 16000]
    assert [r["code_rate"] for r in rows] == [50.0, 50.0, 50.0, 25.0, 50.0]
    assert rows[3]["levels"] == 4 and rows[4]["duration_penalty"] == 2.0
    for r in rows:
        assert r["encode_rtf"] > 0 and r["decode_mel_rtf"] > 0 and r["decode_wave_rtf"] > 0
