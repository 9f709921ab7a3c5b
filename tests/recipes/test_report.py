"""``vqtok report``: a static HTML page about a run, its PNGs, its tables, and the refusal of a non-run directory.

The page is checked as a reader gets it: the folder moved elsewhere, every ``src`` and ``href`` parsed
(``html.parser``) and resolved inside it, no JSON in a table cell, no chart of one point; and, where a
browser is installed (Debian: ``apt-get install chromium``), rendered headless with every image decoded
and every file it links read.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import soundfile as sf

from recipes.cli import main
from recipes.engine.results import format_value
from recipes.report.audio import group_wavs
from recipes.report.contents import section_of
from recipes.report.plots import code_stats
from recipes.report.tables import cell_text, figures_html


class _PageParser(HTMLParser):
    """The links (``src``, ``href``), ids and table cells of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (tag, link)
        self.ids: set[str] = set()
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"])
        self.links += [(tag, found[k]) for k in ("src", "href") if found.get(k) is not None]
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def check_links(folder: Path) -> _PageParser:
    """Every ``src`` and ``href`` of ``folder/index.html`` is relative and names a file inside the folder (an
    anchor: an id of the page); no table cell holds JSON."""
    parsed = parse(folder / "index.html")
    inside = folder.resolve()
    for tag, link in parsed.links:
        if link.startswith("#"):
            assert link[1:] in parsed.ids, f"<{tag}> links to #{link[1:]}, which is not on the page"
            continue
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), f"<{tag}> {link} is not relative"
        target = (folder / unquote(parts.path)).resolve()
        assert target.is_relative_to(inside), f"<{tag}> {link} points outside the report folder"
        assert target.is_file(), f"<{tag}> {link} is not in the report folder"
    raw = [c for c in parsed.cells if re.search(r"[{}\[\]]", c)]
    assert not raw, f"table cells hold JSON: {raw[:5]}"
    return parsed


def moved(folder: Path, to: Path) -> Path:
    """The report folder moved to ``to`` (a name with a space, so that links must be written as URLs)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(folder, to)
    return to


def images_of(page: Path) -> list[str]:
    """The ``src`` of every ``<img>`` in the page; each must be a PNG inside its folder."""
    sources = [html.unescape(s) for s in re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))]
    missing = [s for s in sources if not (page.parent / s).is_file()]
    assert not missing, f"the page names PNGs that are not there: {missing}"
    return sources


def section(page: Path, title: str) -> str:
    """The HTML of one section (from its heading to the next)."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f">{html.escape(title)}</h2>")
    end = text.find("<h2", start + 4)
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
    assert tables.count("<table>") >= 3 and "eval.json" in tables
    assert f'<td class="n">{format_value(psnr)}</td>' in tables
    assert '<td class="n">8</td>' in tables  # the evaluation at the last step (tiny: 8 steps)
    assert "usage buffers" in section(page, "Codebook usage")
    assert "reconstructions.png" in section(page, "Reconstructions")
    assert "vqtok sample" in section(page, "Samples")  # a section without data says so and how to get it
    assert not (tiny_run / "report").exists()  # --out was honoured
    # Paths in tables are relative to the run: the evaluated tokenizer is "tokenizer", no folder is absolute.
    text = page.read_text(encoding="utf-8")
    assert "<td>tokenizer</td>" in tables and str(tiny_run) not in text and str(tmp_path) not in text

    r = vqtok("report", tiny_run, "--out", out)  # again: the report is replaced, the table printed
    assert r.code == 0 and "no data" in r.out and "reconstructions" in r.out

    # The folder can be moved: every link and image still resolves.
    parsed = check_links(moved(out, tmp_path / "elsewhere" / "the report"))
    assert len([link for tag, link in parsed.links if tag == "img"]) == 2  # curves, usage: the second report's
    assert {f"#{key}" for key in result["sections"]} <= {link for tag, link in parsed.links if tag == "a"}


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
    assert '<td class="n">24.50</td>' in text and "<td>7x7</td>" in text and "(20 in all)" in text
    assert "<th>usage</th>" in text and '<td class="n">0.2500</td>' in text
    assert '<td>kmeans</td><td class="n">0.4000</td>' in text
    assert "&lt;b&gt;" in text and "<b>" not in text  # text is escaped


