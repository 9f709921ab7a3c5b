"""Every verb that combines artifacts checks that they belong together, and refuses damaged ones, in one line.

Each test runs ``vqtok`` as a user would and states what they get: the exit status, the one line on standard
error (what is wrong and what to do), and that nothing was written.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from priors.code_file import counts_digest
from recipes.cli import main
from tokenizers_vq.entropy import CodeFileHeader, pack_code_file, unpack_code_file
from tokenizers_vq.pretrained import directory_identity, legacy_identities


@pytest.fixture(scope="module")
def artifacts(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny tokenizer (``tokenizer``), its test and train corpora (``corpus``, ``train_corpus``), a prior trained
    on them (``prior``), and another tokenizer of the same layout with its test corpus (``other``,
    ``other_corpus``)."""
    root = tmp_path_factory.mktemp("identity")
    tokenizer = tiny_run / "tokenizer"
    for split, name in (("test", "corpus"), ("train", "train_corpus")):
        assert main(["tokenize", "--tokenizer", str(tokenizer), "--split", split, "--out", str(root / name)]) == 0
    assert main(["train-tokenizer", "--config", "tiny", "--out", str(root / "other_run"), "train.steps=2",
                 "seed=1"]) == 0  # fmt: skip
    other = root / "other_run" / "tokenizer"
    assert main(["tokenize", "--tokenizer", str(other), "--split", "test", "--out", str(root / "other_corpus")]) == 0
    assert main(["train-prior", "--config", "prior_tiny", "--corpus", str(root / "train_corpus"), "--out",
                 str(root / "prior_run"), f"eval_corpus={root / 'corpus'}"]) == 0  # fmt: skip
    return {"root": root, "tokenizer": tokenizer, "corpus": root / "corpus", "train_corpus": root / "train_corpus",
            "prior": root / "prior_run" / "prior", "prior_run": root / "prior_run", "other": other,
            "other_corpus": root / "other_corpus"}  # fmt: skip


PRIOR = ("--config", "prior_tiny", "--prior")  # the prior verbs (sample, evaluate, cas) with the tiny preset


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# A corpus, prior or code file of another tokenizer


def test_a_prior_records_its_tokenizer_by_content_identity(artifacts) -> None:
    sources = json.loads((artifacts["prior"] / "sources.json").read_text())
    assert sources["tokenizer"]["sha256"] == directory_identity(artifacts["tokenizer"])
    assert (artifacts["prior"] / sources["tokenizer"]["path"]).resolve() == artifacts["tokenizer"].resolve()


def test_sample_refuses_a_corpus_of_another_tokenizer(vqtok, artifacts, tmp_path) -> None:
    r = vqtok("sample", *PRIOR, artifacts["prior"], f"corpus={artifacts['other_corpus']}", "--out", tmp_path / "s")
    assert r.code == 2
    line = _one_line(r.err)
    assert f"corpus {artifacts['other_corpus']} holds codes of another tokenizer than the prior" in line
    assert "pass a corpus tokenized with the prior's tokenizer, or leave out corpus=" in line
    assert not (tmp_path / "s").exists()


def test_evaluate_refuses_a_held_out_corpus_of_another_tokenizer(vqtok, artifacts) -> None:
    r = vqtok(
        "evaluate", "--config", "prior_tiny", f"prior={artifacts['prior']}", f"eval_corpus={artifacts['other_corpus']}"
    )
    assert r.code == 2
    assert f"eval_corpus {artifacts['other_corpus']} holds codes of another tokenizer" in _one_line(r.err)


def test_cas_refuses_a_corpus_of_another_tokenizer(vqtok, artifacts) -> None:
    r = vqtok("cas", *PRIOR, artifacts["prior"], f"corpus={artifacts['other_corpus']}", "cas.samples_per_class=1")
    assert r.code == 2
    assert f"corpus {artifacts['other_corpus']} holds codes of another tokenizer" in _one_line(r.err)


def test_train_prior_refuses_an_eval_corpus_of_another_tokenizer(vqtok, artifacts, tmp_path) -> None:
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", artifacts["corpus"],
              f"eval_corpus={artifacts['other_corpus']}", "--out", tmp_path / "run")  # fmt: skip
    assert r.code == 2
    line = _one_line(r.err)
    assert "hold codes of different tokenizers" in line and "tokenize both with the same tokenizer" in line
    assert not (tmp_path / "run").exists()


