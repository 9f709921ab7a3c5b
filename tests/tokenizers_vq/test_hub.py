"""Models by Hub repo id (offline, from a cache laid out as the Hub lays it out) and publishing with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from modalities.base import load_tokenizer
from modalities.image import ImageTokenizer, ImageTokenizerConfig
from priors import CodeLayout, ConvNetConfig, PixelCNNPrior, load_prior
from tokenizers_vq.hub import is_repo_id, model_card, push_to_hub, resolve_model


def _cached(cache: Path, repo_id: str, folder: Path, revision: str = "main", commit: str = "a" * 40) -> Path:
    """Put ``folder`` into ``cache`` as huggingface_hub stores a downloaded snapshot of ``repo_id`` at ``revision``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def _tokenizer(seed: int = 0) -> ImageTokenizer:
    torch.manual_seed(seed)
    return ImageTokenizer(ImageTokenizerConfig(in_channels=1, hidden_channels=8, res_channels=4, codebook_size=16))


def test_a_tokenizer_and_a_prior_load_by_repo_id(hub_cache: Path, tmp_path: Path) -> None:
    tok = _tokenizer()
    tok.data_source = {"name": "digits"}
    _cached(hub_cache, "org/digits-vqvae", tok.save_pretrained(tmp_path / "tok"))
    prior = PixelCNNPrior(CodeLayout([(4, 4)], [16]), ConvNetConfig(channels=8, num_layers=2))
    _cached(hub_cache, "org/digits-prior", prior.save_pretrained(tmp_path / "prior"))

    loaded = ImageTokenizer.from_pretrained("org/digits-vqvae")
    assert loaded.content_id() == tok.content_id() and loaded.data_source == {"name": "digits"}
    assert type(load_tokenizer("org/digits-vqvae")) is ImageTokenizer
    assert isinstance(load_prior("org/digits-prior"), PixelCNNPrior)


def test_a_revision_picks_its_snapshot(hub_cache: Path, tmp_path: Path) -> None:
    _cached(hub_cache, "org/tok", _tokenizer(0).save_pretrained(tmp_path / "a"), "main", "a" * 40)
    _cached(hub_cache, "org/tok", _tokenizer(1).save_pretrained(tmp_path / "b"), "v1", "b" * 40)
    main, v1 = ImageTokenizer.from_pretrained("org/tok"), ImageTokenizer.from_pretrained("org/tok", revision="v1")
    assert main.content_id() == _tokenizer(0).content_id() and v1.content_id() == _tokenizer(1).content_id()


def test_an_uncached_repo_offline_is_a_clear_error(hub_cache: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not in the cache.*HF_HUB_OFFLINE"):
        ImageTokenizer.from_pretrained("org/never-downloaded")


def test_local_folders_win_over_repo_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _tokenizer().save_pretrained(tmp_path / "org" / "tok")
    assert not is_repo_id("org/tok") and resolve_model("org/tok") == Path("org/tok")
    assert is_repo_id("org/other") and not is_repo_id("runs/fm/tokenizer")
    assert ImageTokenizer.from_pretrained("org/tok").codebook_sizes == [16]


def test_verbs_take_a_repo_id(hub_cache: Path, tmp_path: Path) -> None:
    tok = _tokenizer()
    tok.data_source = {"name": "digits", "root": None, "download": False, "train_split": "train",
                       "eval_split": "test", "max_train_images": None}  # fmt: skip
    _cached(hub_cache, "org/digits-vqvae", tok.save_pretrained(tmp_path / "tok"))
    out = tmp_path / "codes"
    from recipes.cli import main

    assert main(["tokenize", "--tokenizer", "org/digits-vqvae", "--split", "test", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"]["name"] == "digits" and meta["tokenizer"]["sha256"] == tok.content_id()


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records what would be sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id: str, **options: object) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))

    def upload_folder(self, **options: object) -> object:
        files = sorted(p.name for p in Path(str(options["folder_path"])).iterdir())
        self.calls.append(("upload_folder", {**options, "files": files}))
        return type("Commit", (), {"commit_url": "https://huggingface.co/org/m/commit/123"})()


def test_push_publishes_the_folder_with_a_model_card(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tok = _tokenizer()
    tok.data_source = {"name": "fashion_mnist"}
    folder = tok.save_pretrained(run / "tokenizer")
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "eval", "step": 10, "psnr": 21.5, "ssim": 0.8}) + "\n")
    api = RecordingApi()
    url = push_to_hub(folder, "org/fm-vqvae", private=True, api=api)
    assert url.endswith("/commit/123")
    assert api.calls[0] == ("create_repo", {"repo_id": "org/fm-vqvae", "private": True, "exist_ok": True})
    assert api.calls[1][1]["files"] == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    for expected in ("license: apache-2.0", "image-tokenizer", "fashion_mnist", "| psnr | 21.5 |",
                     'ImageTokenizer.from_pretrained("org/fm-vqvae")'):  # fmt: skip
        assert expected in card, expected


def test_push_keeps_a_card_of_the_users_own(tmp_path: Path) -> None:
    folder = _tokenizer().save_pretrained(tmp_path / "tok")
    (folder / "README.md").write_text("# my own card\n")
    push_to_hub(folder, "org/m", api=RecordingApi())
    assert (folder / "README.md").read_text() == "# my own card\n"
    assert "image-tokenizer" in model_card(folder, "org/m")
    with pytest.raises(ValueError, match="namespace/name"):
        push_to_hub(folder, "not a repo id", api=RecordingApi())