def test_tables_hold_plain_numbers_and_relative_paths(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "fm"
    figures = {
        "tokenizer": str(run / "tokenizer"),
        "data": str(tmp_path / "data" / "digits"),
        "image_shape": [1, 16, 16],
        "points": [
            {
                "name": "fm",
                "jpeg_between": [5, 8],
                "level_shapes": [[4, 4], [2, 2]],
                "figures": {"psnr": 20.5, "ssim": 0.75},
                "pairs": [[1, 2], [3, 4]],
                "per_level": [{"level": 0, "usage": 0.5}],
            }
        ],
        "settings": {"codec": {"kind": "jpeg"}, "quality": [10, 20]},
    }
    page = tmp_path / "index.html"
    page.write_text(f"<html><body>{figures_html(figures, run)}</body></html>", encoding="utf-8")
    cells = parse(page).cells
    assert not [c for c in cells if re.search(r"[{}\[\]]", c)], cells  # no JSON in any cell
    assert {"tokenizer", "../../data/digits", "1x16x16", "5, 8", "4x4, 2x2", "(1, 2), (3, 4)"} <= set(cells)
    assert {"figures.psnr", "figures.ssim", "20.50", "level 0; usage 0.5000"} <= set(cells)  # flattened
    assert str(tmp_path) not in page.read_text(encoding="utf-8")
    assert cell_text([5, 8], "jpeg_between") == "5, 8" and cell_text([5, 8], "grid_shape") == "5x8"
    assert "<wbr>" in figures_html({"rows": [{"jpeg_lowest_bits_per_pixel": 1.0}]})  # long names may wrap


def test_a_single_point_is_a_number_not_a_chart(vqtok, tmp_path: Path) -> None:
    run = tmp_path / "one_step"
    run.mkdir()
    (run / "config.yaml").write_text("name: one_step\nmodality: image\ntrain:\n  steps: 200\n", encoding="utf-8")
    rows = [{"kind": "train", "step": 200, "loss": 0.25, "lr": 0.001}, {"kind": "eval", "step": 200, "psnr": 21.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    r = vqtok("report", run, "--json")
    assert r.code == 0, r.err
    result = r.json()
    assert result["images"] == [] and result["sections"]["training_curves"]  # no chart, the values as numbers
    curves = section(run / "report" / "index.html", "Training curves")
    assert "<img" not in curves and "one step only" in curves
    assert '<td class="n">0.2500</td>' in curves and '<td class="n">21.50</td>' in curves

    # With a second step the same figures are a chart.
    rows.append({"kind": "train", "step": 400, "loss": 0.2, "lr": 0.001})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    r = vqtok("report", run, "--json")
    assert r.code == 0 and r.json()["images"] == ["curves_one_step.png"]
    curves = section(run / "report" / "index.html", "Training curves")
    assert "<img" in curves and "loss" in curves  # drawn: loss and learning rate at steps 200 and 400
    assert '<td class="n">21.50</td>' in curves  # PSNR, evaluated at one step only, is still a number


def test_wavs_are_grouped_per_utterance(tmp_path: Path) -> None:
    names = ["b_codes", "b_original", "b_as_spk1", "b_vocoder", "spk0_a_original", "spk0_a_codes", "sample_0"]
    wavs = [tmp_path / f"{n}.wav" for n in names]
    groups = group_wavs(wavs, [{"utterance": "spk0_a", "speaker": "spk0", "stoi": 0.5}, {"utterance": "b"}])
    assert [g.name for g in groups] == ["spk0_a", "b", "sample_0"]  # the figures' order, then the rest
    assert [label for label, _ in groups[1].files] == ["original", "vocoder ceiling", "reconstruction", "as spk1"]
    assert groups[0].figures["stoi"] == 0.5 and [w.name for _, w in groups[2].files] == ["sample_0.wav"]


@pytest.fixture(scope="module")
def speech_report(speech_corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the tiny speech run and the reconstructions of 3 utterances, one shown open (max_audio=1)."""
    root = tmp_path_factory.mktemp("speech_report")
    run, recon, out = speech_corpora["tokenizer"].parent, root / "reconstructions", root / "report"
    assert main(["reconstruct", "--config", "speech_tiny", "--tokenizer", str(speech_corpora["tokenizer"]),
                 f"data.root={speech_corpora['data']}", "reconstruct.split=train", "reconstruct.num_utterances=3",
                 "--out", str(recon)]) == 0  # fmt: skip
    assert main(["report", str(run), str(recon), "--out", str(out), "max_audio=1"]) == 0
    return out


def test_report_of_a_speech_run_groups_each_utterance_with_spectrograms(speech_report: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shared" / "speech report"  # a copy elsewhere: the fixture's folder is shared
    shutil.copytree(speech_report, folder)
    parsed = check_links(folder)
    recon = section(folder / "index.html", "Reconstructions")
    # reconstruct's own figure: log-mel spectrograms, originals above reconstructions
    assert "<img src=\"reconstructions.png\"" in recon
    # Three utterances, each its original, vocoder, reconstruction and conversion side by side, each with a
    # player of a WAV copied into the folder and its spectrogram; all but the first collapsed, none left out.
    assert recon.count('<div class="utterance">') == 3 and recon.count("<details>") == 1
    assert recon.index("2 more utterances") > recon.index('<div class="utterance">')
    players = [link for tag, link in parsed.links if tag == "audio"]
    spectrograms = [link for tag, link in parsed.links if tag == "img" and link.startswith("spectrograms/")]
    assert len(players) == len(spectrograms) == 12 and all(p.startswith("audio/") for p in players)
    assert sf.info(str(folder / players[0])).frames > 0
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", recon)
    assert [c for c in captions if c in ("original", "vocoder ceiling", "reconstruction")] == [
        "original", "vocoder ceiling", "reconstruction"] * 3  # fmt: skip
    assert len([c for c in captions if re.fullmatch(r"as spk\d", c)]) == 3  # a conversion each
    assert "log-mel distance" in recon and "STOI" in recon  # each utterance's figures in its heading


_CHECK_SCRIPT = """
for (const image of document.images) image.loading = "eager";  // lazy images would not load in a headless window
window.addEventListener("load", () => {
  const read = (url) => {  // the bytes of a file, or null (synchronous, so the result is in the DOM dumped)
    const request = new XMLHttpRequest();
    request.open("GET", url, false);
    request.overrideMimeType("text/plain; charset=x-user-defined");
    try { request.send(); } catch (error) { return null; }
    return request.status === 0 || request.status === 200 ? request.responseText : null;
  };
  const broken = [];
  let checked = 0;
  for (const element of document.querySelectorAll("[src], [href]")) {
    const link = element.getAttribute("src") ?? element.getAttribute("href");
    checked += 1;
    if (link.startsWith("#")) {
      if (!document.getElementById(decodeURIComponent(link.slice(1)))) broken.push(link);
    } else if (element.tagName === "IMG") {
      if (!element.complete || element.naturalWidth === 0) broken.push(link);  // missing or not decodable
    } else {
      const bytes = read(new URL(link, document.baseURI).href);
      const wav = element.tagName === "AUDIO";
      if (bytes === null || (wav && !(bytes.startsWith("RIFF") && bytes.slice(8, 12) === "WAVE"))) broken.push(link);
    }
  }
  const out = document.createElement("pre");
  out.id = "link-check";
  out.textContent = JSON.stringify({ checked, broken });
  document.body.append(out);
});
"""


def _browser() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for name in names if (path := shutil.which(name))), None)


def _render(browser: str, folder: Path) -> dict:
    """Open ``folder/index.html`` headless with :data:`_CHECK_SCRIPT` added; what it checked and found broken."""
    page = folder / "check.html"  # beside index.html, so that its relative links are the page's own
    page.write_text((folder / "index.html").read_text(encoding="utf-8").replace(
        "</body>", f"<script>{_CHECK_SCRIPT}</script></body>"), encoding="utf-8")  # fmt: skip
    flags = ["--headless", "--disable-gpu", "--allow-file-access-from-files", "--dump-dom"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
    done = subprocess.run([browser, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="link-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"{browser} did not render the page (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_report_renders_in_a_headless_browser(speech_report: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser: install Chromium (Debian: apt-get install chromium) to render the report")
    folder = tmp_path / "copied report"
    shutil.copytree(speech_report, folder)
    rendered = _render(browser, folder)
    assert rendered["broken"] == [] and rendered["checked"] > 30, rendered
    # The check sees what a reader would: a missing spectrogram and a missing WAV are reported.
    next((folder / "spectrograms").iterdir()).unlink()
    next((folder / "audio").iterdir()).unlink()
    assert len(_render(browser, folder)["broken"]) == 2


def test_code_stats_counts_and_ema_threshold() -> None:
    stats = code_stats(np.array([4.0, 4.0, 0.0, 0.0]))
    assert stats == {"codebook_size": 4, "used": 2, "usage": 0.5, "perplexity": stats["perplexity"]}
    assert abs(stats["perplexity"] - 2.0) < 1e-6
    assert code_stats(np.array([3.0, 0.5, 1.0]), min_count=1.0)["used"] == 2
