"""Progress in a log for the rate verbs: compress, decompress and rd write plain progress lines (every step here)."""

from __future__ import annotations

from pathlib import Path


def test_compress_decompress_and_rd_report_progress(vqtok, progress_labels, coding_models, tmp_path: Path) -> None:
    models = ["--config", "tiny", "--tokenizer", coding_models["tokenizer"], "--prior", coding_models["prior"]]
    path = tmp_path / "digits.vqc"
    r = vqtok("compress", *models, "--out", path, "--max-items", "8", "compress.chunk_size=4")
    assert r.code == 0, r.err
    assert {"encoding", "entropy coding"} <= progress_labels(r.err)
    r = vqtok("decompress", *models, "--input", path, "--out", tmp_path / "back")
    assert r.code == 0, r.err
    assert "entropy decoding" in progress_labels(r.err)
    r = vqtok("rd", "--config", "tiny", f"rd.tokenizers=[{coding_models['tokenizer']}]", "--out", tmp_path / "rd",
              "--max-items", "8", "rd.fit_items=16", "rd.jpeg_qualities=[50]", "rd.webp_qualities=[50]",
              "rd.plot=false")  # fmt: skip
    assert r.code == 0, r.err
    assert {"rd", "encoding"} <= progress_labels(r.err), r.err