def test_bpe_refuses_corpora_of_different_tokenizers(vqtok, artifacts, tmp_path) -> None:
    r = vqtok("bpe", "--config", "bpe_tiny", f"corpus={artifacts['corpus']}",
              f"eval_corpus={artifacts['other_corpus']}", "--out", tmp_path / "bpe")  # fmt: skip
    assert r.code == 2
    assert f"corpus {artifacts['corpus']} and eval_corpus {artifacts['other_corpus']} hold codes of different " \
           "tokenizers" in _one_line(r.err)  # fmt: skip
    assert not (tmp_path / "bpe").exists()


def test_train_mixed_refuses_a_held_out_corpus_of_another_tokenizer(vqtok, artifacts, labelled_speech, tmp_path):
    r = vqtok("train-mixed", "--config", "mixed_tiny", f"data.image_corpus={artifacts['corpus']}",
              f"data.image_eval_corpus={artifacts['other_corpus']}", f"data.audio_corpus={labelled_speech['train']}",
              "--out", tmp_path / "mixed")  # fmt: skip
    assert r.code == 2
    assert "data.image_corpus" in r.err and "hold codes of different tokenizers" in _one_line(r.err)
    assert not (tmp_path / "mixed").exists()


def test_sample_refuses_when_the_corpus_tokenizer_was_replaced(vqtok, artifacts, tmp_path) -> None:
    """A run folder whose tokenizer was retrained after tokenizing: decoding with it would draw wrong images."""
    run = tmp_path / "runs"
    shutil.copytree(artifacts["tokenizer"], run / "tok" / "tokenizer")
    assert (
        vqtok("tokenize", "--tokenizer", run / "tok" / "tokenizer", "--split", "test", "--out", run / "codes").code == 0
    )
    shutil.rmtree(run / "tok" / "tokenizer")
    shutil.copytree(artifacts["other"], run / "tok" / "tokenizer")
    r = vqtok("sample", *PRIOR, artifacts["prior"], f"corpus={run / 'codes'}", "--out", tmp_path / "s",
              "sample.num_samples=1")  # fmt: skip
    assert r.code == 2
    line = _one_line(r.err)
    assert f"the tokenizer at {run / 'tok' / 'tokenizer'} is not the one that made the corpus" in line
    assert "tokenize the data again" in line


@pytest.mark.parametrize("keep_identity", [True, False], ids=["other-model", "no-identity"])
def test_the_tokenizer_path_in_meta_json_is_followed_only_to_the_tokenizer_it_names(
    vqtok, artifacts, tmp_path, keep_identity
) -> None:
    """meta.json pointing its tokenizer at another model folder (outside the corpus, as such paths are) loads
    nothing: the folder must be the tokenizer the corpus names by identity."""
    corpus = tmp_path / "codes"
    shutil.copytree(artifacts["corpus"], corpus)
    meta = json.loads((corpus / "meta.json").read_text())
    meta["tokenizer"]["path"] = str(artifacts["other"])
    if not keep_identity:
        del meta["tokenizer"]["sha256"]
    (corpus / "meta.json").write_text(json.dumps(meta))
    r = vqtok("sample", *PRIOR, artifacts["prior"], f"corpus={corpus}", "--out", tmp_path / "s")
    assert r.code == 2
    expected = "is not the one that made the corpus" if keep_identity else "without its identity (sha256)"
    assert expected in _one_line(r.err)
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------
# Code files name the tokenizer by content identity


@pytest.fixture(scope="module")
def code_file(artifacts) -> Path:
    path = artifacts["root"] / "digits.vqc"
    assert main(["compress", "--tokenizer", str(artifacts["tokenizer"]), "--max-items", "6", "compress.fit_items=50",
                 "--out", str(path)]) == 0  # fmt: skip
    return path


def test_a_code_file_names_the_tokenizer_by_content_identity(code_file, artifacts) -> None:
    header, _ = unpack_code_file(code_file.read_bytes())
    assert header.version == 2 and header.tokenizer_sha256 == directory_identity(artifacts["tokenizer"])


def test_decompress_accepts_the_same_tokenizer_saved_again_by_another_process(vqtok, code_file, artifacts, tmp_path):
    copy = tmp_path / "copy"
    code = (f"from modalities.image import ImageTokenizer; "
            f"ImageTokenizer.from_pretrained({str(artifacts['tokenizer'])!r}).save_pretrained({str(copy)!r})")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    r = vqtok("decompress", "--tokenizer", copy, "--input", code_file, "--out", tmp_path / "back", "--json")
    assert r.code == 0, r.err
    assert r.json()["items"] == 6


