"""Outputs: nothing of the user's is ever lost (recipes.engine.outputs).

A verb writes a folder only when it is new, empty, or made by vqtok (its ``.vqtok-output.json``); writing
again, or ``--overwrite``, removes only what vqtok wrote there. A verb that writes one file replaces an
existing one only with ``--overwrite``, and then only a file of its own kind. Each refusal is one line on
standard error with exit status 2, names the path, and leaves everything as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modalities.image import ImageTokenizer, ImageTokenizerConfig
from recipes.engine.outputs import LOCK_NAME, MARKER_NAME, read_marker

THESIS = "three years of work\n"


def user_folder(path: Path) -> Path:
    """A folder of the user's: vqtok did not make it, and it holds their thesis."""
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text(THESIS)
    return path


def assert_refused(res, path: Path, *words: str) -> None:
    """Exit 2, one line (notes aside) that names ``path`` and has ``words``, nothing on standard output."""
    assert res.code == 2, res.err
    lines = [line for line in res.err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and "Traceback" not in res.err, res.err
    assert str(path) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert res.out == ""


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def corpus(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test digits through the tiny tokenizer."""
    from recipes.cli import main

    out = tmp_path_factory.mktemp("safe_outputs") / "codes_test"
    assert main(["tokenize", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--split", "test",
                 "--out", str(out)]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def code_file(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four test digits compressed with code frequencies (no prior)."""
    from recipes.cli import main

    path = tmp_path_factory.mktemp("safe_outputs") / "four.vqc"
    assert main(["compress", "--config", "tiny", "--tokenizer", str(tiny_run / "tokenizer"), "--max-items", "4",
                 "compress.fit_items=64", "--out", str(path)]) == 0  # fmt: skip
    return path


def folder_verbs(tiny_run: Path, corpus: Path, speech: dict[str, Path] | None) -> dict[str, list[object]]:
    """Every verb that writes a folder, with inputs that get it as far as writing (the check comes first)."""
    tok = tiny_run / "tokenizer"
    verbs: dict[str, list[object]] = {
        "train-tokenizer": ["train-tokenizer", "--config", "tiny"],
        "quickstart": ["quickstart", "--config", "tiny"],
        "train-prior": ["train-prior", "--config", "prior_tiny", "--corpus", corpus],
        "train-mixed": ["train-mixed", "--config", "mixed_tiny"],
        "tokenize": ["tokenize", "--config", "tiny", "--tokenizer", tok, "--split", "test"],
        "reconstruct": ["reconstruct", "--config", "tiny", "--tokenizer", tok],
        "decompress": ["decompress", "--config", "tiny", "--tokenizer", tok, "--input", "never_read.vqc"],
        "sample": ["sample", "--config", "prior_tiny", "--prior", "never_read"],
        "rd": ["rd", "--config", "tiny", f"rd.tokenizers=[{tok}]"],
        "report": ["report", tiny_run],
        "bpe": ["bpe", "--config", "bpe_tiny", "--corpus", "never_read", "--eval-corpus", "never_read"],
    }
    if speech is not None:
        verbs["phones"] = ["phones", "--config", "speech_tiny", "--tokenizer", speech["tokenizer"],
                           f"data.root={speech['data']}"]  # fmt: skip
    return verbs


FOLDER_VERBS = ["train-tokenizer", "quickstart", "train-prior", "train-mixed", "tokenize", "reconstruct", "decompress",
                "sample", "rd", "report", "bpe"]  # fmt: skip


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("verb", FOLDER_VERBS)
def test_every_folder_verb_refuses_a_folder_vqtok_did_not_write(
    vqtok, tiny_run: Path, corpus: Path, tmp_path: Path, verb: str, overwrite: bool
) -> None:
    """`vqtok VERB --out DIR` (with or without --overwrite) on the user's folder: exit 2, "not written by vqtok",
    the folder exactly as it was (no .vqtok files, no OUT.parts beside it)."""
    folder = user_folder(tmp_path / "mine")
    args = folder_verbs(tiny_run, corpus, None)[verb]
    res = vqtok(*args, "--out", folder, *(["--overwrite"] if overwrite else []))
    assert_refused(res, folder, "was not written by vqtok", "--out a new or empty folder")
    assert names(folder) == ["thesis.txt"] and (folder / "thesis.txt").read_text() == THESIS
    assert names(tmp_path) == ["mine"]


def test_phones_refuses_a_folder_vqtok_did_not_write(vqtok, speech_corpora: dict[str, Path], tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "mine")
    args = folder_verbs(Path("unused"), Path("unused"), speech_corpora)["phones"]
    assert_refused(vqtok(*args, "--out", folder), folder, "was not written by vqtok")
    assert names(folder) == ["thesis.txt"]


def test_a_file_where_a_folder_goes_is_refused(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "codes"
    target.write_text(THESIS)
    res = vqtok(
        "tokenize", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", target
    )
    assert_refused(res, target, "is a file, not a folder")
    assert target.read_text() == THESIS and names(tmp_path) == ["codes"]


def test_writing_again_replaces_only_what_vqtok_wrote(vqtok, tiny_run: Path, code_file: Path, tmp_path: Path) -> None:
    """`decompress` into its own earlier output: exit 0; its old PNGs are gone (this run writes none), the user's
    thesis.txt and notes/ beside them stay."""
    out = tmp_path / "back"
    tok = ["--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--input", code_file, "--out", out]
    assert vqtok("decompress", *tok).code == 0
    assert {"0.png", "images.npy", MARKER_NAME} <= set(names(out))
    (out / "thesis.txt").write_text(THESIS)
    (out / "notes").mkdir()
    (out / "notes" / "a.txt").write_text(THESIS)
    res = vqtok("decompress", *tok, "decompress.png=false")
    assert res.code == 0, res.err
    assert names(out) == [MARKER_NAME, "codes_level0.npy", "images.npy", "notes", "thesis.txt"]
    assert (out / "thesis.txt").read_text() == THESIS and (out / "notes" / "a.txt").read_text() == THESIS
    assert read_marker(out) == ("decompress", ["codes_level0.npy", "images.npy"])


def test_another_verbs_folder_needs_overwrite_which_keeps_the_users_files(
    vqtok, tiny_run: Path, code_file: Path, tmp_path: Path
) -> None:
    """`reconstruct --out` a folder `decompress` wrote: exit 2 naming `vqtok decompress` and --overwrite; with
    --overwrite: exit 0, decompress's files replaced by reconstruct's, the user's thesis.txt kept."""
    out = tmp_path / "out"
    assert vqtok("decompress", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--input", code_file,
                 "--out", out).code == 0  # fmt: skip
    (out / "thesis.txt").write_text(THESIS)
    before = names(out)
    args = ["reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--out", out]
    assert_refused(vqtok(*args), out, "holds the output of `vqtok decompress`", "--overwrite")
    assert names(out) == before
    res = vqtok(*args, "--overwrite")
    assert res.code == 0, res.err
    assert names(out) == [MARKER_NAME, "config.yaml", "reconstructions.json", "reconstructions.png", "thesis.txt"]
    assert (out / "thesis.txt").read_text() == THESIS
    assert read_marker(out)[0] == "reconstruct"


@pytest.mark.parametrize("verb", ["reconstruct", "report"])
def test_a_training_run_is_never_replaced_by_another_verbs_output(vqtok, tiny_run: Path, verb: str) -> None:
    """`vqtok reconstruct --out RUN_DIR --overwrite` (or report): exit 2, "never replaces"; the run is untouched."""
    before = names(tiny_run)
    args = {"reconstruct": ["reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer"],
            "report": ["report", tiny_run]}[verb]  # fmt: skip
    assert_refused(vqtok(*args, "--out", tiny_run, "--overwrite"), tiny_run, "holds a training run", "never replaces")
    assert names(tiny_run) == before and (tiny_run / "tokenizer" / "model.safetensors").is_file()


def test_train_overwrite_removes_the_old_run_and_nothing_else(vqtok, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2").code == 0
    (out / "thesis.txt").write_text(THESIS)
    (out / "samples").mkdir()  # another verb's output beside the run, kept too
    res = vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "3", "--overwrite", "--json")
    assert res.code == 0, res.err
    assert res.json()["step"] == 3 and res.json()["resumed_from"] is None
    assert (out / "thesis.txt").read_text() == THESIS and (out / "samples").is_dir()
    assert read_marker(out) == ("train-tokenizer", ["checkpoint", "config.yaml", "metrics.jsonl", "tensorboard",
                                                    "tokenizer"])  # fmt: skip
    assert not (out / LOCK_NAME).exists()


def test_a_run_folder_from_before_markers_still_resumes(vqtok, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert vqtok("train-tokenizer", "--config", "tiny", "--out", out, "--steps", "2").code == 0
    (out / MARKER_NAME).unlink()  # as an older version of vqtok left it
    res = vqtok("train-tokenizer", "--out", out, "--resume", "--steps", "3", "--json")
    assert res.code == 0, res.err
    assert res.json()["resumed_from"] == 2 and read_marker(out)[0] == "train-tokenizer"


@pytest.mark.parametrize("verb", ["tokenize", "reconstruct"])
def test_an_output_from_before_markers_is_written_again(vqtok, tiny_run: Path, tmp_path: Path, verb: str) -> None:
    """A corpus or reconstructions folder that an older vqtok wrote (no marker): written again (exit 0), the user's
    thesis.txt beside it kept."""
    out = tmp_path / "out"
    args = {"tokenize": ["tokenize", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--split", "test"],
            "reconstruct": ["reconstruct", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer"]}[verb]  # fmt: skip
    assert vqtok(*args, "--out", out).code == 0
    (out / MARKER_NAME).unlink()
    (out / "thesis.txt").write_text(THESIS)
    res = vqtok(*args, "--out", out)
    assert res.code == 0, res.err
    assert (out / "thesis.txt").read_text() == THESIS and read_marker(out)[0] == verb
    assert "thesis.txt" not in read_marker(out)[1]


def test_a_damaged_marker_is_refused_naming_it(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "codes"
    out.mkdir()
    (out / MARKER_NAME).write_text("{not json")
    (out / "thesis.txt").write_text(THESIS)
    res = vqtok("tokenize", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", out)
    assert_refused(res, out / MARKER_NAME, "is damaged", "nothing was changed")
    assert names(out) == [MARKER_NAME, "thesis.txt"]


def test_a_marker_cannot_make_vqtok_remove_files_outside_its_folder(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "codes"
    out.mkdir()
    (tmp_path / "precious.txt").write_text(THESIS)
    marker = {"format": "tokenizers-vq/output", "verb": "tokenize", "files": ["../precious.txt", "/etc", ".."]}
    (out / MARKER_NAME).write_text(json.dumps(marker))
    res = vqtok("tokenize", "--config", "tiny", "--tokenizer", tiny_run / "tokenizer", "--split", "test", "--out", out)
    assert res.code == 0, res.err
    assert (tmp_path / "precious.txt").read_text() == THESIS


# ---- verbs that write one file ---------------------------------------------------------------------


def file_verbs(tiny_run: Path, speech: dict[str, Path] | None) -> dict[str, list[object]]:
    tok = tiny_run / "tokenizer"
    verbs: dict[str, list[object]] = {
        "compress": ["compress", "--config", "tiny", "--tokenizer", tok, "--max-items", "4", "compress.fit_items=64"],
        "evaluate": ["evaluate", "--config", "tiny", "--tokenizer", tok],
        "cas": ["cas", "--config", "prior_tiny", "--prior", "never_read"],
    }
    if speech is not None:
        verbs["convert"] = ["convert", "--config", "speech_tiny", "--tokenizer", speech["tokenizer"], "--input",
                            "never_read.wav", "--speaker", "spk1"]  # fmt: skip
    return verbs


@pytest.mark.parametrize("verb", ["compress", "evaluate", "cas"])
def test_every_file_verb_keeps_an_existing_file(vqtok, tiny_run: Path, tmp_path: Path, verb: str) -> None:
    """`vqtok VERB --out FILE` on an existing file: exit 2, "already exists; pass --overwrite"; with --overwrite on a
    file of another kind: exit 2, "leaves it as it is". The file is unchanged either way."""
    target = tmp_path / "thesis.json"
    target.write_text('{"chapters": 3}')
    args = file_verbs(tiny_run, None)[verb]
    assert_refused(vqtok(*args, "--out", target), target, "already exists", "--overwrite")
    assert_refused(vqtok(*args, "--out", target, "--overwrite"), target, "--overwrite leaves it as it is")
    assert target.read_text() == '{"chapters": 3}' and names(tmp_path) == ["thesis.json"]


def test_convert_keeps_an_existing_file(vqtok, speech_corpora: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "recording.wav"
    target.write_bytes(b"not a wav, but mine")
    args = file_verbs(Path("unused"), speech_corpora)["convert"]
    assert_refused(vqtok(*args, "--out", target), target, "already exists")
    assert_refused(vqtok(*args, "--out", target, "--overwrite"), target, "leaves it as it is")
    assert target.read_bytes() == b"not a wav, but mine"


def test_compress_overwrite_replaces_a_code_file_it_wrote(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "x.vqc"
    args = file_verbs(tiny_run, None)["compress"] + ["--out", path]
    assert vqtok(*args).code == 0
    first = path.read_bytes()
    assert_refused(vqtok(*args, "--max-items", "2"), path, "already exists")
    assert path.read_bytes() == first
    res = vqtok(*args, "--max-items", "2", "--overwrite", "--json")
    assert res.code == 0, res.err
    assert path.read_bytes() != first and names(tmp_path) == ["x.vqc"]


def test_evaluate_overwrite_replaces_figures_it_wrote(vqtok, tiny_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    args = file_verbs(tiny_run, None)["evaluate"] + ["--out", path]
    assert vqtok(*args).code == 0
    assert_refused(vqtok(*args), path, "already exists")
    res = vqtok(*args, "--overwrite", "--json")
    assert res.code == 0, res.err
    assert json.loads(path.read_text()) == res.json()


# ---- file modes ------------------------------------------------------------------------------------------


def umask_mode(directory: bool = False) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def test_model_weights_get_the_umask_mode(tiny_run: Path, tmp_path: Path) -> None:
    """safetensors (and transformers through it) writes 0600; every published file gets the umask's mode."""
    from priors import TransformerConfig, TransformerPrior
    from tokenizers_vq.layout import CodeLayout

    folder = ImageTokenizer(ImageTokenizerConfig(in_channels=1, codebook_size=8)).save_pretrained(tmp_path / "tok")
    layout = CodeLayout(shapes=[(2, 2)], codebook_sizes=[4])
    config = TransformerConfig(hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16)
    prior = TransformerPrior(layout, config).save_pretrained(tmp_path / "prior")
    assert (prior / "model.safetensors").stat().st_mode & 0o777 == umask_mode()
    for path in [folder / "model.safetensors", folder / "config.json", tiny_run / "tokenizer" / "model.safetensors",
                 tiny_run / "checkpoint" / "state.pt", tiny_run / "metrics.jsonl"]:  # fmt: skip
        assert path.stat().st_mode & 0o777 == umask_mode(), path
