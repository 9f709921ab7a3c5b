"""``vqtok report``: a static HTML page about a run, its PNGs, its tables, and the refusal of a non-run directory."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from recipes.engine.results import format_value
from recipes.report.contents import section_of
from recipes.report.html import figures_html
from recipes.report.plots import code_stats


def images_of(page: Path) -> list[str]:
    """The ``src`` of every ``<img>`` in the page; each must be a PNG beside it."""
    sources = re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))
    missing = [s for s in sources if not (page.parent / html.unescape(s)).is_file()]
    assert not missing, f"the page names PNGs that are not there: {missing}"
    return sources


def section(page: Path, title: str) -> str:
    """The HTML of one section (from its heading to the next)."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f"<h2>{html.escape(title)}</h2>")
    end = text.find("<h2>", start + 4)
    return text[start : end if end > 0 else None]


def test_report_of_an_image_run_with_its_outputs(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    recon = tmp_path / "recon"
    assert vqtok("reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", recon).code == 0
    evaluated = tmp_path / "eval.json"
    r = vqtok("evaluate", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", evaluated, "--json")
    assert r.code == 0, r.err
    psnr = r.json()["psnr"]

    out = tmp_path / "report"
    r = vqtok("report", tiny_run, recon, evaluated, "--out", out, "--json")
    assert r.code == 0, r.err
    result = r.json()
    page = out / "index.html"
    assert result["report"] == str(page) and page.is_file()
    sources = images_of(page)
    assert sorted(sources) == sorted(result["images"]) and len(sources) == 3  # curves, usage, reconstructions
    assert result["sections"] == {
        "training_curves": True,
        "evaluation_tables": True,
        "codebook_usage": True,
        "reconstructions": True,
        "samples": False,
        "phone_confusion_matrix": False,
        "rate_distortion": False,
    }
    # The evaluation tables: every evaluation logged during training, and the figures of evaluate --out.
    tables = section(page, "Evaluation tables")
    assert tables.count("<table>") >= 3 and "eval.json" in tables and f"<td>{format_value(psnr)}</td>" in tables
    assert "<td>8</td>" in tables  # the evaluation at the last step (tiny: 8 steps)
    assert "usage buffers" in section(page, "Codebook usage")
    assert "reconstructions.png" in section(page, "Reconstructions")
    assert "vqtok sample" in section(page, "Samples")  # a section without data says so and how to get it
    assert not (tiny_run / "report").exists()  # --out was honoured

    r = vqtok("report", tiny_run, "--out", out)  # again: the report is replaced, the table printed
    assert r.code == 0 and "no data" in r.out and "reconstructions" in r.out


def test_report_refuses_what_is_not_a_run_directory(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    r = vqtok("report", tmp_path)
    assert r.code == 2 and "not a run directory" in r.err and "config.yaml" in r.err
    assert not (tmp_path / "report").exists()
    r = vqtok("report", tmp_path / "missing")
    assert r.code == 2 and "does not exist" in r.err
    r = vqtok("report")
    assert r.code == 2 and "RUN_DIR" in r.err
    r = vqtok("report", tiny_run, tmp_path / "nothing_here", "--out", tmp_path / "r")
    assert r.code == 2 and "nothing_here" in r.err


def test_report_words_become_run_dir_and_include(vqtok, tmp_path: Path) -> None:
    r = vqtok("report", "--print-config", "runs/a b", "runs/rd", "max_audio=2")
    assert r.code == 0, r.err
    assert "run_dir: runs/a b" in r.out and "- runs/rd" in r.out and "max_audio: 2" in r.out


def test_sections_by_file_and_folder_names() -> None:
    assert section_of(Path("runs/fm/reconstructions/reconstructions.png")) == "reconstructions"
    assert section_of(Path("runs/sp/reconstructions/figures.json")) == "reconstructions"
    assert section_of(Path("runs/sp/phones/figures.json")) == "phones"
    assert section_of(Path("runs/rd/rd.json")) == "rd"
    assert section_of(Path("runs/fm_pixelcnn/samples/samples.json")) == "samples"
    assert section_of(Path("runs/fm/eval.json")) == "evaluation"
    assert section_of(Path("runs/fm/records/word.png")) == "other"  # "rd" only as a word of its own


def test_figures_html_lays_out_scalars_tables_and_nested_figures() -> None:
    text = figures_html(
        {
            "psnr": 24.5,
            "shape": [7, 7],
            "indices": list(range(20)),
            "levels": [{"level": 0, "usage": 0.5}, {"level": 1, "usage": 0.25}],
            "baselines": {"kmeans": {"pnmi": 0.4}, "random": {"pnmi": 0.1}},
            "note": "<b>",
        }
    )
    assert "<td>24.50</td>" in text and "<td>7x7</td>" in text and "(20 in all)" in text
    assert "<th>usage</th>" in text and "<td>0.2500</td>" in text
    assert "<td>kmeans</td><td>0.4000</td>" in text
    assert "&lt;b&gt;" in text and "<b>" not in text  # text is escaped


def test_code_stats_counts_and_ema_threshold() -> None:
    stats = code_stats(np.array([4.0, 4.0, 0.0, 0.0]))
    assert stats == {"codebook_size": 4, "used": 2, "usage": 0.5, "perplexity": stats["perplexity"]}
    assert abs(stats["perplexity"] - 2.0) < 1e-6
    assert code_stats(np.array([3.0, 0.5, 1.0]), min_count=1.0)["used"] == 2
