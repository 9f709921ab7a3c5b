"""``vqtok rd`` over a residual speech tokenizer's depths: one point per depth, rates of real coded bytes."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def residual_tokenizer(tmp_path_factory, vqtok_module):
    """A tiny 3-level residual speech tokenizer trained with quantizer dropout on the synthetic corpus."""
    from modalities.speech import write_synthetic_corpus

    root = tmp_path_factory.mktemp("rd_depths")
    data = write_synthetic_corpus(root / "data")
    code, _, err = vqtok_module("train-tokenizer", "--config", "speech_tiny", "--out", root / "rvq",
                                f"data.root={data}", "model.quantizer=rvq", "model.num_quantizers=3",
                                "model.quantizer_dropout=0.5")  # fmt: skip
    assert code == 0, err
    return data, root / "rvq" / "tokenizer"


def _rd(vqtok, data, tokenizer, out, *overrides):
    return vqtok("rd", "--config", "speech_tiny", f"data.root={data}", f"rd.tokenizers=[{tokenizer}]",
                 "rd.codec_levels=[0.99]", "--out", out, "--json", *overrides)  # fmt: skip


def test_one_point_per_depth_with_growing_rate(residual_tokenizer, vqtok, tmp_path) -> None:
    data, tokenizer = residual_tokenizer
    r = _rd(vqtok, data, tokenizer, tmp_path / "rd", "rd.depths=all")
    assert r.code == 0, r.err
    points = r.json()["points"]
    assert [p["depth"] for p in points] == [1, 2, 3]
    assert [p["name"].split(" ")[0] for p in points] == ["rvq@1", "rvq@2", "rvq@3"]
    assert {p["curve"] for p in points} == {"rvq"}
    rates = [p["bits_per_second"] for p in points]
    assert rates[0] < rates[1] < rates[2]
    for p in points:  # each level at most log2(16) = 4 bits per code, 50 codes/s, plus the coder's few bytes
        assert p["uniform_bits_per_second"] == pytest.approx(50 * 4 * p["depth"])
        assert 0 < p["bits_per_second"] <= 1.05 * p["uniform_bits_per_second"]
        assert p["log_mel_distance"] > 0 and -1 <= p["stoi"] <= 1
    assert json.loads((tmp_path / "rd" / "rd.json").read_text())["points"] == points
    assert (tmp_path / "rd" / "rd.png").stat().st_size > 10_000
    # the full depth is the one point rd gives without rd.depths, and a chosen list gives just those depths
    r = _rd(vqtok, data, tokenizer, tmp_path / "full")
    assert r.code == 0, r.err
    (full,) = r.json()["points"]
    assert "curve" not in full and full["depth"] == 3
    for key in ("bits_per_second", "log_mel_distance", "stoi"):
        assert full[key] == pytest.approx(points[2][key])
    r = _rd(vqtok, data, tokenizer, tmp_path / "some", "rd.depths=[3,1]")
    assert r.code == 0, r.err
    assert [p["depth"] for p in r.json()["points"]] == [1, 3]
    assert r.json()["points"][0]["bits_per_second"] == pytest.approx(rates[0])


@pytest.mark.parametrize(("depths", "message"), [
    ("rd.depths=[1,4]", "has 3"),
    ("rd.depths=[0]", "rd.depths must be"),
    ("rd.depths=some", "rd.depths must be"),
])  # fmt: skip
def test_a_bad_depth_is_refused(residual_tokenizer, vqtok, tmp_path, depths, message) -> None:
    data, tokenizer = residual_tokenizer
    r = _rd(vqtok, data, tokenizer, tmp_path / "rd", depths)
    assert r.code == 2 and message in r.err, r.err
    assert not (tmp_path / "rd" / "rd.json").exists()
