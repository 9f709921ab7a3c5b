"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
