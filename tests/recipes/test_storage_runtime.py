"""Atomic directories, stale temporaries, RNG state capture, device choice and the figure tables."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes.engine import runtime
from recipes.engine.results import format_figures, format_table
from recipes.engine.runtime import (
    autocast,
    check_precision,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    setup_runtime,
)
from recipes.tokenizer.config import SpeechRecipeConfig
from tokenizers_vq.io import atomic_directory, read_jsonl, remove_stale_temporaries, sha256_file, write_jsonl


def test_atomic_directory_publishes_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "corpus"
    with atomic_directory(target) as tmp:
        assert not target.exists()
        (tmp / "a.npy").write_bytes(b"first")
    assert (target / "a.npy").read_bytes() == b"first"

    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.npy").write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert (target / "a.npy").read_bytes() == b"first"  # the old directory is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # and no temporary is left

    with atomic_directory(target) as tmp:
        (tmp / "b.npy").write_bytes(b"second")
    assert sorted(p.name for p in target.iterdir()) == ["b.npy"]  # replaced as a whole, no stale files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_atomic_directory_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("file")
    with pytest.raises(ValueError, match="a file of that name exists"), atomic_directory(tmp_path / "x"):
        pass


def test_remove_stale_temporaries_only_touches_our_temporaries(tmp_path: Path) -> None:
    keep = [tmp_path / "state.pt", tmp_path / ".hidden", tmp_path / "notes.tmp"]
    stale = [tmp_path / ".state.pt.ab12.tmp", tmp_path / "sub" / ".meta.json.zz.tmp"]
    stale_dir = tmp_path / ".corpus.q1w2.tmpdir"
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "codes_level0.npy").write_text("x")
    removed = remove_stale_temporaries(tmp_path)
    assert set(removed) == {*stale, stale_dir}
    assert all(p.exists() for p in keep) and not any(p.exists() for p in [*stale, stale_dir])


def test_jsonl_round_trip_and_sha256(tmp_path: Path) -> None:
    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "levels": [{"usage": 1.0}]}]
    write_jsonl(tmp_path / "m.jsonl", rows)
    assert read_jsonl(tmp_path / "m.jsonl") == rows
    assert read_jsonl(tmp_path / "absent.jsonl") == []
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_rng_state_round_trips_through_torch_save() -> None:
    seed_everything(3)
    state = rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # checkpoints are read back with weights_only
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(loaded)
    second = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_devices_and_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with autocast("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    # bf16 on the CPU only where oneDNN runs it natively; elsewhere a clear error, not a slow run.
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with pytest.raises(ValueError, match="native bf16"):
        check_precision("bf16", torch.device("cpu"))
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    check_precision("bf16", torch.device("cpu"))
    with autocast("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16


def test_setup_runtime_applies_a_speech_configs_threads() -> None:
    before = torch.get_num_threads()
    try:
        target = 1 if before != 1 else 2
        assert setup_runtime(SpeechRecipeConfig(threads=target)) == torch.device("cpu")
        assert torch.get_num_threads() == target
        if not runtime.cpu_has_bf16():
            with pytest.raises(ValueError, match="bf16"):
                setup_runtime(SpeechRecipeConfig(precision="bf16"))
        with pytest.raises(ValueError, match="threads"):
            SpeechRecipeConfig(threads=0)
    finally:
        torch.set_num_threads(before)


def test_format_table_aligns_columns() -> None:
    text = format_table(["level", "shape", "usage"], [[0, [4, 4], 0.5], [1, [8, 8], 0.25]])
    lines = text.splitlines()
    assert lines[0].split() == ["level", "shape", "usage"]
    assert lines[1].split() == ["0", "4x4", "0.5000"]
    assert len({len(line) for line in lines}) == 1


def test_format_figures_shows_scalars_and_level_table() -> None:
    text = format_figures(
        {"psnr": 23.456, "mse": 0.0045, "levels": [{"level": 0, "usage": 0.9, "label_nmi": None}]}, title="evaluate"
    )
    assert text.splitlines()[0] == "evaluate"
    assert "psnr  23.46" in text and "mse   0.0045" in text
    assert "levels:" in text and "label_nmi" in text