def test_decompress_refuses_a_tokenizer_whose_config_was_edited(vqtok, code_file, artifacts, tmp_path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(artifacts["tokenizer"], edited)
    meta = json.loads((edited / "config.json").read_text())
    meta["config"]["activation"] = "silu" if meta["config"].get("activation") != "silu" else "relu"
    (edited / "config.json").write_text(json.dumps(meta))
    r = vqtok("decompress", "--tokenizer", edited, "--input", code_file, "--out", tmp_path / "back")
    assert r.code == 2
    line = _one_line(r.err)
    assert "this file was compressed with a different tokenizer" in line and "Pass the tokenizer it was" in line
    assert not (tmp_path / "back").exists()


def test_a_code_file_of_format_version_1_still_decompresses(vqtok, code_file, artifacts, tmp_path) -> None:
    """Version 1 named the tokenizer by a hash of its files' hashes."""
    header, payload = unpack_code_file(code_file.read_bytes())
    files_hash = (legacy_identities(artifacts["tokenizer"]) - {header.tokenizer_sha256}).pop()
    old = CodeFileHeader(**{**header.__dict__, "version": 1, "tokenizer_sha256": files_hash})
    (tmp_path / "old.vqc").write_bytes(pack_code_file(old, payload))
    r = vqtok("decompress", "--tokenizer", artifacts["tokenizer"], "--input", tmp_path / "old.vqc", "--out",
              tmp_path / "back", "--json")  # fmt: skip
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rate_model": "unigram"}, "'unigram_counts' is not one list of counts per level"),
        ({"rate_model": "unigram", "unigram_counts": [1] * 16, "names": "x"}, "'names' is not a list of 6 strings"),
    ],
)
def test_decompress_refuses_a_crafted_header_before_decoding(vqtok, code_file, artifacts, tmp_path, extra, message):
    header, payload = unpack_code_file(code_file.read_bytes())
    crafted = CodeFileHeader(**{**header.__dict__, "extra": {"modality": "image", **extra}})
    (tmp_path / "bad.vqc").write_bytes(pack_code_file(crafted, payload))
    r = vqtok("decompress", "--tokenizer", artifacts["tokenizer"], "--input", tmp_path / "bad.vqc", "--out",
              tmp_path / "back")  # fmt: skip
    assert r.code == 2
    assert f"the code file's header is malformed: {message}" in _one_line(r.err)
    assert not (tmp_path / "back").exists()


def test_decompress_refuses_codebooks_that_are_not_the_tokenizers(vqtok, code_file, artifacts, tmp_path) -> None:
    header, payload = unpack_code_file(code_file.read_bytes())
    counts = {"rate_model": "unigram", "unigram_counts": [1] * 16 + [10**9]}  # fits any payload
    crafted = CodeFileHeader(**{**header.__dict__, "codebook_sizes": [17], "extra": {**header.extra, **counts}})
    crafted.model_sha256 = counts_digest([np.asarray(counts["unigram_counts"])])  # consistent, as a crafted file is
    (tmp_path / "bad.vqc").write_bytes(pack_code_file(crafted, payload))
    r = vqtok("decompress", "--tokenizer", artifacts["tokenizer"], "--input", tmp_path / "bad.vqc", "--out",
              tmp_path / "back")  # fmt: skip
    assert r.code == 2
    assert "header is malformed: codebooks [17], where the tokenizer's make [16]" in _one_line(r.err)


def test_resume_refuses_a_corpus_retokenized_with_another_tokenizer(vqtok, artifacts, tmp_path) -> None:
    """The corpus path of the run is the same, but its codes now come from another tokenizer."""
    codes, run = tmp_path / "codes", tmp_path / "run"
    shutil.copytree(artifacts["corpus"], codes)
    assert vqtok("train-prior", "--config", "prior_tiny", "--corpus", codes, "--out", run).code == 0
    shutil.rmtree(codes)
    shutil.copytree(artifacts["other_corpus"], codes)
    r = vqtok("train-prior", "--out", run, "--resume", "train.steps=8")
    assert r.code == 2
    assert f"corpus {codes} holds codes of another tokenizer than the prior" in _one_line(r.err)


# ---------------------------------------------------------------------------------------------
# Damaged weights and checkpoints


