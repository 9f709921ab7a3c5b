"""Smoke test of the mixed-modality recipes: train-mixed, then evaluate, sample and cas with ``modality: mixed``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recipes.cli import main


@pytest.fixture(scope="module")
def mixed_run(image_corpora, labelled_speech, tmp_path_factory) -> tuple[Path, list[str]]:
    data = [
        f"data.image_corpus={image_corpora['train']}",
        f"data.image_eval_corpus={image_corpora['test']}",
        f"data.audio_corpus={labelled_speech['train']}",
        f"data.audio_eval_corpus={labelled_speech['eval']}",
        "data.image_items=200",
    ]
    run = tmp_path_factory.mktemp("mixed") / "run"
    assert main(["train-mixed", "--config", "mixed_tiny", "--out", str(run), *data]) == 0
    return run, data


def test_train_mixed_publishes_a_transformers_directory(mixed_run, vqtok):
    transformers = pytest.importorskip("transformers")
    run, _ = mixed_run
    prior = run / "prior"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert evals and {"image_bits_per_code", "audio_bits_per_frame", "text_bits_per_token"} <= set(evals[-1])
    model = transformers.AutoModelForCausalLM.from_pretrained(str(prior))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(prior))
    text = "<bos><text>an image of a 7</text><img><img0:3><img0:15></img><eos>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[-4:]) == ["<img0:3>", "<img0:15>", "</img>", "<eos>"]
    assert model(torch.tensor([ids])).logits.shape == (1, len(ids), len(tokenizer))
    # Resuming a finished run trains nothing and keeps the published prior.
    result = vqtok("train-mixed", "--config", "mixed_tiny", "--out", run, "--resume", *mixed_run[1], "--json")
    assert result.code == 0, result.err
    assert result.json()["step"] == result.json()["steps"]


def test_evaluate_sample_and_cas_of_a_mixed_prior(mixed_run, vqtok, tmp_path):
    run, _ = mixed_run
    prior = run / "prior"
    figures = vqtok("evaluate", "--config", "mixed_tiny", f"prior={prior}", "--json")
    assert figures.code == 0, figures.err
    got = figures.json()
    uniform_image = 4.0  # log2 of the tiny image tokenizer's 16 codes
    assert 0 < got["image_bits_per_code"] <= uniform_image + 0.5
    assert got["audio_bits_per_frame"] > 0 and got["text_bits_per_token"] > 0

    out = tmp_path / "samples"
    prompts = '["an image of a 7", "the spoken word two"]'
    sampled = vqtok("sample", "--config", "mixed_tiny", "--prior", prior, "--out", out, f"sample.prompts={prompts}",
                    "--json")  # fmt: skip
    assert sampled.code == 0, sampled.err
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["tokens"].startswith(f"<{r['stream']}>") for r in rows)
    image_rows = [r for r in rows if r["stream"] == "img"]
    assert all(r["tokens"].count("<img0:") == 16 for r in image_rows)  # the 4x4 grid, every time
    assert (out / "samples.png").is_file() == bool(image_rows)

    cas = vqtok("cas", "--config", "mixed_tiny", "--prior", prior, "--json")
    assert cas.code == 0, cas.err
    scores = cas.json()
    for key in ("image_real_accuracy", "image_sample_accuracy", "audio_real_accuracy", "audio_sample_accuracy",
                "audio_reconstruction_accuracy", "image_modality_rate", "audio_modality_rate"):  # fmt: skip
        assert 0.0 <= scores[key] <= 1.0, key


def test_train_mixed_needs_labelled_corpora(image_corpora, vqtok, tmp_path):
    result = vqtok("train-mixed", "--config", "mixed_tiny", "--out", tmp_path / "run",
                   f"data.image_corpus={image_corpora['train']}")  # fmt: skip
    assert result.code == 2 and "data.audio_corpus=DIR" in result.err


def test_a_mixed_prior_refuses_a_corpus_of_another_tokenizer(mixed_run, vqtok, tmp_path):
    """The prior's sources.json names each stream's tokenizer; an image corpus of another one (same grid and codebook,
    so the token space alone cannot tell) is refused."""
    run, _ = mixed_run
    assert (
        vqtok("train-tokenizer", "--config", "tiny", "--out", tmp_path / "other", "train.steps=2", "seed=1").code == 0
    )
    other = tmp_path / "other_codes"
    assert (
        vqtok("tokenize", "--tokenizer", tmp_path / "other" / "tokenizer", "--split", "test", "--out", other).code == 0
    )
    sources = json.loads((run / "prior" / "sources.json").read_text())
    assert set(sources["tokenizers"]) == {"image", "audio"}
    r = vqtok("evaluate", "--config", "mixed_tiny", f"prior={run / 'prior'}", f"data.image_corpus={other}",
              f"data.image_eval_corpus={other}")  # fmt: skip
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1
    assert f"data.image_corpus {other} holds codes of another tokenizer than the prior" in r.err
