"""Each ``vqtok`` verb end to end on the tiny preset and the bundled digits, plus bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import is_dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modalities.image import ImageTokenizer, load_image_dataset
from recipes.engine.config import describe_type, peek
from recipes.verbs import _ROWS, VERBS
from tokenizers_vq.io import read_jsonl
from tokenizers_vq.pretrained import directory_identity


def _level_figures(level: dict) -> None:
    for key in ("usage", "perplexity", "dead_codes", "label_nmi", "shape", "codebook_size"):
        assert key in level, key


def test_help_lists_verbs_and_presets(vqtok) -> None:
    res = vqtok("--help")
    assert res.code == 0
    listed = res.out.split("verbs:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in listed] == list(VERBS)  # in the table's order
    assert "tiny" in res.out and "quickstart" in res.out
    assert vqtok().code == 2
    assert vqtok("train-tokenizer", "--help").code == 0


def test_the_verb_table_is_complete_and_loads() -> None:
    assert len(VERBS) == len(_ROWS), "two rows of recipes/verbs.py share a verb name"
    common = {"--config", "--out", "--json", "--print-config", "--resume", "--overwrite", "--help"}
    for verb in VERBS.values():
        assert verb.recipes and len(verb.modalities) == len(set(verb.modalities)), verb.name
        assert peek(verb.default_config, [], "modality", "image") in verb.modalities, verb.name
        flags = [s.flag for s in verb.shortcuts]
        assert len(flags) == len(set(flags)) and not common & set(flags), verb.name
        schemas = {}
        for recipe in verb.recipes:
            function, schemas[recipe.modality] = recipe.load()
            assert callable(function) and is_dataclass(schemas[recipe.modality]), (verb.name, recipe.modality)
        for shortcut in verb.shortcuts:  # each sets a key of at least one of the verb's schemas
            assert any(describe_type(schema, shortcut.key) != "a value" for schema in schemas.values()), shortcut
    with pytest.raises(ValueError, match=r"`phones` has no recipe for modality 'image'; modalities with one: speech"):
        VERBS["phones"].recipe("image")


def test_importing_the_cli_imports_no_recipe() -> None:
    """The table is data: `vqtok --help` imports no recipe module (and nothing registers itself on import)."""
    code = (
        "import sys, recipes.cli; from recipes.verbs import VERBS; "
        "targets = {r.target.split(':')[0] for v in VERBS.values() for r in v.recipes}; "
        "print(sorted(targets & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_changed_data_set_says_what_it_resets(vqtok) -> None:
    res = vqtok("train-tokenizer", "--config", "tiny", "--data", "cifar10_subset", "--print-config")
    assert res.code == 0 and "max_train_images: null" in res.out
    assert res.err == (
        "note: data.name=cifar10_subset (from the command line) replaces the data section of preset 'tiny' "
        "(data.max_train_images reset to defaults)\n"
    )


def test_unknown_verb_exits_2(vqtok) -> None:
    res = vqtok("train-tokeniser")
    assert res.code == 2 and "unknown verb" in res.err


def test_print_config_shows_overrides(vqtok) -> None:
    res = vqtok("train-tokenizer", "--config", "tiny", "--steps", "3", "model.codebook_size=8", "--print-config")
    assert res.code == 0
    assert "steps: 3" in res.out and "codebook_size: 8" in res.out


def test_train_tokenizer_writes_a_run_directory(tiny_run: Path) -> None:
    for name in ("config.yaml", "metrics.jsonl", "tokenizer/config.json", "tokenizer/model.safetensors",
                 "checkpoint/state.pt"):  # fmt: skip
        assert (tiny_run / name).is_file(), name
    rows = read_jsonl(tiny_run / "metrics.jsonl")
    train_rows = [r for r in rows if r["kind"] == "train"]
    eval_rows = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in train_rows] == [2, 4, 6, 8]
    assert [r["step"] for r in eval_rows] == [4, 8]
    assert {"loss", "psnr", "usage", "perplexity"} <= set(train_rows[0])
    tok = ImageTokenizer.from_pretrained(tiny_run / "tokenizer")
    assert tok.config.codebook_size == 16
    assert "codebook_size: 16" in (tiny_run / "config.yaml").read_text()


def test_train_tokenizer_json_and_refusal_to_clobber(vqtok, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2", "--json")
    assert res.code == 0
    summary = res.json()
    assert summary["step"] == summary["steps"] == 2
    assert summary["figures"]["psnr"] > 0
    _level_figures(summary["figures"]["levels"][0])

    again = vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2")
    assert again.code == 2
    assert "already holds a training run" in again.err and "--resume" in again.err
    assert len(again.err.strip().splitlines()) == 1

    fresh = vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2", "--overwrite", "--json")
    assert fresh.code == 0 and fresh.json()["resumed_from"] is None


def test_evaluate_table_and_json(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    table = vqtok("evaluate", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer")
    assert table.code == 0
    for word in ("psnr", "ssim", "mse", "usage", "perplexity", "dead_codes", "label_nmi"):
        assert word in table.out

    target = tmp_path / "figures.json"
    res = vqtok("evaluate", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--json", "--out", target)
    assert res.code == 0
    figures = res.json()  # stdout holds the JSON object and nothing else
    assert figures["dataset"] == "digits" and figures["split"] == "test"
    assert figures["num_images"] == 128  # eval.max_images of the tiny preset
    assert 0 < figures["psnr"] < 100 and 0 <= figures["mse"] <= 1 and -1 <= figures["ssim"] <= 1
    _level_figures(figures["levels"][0])
    assert json.loads(target.read_text()) == figures


def test_tokenize_writes_a_memory_mappable_corpus(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    res = vqtok("tokenize", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", out,
                "tokenize.batch_size=64", "--json")  # fmt: skip
    assert res.code == 0
    meta = json.loads((out / "meta.json").read_text())
    data = load_image_dataset("digits", "test")
    assert meta["count"] == len(data) == res.json()["num_images"]
    assert meta["dataset"] == {"name": "digits", "split": "test", "class_names": data.class_names}
    assert meta["tokenizer"]["sha256"] == directory_identity(tiny_run / "tokenizer")
    assert (out / meta["tokenizer"]["path"]).resolve() == (tiny_run / "tokenizer").resolve()  # relative to the corpus
    assert meta["levels"][0]["codebook_size"] == 16 and meta["levels"][0]["shape"] == [4, 4]
    assert meta["format_version"] == 2

    codes = np.load(out / "codes_level0.npy", mmap_mode="r")
    assert isinstance(codes, np.memmap) and codes.dtype == np.int16 and codes.shape == (len(data), 4, 4)
    labels = np.load(out / "labels.npy")
    np.testing.assert_array_equal(labels, data.labels.numpy())
    tok = ImageTokenizer.from_pretrained(tiny_run / "tokenizer")
    np.testing.assert_array_equal(codes, tok.encode(data.images).levels[0].numpy())
    # The corpus files, and the marker that says vqtok wrote them (recipes.engine.outputs); no temporary left.
    assert sorted(p.name for p in out.iterdir()) == [".vqtok-output.json", "codes_level0.npy", "config.yaml",
                                                     "labels.npy", "meta.json"]  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_tokenize_two_levels_and_default_location(vqtok, tmp_path: Path) -> None:
    run = tmp_path / "run2"
    two = ["model.kind=vqvae2", "model.num_levels=2", "model.downsample=2", "model.codebook_size=300"]
    assert vqtok("train-tokenizer", "--config", "tiny", "--out", run, "--steps", "1", *two).code == 0
    res = vqtok("tokenize", "--config", "tiny", "--tokenizer", run / "tokenizer", "--split", "test")
    assert res.code == 0
    corpus = run / "codes_digits_test"
    meta = json.loads((corpus / "meta.json").read_text())
    assert [lvl["shape"] for lvl in meta["levels"]] == [[4, 4], [8, 8]]
    top, bottom = np.load(corpus / "codes_level0.npy"), np.load(corpus / "codes_level1.npy")
    assert top.dtype == bottom.dtype == np.int16  # K=300 still fits int16
    assert top.shape[1:] == (4, 4) and bottom.shape[1:] == (8, 8)


def test_reconstruct_writes_a_grid_and_figures(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "recon"
    res = vqtok("reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", out,
                "--num-images", "6", "--json")  # fmt: skip
    assert res.code == 0
    summary = res.json()
    assert len(summary["indices"]) == 6
    assert set(summary["figures"]) == {"mse", "psnr", "ssim"}
    with Image.open(out / "reconstructions.png") as png:
        # per_row 4 → 2 pairs of rows; 16 px digits enlarged 4x to 64 px cells with 2 px padding.
        assert png.size == (4 * 66 + 2, 4 * 66 + 2)
    assert json.loads((out / "reconstructions.json").read_text())["figures"] == summary["figures"]
    assert (out / "config.yaml").is_file()


def test_quickstart_on_the_tiny_preset(vqtok, tmp_path: Path) -> None:
    out = tmp_path / "qs"
    res = vqtok("quickstart", "--config", "tiny", "--out", out)
    assert res.code == 0
    assert "psnr" in res.out and "perplexity" in res.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8
    assert {"psnr", "ssim", "mse", "levels"} <= set(summary["figures"])
    assert (out / "reconstructions" / "reconstructions.png").is_file()

    # Running it again continues (here: finds it complete) instead of refusing, and keeps the run's training
    # time (the tokenizer's and the prior's), not the few seconds of the second invocation.
    again = vqtok("quickstart", "--config", "tiny", "--out", out, "--json")
    assert again.code == 0 and again.json()["steps"] == 8
    rewritten = json.loads((out / "summary.json").read_text())
    assert rewritten["train_seconds"] == again.json()["train_seconds"] == summary["train_seconds"] > 0
    assert rewritten["figures"]["prior"]["prior_train_seconds"] == summary["figures"]["prior"]["prior_train_seconds"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "--config", "tiny", "--tokenizer", "/nonexistent/tok"], "does not exist"),
        (["evaluate", "--config", "tiny"], "needs a tokenizer"),
        (["train-tokenizer", "--config", "tiny", "--data", "imagenet"], "unknown image data set 'imagenet'"),
        (["train-tokenizer", "--config", "tiny", "model.codebook_sise=3"], "unknown config key 'model.codebook_sise'"),
        (["train-tokenizer", "--config", "tiny", "train.steps=many"], "config key 'train.steps' expects an integer"),
        (["train-tokenizer", "--config", "tiny", "oops"], "must look like key=value"),
        (["train-tokenizer", "--config", "nope"], "unknown preset 'nope'"),
        (["train-tokenizer", "--config", "tiny", "device=cuda:99"], "device=cuda:99"),
        (["train-tokenizer", "--config", "tiny", "modality=video"], "no recipe for modality 'video'"),
        (["tokenize", "--config", "tiny", "--tokenizer", "/nonexistent/tok"], "does not exist"),
        (["reconstruct", "--config", "tiny", "--tokenizer", "/nonexistent/tok"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(vqtok, args: list[str], needle: str, tmp_path: Path) -> None:
    res = vqtok(*args, "--out", tmp_path / "out")
    assert res.code == 2, res.err
    assert needle in res.err
    errors = [line for line in res.err.strip().splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and "Traceback" not in res.err
    assert res.out == ""


def test_train_tokenizer_rejects_data_that_does_not_fit(vqtok, tmp_path: Path) -> None:
    res = vqtok("train-tokenizer", "--config", "tiny", "--out", tmp_path / "r", "model.in_channels=3")
    assert res.code == 2 and "pass model.in_channels=1" in res.err