def _flip_tensor_byte(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x04
    weights.write_bytes(bytes(data))


def test_a_tokenizer_with_damaged_weights_is_refused(vqtok, artifacts, tmp_path) -> None:
    damaged = tmp_path / "tok"
    shutil.copytree(artifacts["tokenizer"], damaged)
    _flip_tensor_byte(damaged / "model.safetensors")
    r = vqtok("evaluate", "--tokenizer", damaged)
    assert r.code == 2
    line = _one_line(r.err)
    assert f"{damaged / 'model.safetensors'} is damaged: its tensors do not match the tensors_sha256" in line
    assert "Re-save the model from its training run (or re-download it)" in line


def test_a_prior_with_damaged_weights_is_refused(vqtok, artifacts, tmp_path) -> None:
    damaged = tmp_path / "prior"
    shutil.copytree(artifacts["prior"], damaged)
    _flip_tensor_byte(damaged / "model.safetensors")
    r = vqtok("sample", *PRIOR, damaged, f"corpus={artifacts['corpus']}", "--out", tmp_path / "s")
    assert r.code == 2
    assert f"{damaged / 'model.safetensors'} is damaged" in _one_line(r.err)


def _damaged_run(artifacts, tmp_path: Path, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(artifacts["prior_run"], run)
    damage(run / "checkpoint" / "state.pt")
    return run


def _altered(path: Path) -> None:
    """Change one weight but keep the digest saved with the old content: what a damaged but readable file is."""
    state = torch.load(path, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] += 1.0
    torch.save(state, path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b""), r"cannot be read as a checkpoint \(EOFError\): it is damaged"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), r"cannot be read as a checkpoint"),
        (_altered, r"is damaged: its content does not match the digest saved with it"),
    ],
    ids=["empty", "truncated", "altered"],
)
def test_resume_from_a_damaged_checkpoint_is_one_line(vqtok, artifacts, tmp_path, damage, message) -> None:
    run = _damaged_run(artifacts, tmp_path, damage)
    r = vqtok("train-prior", "--out", run, "--resume")
    assert r.code == 2
    line = _one_line(r.err)
    assert re.search(message, line) and "restore it from a copy, or start the run again with --overwrite" in line
    assert str(run / "checkpoint" / "state.pt") in line


def test_resume_from_the_checkpoint_of_another_model_is_one_line(vqtok, artifacts, tiny_run, tmp_path) -> None:
    """A whole, readable state.pt of another run (a prior's, in a tokenizer's run folder)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.copy(artifacts["prior_run"] / "checkpoint" / "state.pt", run / "checkpoint" / "state.pt")
    r = vqtok("train-tokenizer", "--out", run, "--resume")
    assert r.code == 2
    line = _one_line(r.err)
    assert f"{run / 'checkpoint' / 'state.pt'} does not fit this run" in line and "--overwrite" in line


def test_a_checkpoint_saved_before_the_digest_still_resumes(vqtok, artifacts, tmp_path) -> None:
    def without_digest(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        del state["digest"]
        torch.save(state, path)

    run = _damaged_run(artifacts, tmp_path, without_digest)
    r = vqtok("train-prior", "--out", run, "--resume", "train.steps=7", "--json")
    assert r.code == 0, r.err
    assert r.json()["resumed_from"] == 6 and r.json()["step"] == 7


# ---------------------------------------------------------------------------------------------
# A corpus that contradicts its meta.json


def _corpus_copy(artifacts, tmp_path: Path) -> Path:
    copy = tmp_path / "codes"
    shutil.copytree(artifacts["corpus"], copy)
    return copy


def test_train_prior_refuses_a_corpus_whose_meta_json_leads_outside(vqtok, artifacts, tmp_path) -> None:
    corpus = _corpus_copy(artifacts, tmp_path)
    meta = json.loads((corpus / "meta.json").read_text())
    meta["levels"][0]["file"] = "../../../elsewhere/codes.npy"
    (corpus / "meta.json").write_text(json.dumps(meta))
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", corpus, "--out", tmp_path / "run")
    assert r.code == 2
    assert "'levels[0].file' = '../../../elsewhere/codes.npy' leads outside the corpus folder" in _one_line(r.err)


def test_train_prior_refuses_float_codes_naming_the_file(vqtok, artifacts, tmp_path) -> None:
    corpus = _corpus_copy(artifacts, tmp_path)
    codes = np.load(corpus / "codes_level0.npy")
    np.save(corpus / "codes_level0.npy", codes.astype(np.float32))
    r = vqtok("train-prior", "--config", "prior_tiny", "--corpus", corpus, "--out", tmp_path / "run")
    assert r.code == 2
    line = _one_line(r.err)
    assert f"{corpus / 'codes_level0.npy'} does not match meta.json: it holds float32 values" in line
    assert not (tmp_path / "run").exists()


def test_sample_outputs_name_the_prior_and_tokenizer_that_made_them(vqtok, artifacts, tmp_path) -> None:
    r = vqtok("sample", *PRIOR, artifacts["prior"], "--out", tmp_path / "s", "sample.num_samples=1")
    assert r.code == 0, r.err
    sources = json.loads((tmp_path / "s" / "sources.json").read_text())
    assert sources["prior"]["sha256"] == directory_identity(artifacts["prior"])
    assert sources["tokenizer"]["sha256"] == directory_identity(artifacts["tokenizer"])
    assert (tmp_path / "s" / sources["tokenizer"]["path"]).resolve() == artifacts["tokenizer"].resolve()
