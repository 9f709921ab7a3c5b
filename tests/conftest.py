"""Fixtures shared by every test package."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def shared_data_dir() -> Path | None:
    """The shared data folder: ``$VQTOK_DATA``, else ``<repo>/../shared/data``; None when neither exists."""
    env = os.environ.get("VQTOK_DATA")
    folder = Path(env) if env else REPO.parent / "shared" / "data"
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (datasets under their folder names); skips the test when it is absent."""
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("shared data folder not found: set VQTOK_DATA or place shared/data beside the repository")
    return folder


@pytest.fixture
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """A loader of the benchmark scripts: ``load_benchmark("image_tokenizer")`` runs ``benchmarks/image_tokenizer.py``
    as a module. The benchmarks folder goes on sys.path for the test, since the scripts import their siblings
    (``_timing``, ``_cli``, ``peers``, ...)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
