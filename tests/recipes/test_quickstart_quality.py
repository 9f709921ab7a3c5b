"""The real quickstart (minutes): it finishes in time and its tokenizer is good. Run with ``-m slow``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recipes.cli import main

pytestmark = pytest.mark.slow


def test_quickstart_meets_its_quality_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--json"]) == 0
    minutes = (time.monotonic() - began) / 60
    result = json.loads(capsys.readouterr().out)
    assert minutes < 5, f"the quickstart took {minutes:.1f} minutes"
    figures = result["figures"]
    assert figures["num_images"] == 300  # the whole digits test split
    assert figures["psnr"] > 25 and figures["ssim"] > 0.9
    level = figures["levels"][0]
    assert level["usage"] > 0.8 and level["perplexity"] > 50
    assert level["label_nmi"] > 0.05  # codes carry information about the digit
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text())
    assert summary["figures"] == figures
