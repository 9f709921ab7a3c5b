"""The prior recipes on tiny corpora: train (and resume), sample, evaluate bits/dim, CAS, speech to WAV."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from priors import PixelCNNPrior, TransformerPrior, load_prior
from recipes.engine.config import load_config
from recipes.priors import cas, evaluate, sample, train_prior
from recipes.priors.config import PriorRecipeConfig
from tokenizers_vq.corpus import open_corpus, trim_at_end
from tokenizers_vq.io import read_jsonl


def _cfg(*overrides: str) -> PriorRecipeConfig:
    return load_config(PriorRecipeConfig, "prior_tiny", list(overrides))


@pytest.fixture(scope="module", params=["pixelcnn", "transformer"])
def trained(request, image_corpora, tmp_path_factory):
    """A tiny prior of each kind trained on the digit codes (6 steps); its run directory."""
    out = tmp_path_factory.mktemp(request.param) / "run"
    cfg = _cfg(f"corpus={image_corpora['train']}", f"eval_corpus={image_corpora['test']}", f"out={out}",
               f"model.kind={request.param}")  # fmt: skip
    result = train_prior.run(cfg)
    assert result.step == 6 and result.figures["bits_per_code"] > 0
    return out


def test_training_writes_a_loadable_prior_and_metrics(trained):
    prior = load_prior(trained / "prior")
    assert isinstance(prior, (PixelCNNPrior, TransformerPrior))
    assert prior.layout.shapes == [(4, 4)] and prior.layout.num_classes == 10
    rows = read_jsonl(trained / "metrics.jsonl")
    assert [r["step"] for r in rows if r["kind"] == "train"] == [2, 4, 6]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert evals[-1]["bits_per_dim"] == pytest.approx(evals[-1]["bits_per_item"] / 256)


def test_resumed_training_equals_an_uninterrupted_run(image_corpora, tmp_path):
    common = [f"corpus={image_corpora['train']}", "model.kind=pixelcnn"]
    train_prior.run(_cfg(*common, f"out={tmp_path / 'straight'}"))
    train_prior.run(_cfg(*common, f"out={tmp_path / 'split'}", "train.steps=3"))
    with pytest.raises(FileExistsError, match="resume"):
        train_prior.run(_cfg(*common, f"out={tmp_path / 'split'}"))
    resumed = train_prior.run(_cfg(*common, f"out={tmp_path / 'split'}"), resume=True)
    assert resumed.resumed_from == 3 and resumed.step == 6
    a, b = load_prior(tmp_path / "straight" / "prior"), load_prior(tmp_path / "split" / "prior")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_sample_writes_codes_and_a_png_grid(trained, tmp_path):
    result = sample.run(_cfg(f"prior={trained / 'prior'}", f"out={tmp_path}"))
    assert result.num_samples == 20  # 2 per class
    assert (tmp_path / "samples.png").is_file() and result.files == [str(tmp_path / "samples.png")]
    codes = np.load(tmp_path / "codes_level0.npy")
    assert codes.shape == (20, 4, 4) and codes.min() >= 0 and codes.max() < 16
    assert np.load(tmp_path / "labels.npy").tolist() == [c for c in range(10) for _ in range(2)]
    assert json.loads((tmp_path / "samples.json").read_text())["num_samples"] == 20


def test_naive_and_cached_sampling_agree_through_the_recipe(trained, tmp_path):
    for cached in (True, False):
        sample.run(_cfg(f"prior={trained / 'prior'}", f"out={tmp_path / str(cached)}", f"sample.cached={cached}",
                        "sample.decode=false", "sample.classes=[3]"))  # fmt: skip
    assert np.array_equal(
        np.load(tmp_path / "True" / "codes_level0.npy"), np.load(tmp_path / "False" / "codes_level0.npy")
    )


def test_evaluate_reports_bits_per_dim_and_an_nll_bound(trained, tmp_path):
    result = evaluate.run(_cfg(f"prior={trained / 'prior'}", f"out={tmp_path / 'eval.json'}"))
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures == json.loads(json.dumps(result.to_dict()))
    assert figures["num_items"] == 64 and figures["dims_per_item"] == 256
    assert figures["bits_per_dim"] == pytest.approx(figures["bits_per_item"] / 256)
    assert figures["uniform_bits_per_dim"] == pytest.approx(16 * 4 / 256)  # 16 codes of log2(16) bits
    assert figures["elbo_bits_per_dim"] == pytest.approx(figures["bits_per_dim"] + figures["distortion_bits_per_dim"])


def test_cas_reports_cas_beside_the_real_classifier_and_rejection(trained):
    figures = cas.run(_cfg(f"prior={trained / 'prior'}")).to_dict()
    for key in ("cas", "real_accuracy", "cas_ratio", "acceptance_rate"):
        assert 0.0 <= figures[key] <= 1.0 or key == "cas_ratio"
    assert figures["num_samples"] == 40 and figures["num_test"] == 100


def test_rejection_sampling_in_sample(trained, tmp_path):
    result = sample.run(_cfg(f"prior={trained / 'prior'}", f"out={tmp_path}", "sample.rejection_threshold=0.05"))
    assert result.acceptance_rate is not None and 0.0 <= result.acceptance_rate <= 1.0


def test_missing_inputs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="corpus=DIR"):
        train_prior.run(_cfg(f"out={tmp_path}"))
    with pytest.raises(ValueError, match="--prior"):
        sample.run(_cfg())
    with pytest.raises(FileNotFoundError, match="train-prior"):
        evaluate.run(_cfg(f"prior={tmp_path / 'nothing'}"))


def test_speech_prior_samples_to_wav(speech_corpora, tmp_path):
    corpus = open_corpus(speech_corpora["train"])
    assert corpus.end_code == 16 and corpus.layout().ndim == 1
    cfg = _cfg(f"corpus={speech_corpora['train']}", f"eval_corpus={speech_corpora['eval']}", f"out={tmp_path / 'run'}",
               "model.pixelcnn.kernel_size=2", "train.batch_size=4")  # fmt: skip
    result = train_prior.run(cfg)
    assert result.figures["bits_per_dim"] is None and result.figures["bits_per_code"] > 0
    out = sample.run(_cfg(f"prior={tmp_path / 'run' / 'prior'}", f"out={tmp_path / 'samples'}", "sample.num_samples=3"))
    assert out.files and all(f.endswith(".wav") for f in out.files)
    figures = evaluate.run(_cfg(f"prior={tmp_path / 'run' / 'prior'}")).figures
    assert figures["num_items"] == 2 and figures["bits_per_frame"] > figures["bits_per_code"]


def test_trim_at_end():
    rows = torch.tensor([[1, 2, 9, 3], [4, 5, 6, 7]])
    assert [r.tolist() for r in trim_at_end(rows, 9)] == [[1, 2], [4, 5, 6, 7]]


def test_quickstart_prior_stage(tiny_run, tmp_path):
    from recipes.quickstart import fit_and_sample
    from recipes.tokenizer.config import ImageRecipeConfig

    image_cfg = load_config(ImageRecipeConfig, "tiny")
    figures = fit_and_sample(
        image_cfg, str(tiny_run / "tokenizer"), tmp_path, ["train.steps=2", "sample.num_samples=1"]
    )
    assert figures["prior_steps"] == 2 and figures["bits_per_dim"] > 0
    assert (tmp_path / "samples" / "samples.png").is_file() and (tmp_path / "codes_train" / "meta.json").is_file()


def test_quickstart_prior_starts_again_when_the_tokenizer_changed(tiny_run, tmp_path):
    import shutil

    from modalities.image import ImageTokenizer
    from recipes.quickstart import fit_and_sample
    from recipes.tokenizer.config import ImageRecipeConfig

    image_cfg = load_config(ImageRecipeConfig, "tiny")
    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(tiny_run / "tokenizer", tokenizer)
    fit_and_sample(image_cfg, str(tokenizer), tmp_path, ["train.steps=2", "sample.num_samples=1"])
    again = fit_and_sample(image_cfg, str(tokenizer), tmp_path, ["train.steps=3", "sample.num_samples=1"])

    def train_rows() -> list[int]:
        return [r["step"] for r in read_jsonl(tmp_path / "prior_run" / "metrics.jsonl") if r["kind"] == "train"]

    assert again["prior_steps"] == 3 and train_rows() == [2, 3]  # same tokenizer: the run continued from step 2
    moved_on = ImageTokenizer.from_pretrained(tokenizer)  # the tokenizer trained further
    with torch.no_grad():
        next(moved_on.parameters()).add_(0.01)
    moved_on.save_pretrained(tokenizer)
    fit_and_sample(image_cfg, str(tokenizer), tmp_path, ["train.steps=3", "sample.num_samples=1"])
    assert train_rows() == [3]  # a new run from step 0
