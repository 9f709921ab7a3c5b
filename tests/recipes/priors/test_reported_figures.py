"""What ``sample`` and ``cas`` report matches what they did: every drawn sample written or named as skipped with
its reason, and a figure that cannot be computed null beside the reason, never a bare null or a NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.cli import main


def _strict_json(text: str) -> dict:
    """``json.loads`` that refuses NaN and infinities, which are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def image_prior(image_corpora, tmp_path_factory) -> Path:
    """A tiny class-conditional PixelCNN over the digit codes."""
    out = tmp_path_factory.mktemp("figures") / "run"
    assert main(["train-prior", "--config", "prior_tiny", "--corpus", str(image_corpora["train"]),
                 "--eval-corpus", str(image_corpora["test"]), "--out", str(out)]) == 0  # fmt: skip
    return out / "prior"


def test_cas_gives_the_reason_when_rejection_leaves_a_class_without_samples(vqtok, image_prior, tmp_path) -> None:
    r = vqtok("cas", "--config", "prior_tiny", "--prior", image_prior, "cas.rejection_threshold=0.999", "--json")
    assert r.code == 0, r.err
    figures = _strict_json(r.out)
    assert figures["acceptance_rate"] < 1.0
    # was "cas_rejection": null and nothing more
    assert figures["cas_rejection"] is None and figures["cas_ratio_rejection"] is None
    assert "kept no sample of class(es) [" in figures["cas_rejection_reason"]
    assert "lower cas.rejection_threshold" in figures["cas_rejection_reason"]
    assert figures["num_samples_rejection"] < figures["num_samples"]


def test_speech_sample_reports_what_it_wrote_and_why_it_skipped_the_rest(vqtok, speech_corpora, tmp_path) -> None:
    run = tmp_path / "run"
    assert vqtok("train-prior", "--config", "prior_tiny", "--corpus", speech_corpora["train"], "--out", run,
                 "model.pixelcnn.kernel_size=2", "train.batch_size=4").code == 0  # fmt: skip
    # A hot draw ends some utterances at once (the end code first): they have nothing to play.
    r = vqtok("sample", "--config", "prior_tiny", "--prior", run / "prior", "--out", tmp_path / "samples",
              "sample.num_samples=80", "sample.sampling.temperature=50", "--json")  # fmt: skip
    assert r.code == 0, r.err
    result = _strict_json(r.out)
    skipped = result["skipped"]
    assert skipped and all("end code first" in s["reason"] for s in skipped)  # was: 80 reported, fewer written
    assert len(result["files"]) + len(skipped) == result["num_samples"] == 80
    written = sorted(p.name for p in (tmp_path / "samples").glob("sample_*.wav"))
    assert written == sorted(Path(f).name for f in result["files"])
    assert {s["sample"] for s in skipped}.isdisjoint(int(name[7:10]) for name in written)
    assert json.loads((tmp_path / "samples" / "samples.json").read_text())["skipped"] == skipped
    text = vqtok("sample", "--config", "prior_tiny", "--prior", run / "prior", "--out", tmp_path / "again",
                 "sample.num_samples=80", "sample.sampling.temperature=50")  # fmt: skip
    assert f"sample {skipped[0]['sample']}: the prior drew the end code first" in text.out
