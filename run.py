#!/usr/bin/env python3
"""Set up (once) and run tokenizers-vq from a fresh clone.

    python3 run.py quickstart     # the main job: train a small image tokenizer, reconstruct, report
    python3 run.py test           # the test suite
    python3 run.py vqtok ARGS...  # any vqtok verb inside the project's environment

The first call creates ``.venv`` and installs the pinned set from ``requirements.lock``
plus this project (editable). Later calls reuse it; it is reinstalled only when
``requirements.lock`` or ``pyproject.toml`` change. Only Python 3.10+ and pip are needed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VQTOK_VENV", ROOT / ".venv"))
STAMP = VENV / ".tokenizers-vq-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    """Create the virtual environment and install the pinned set, unless already done."""
    want = _fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == want and PY.exists():
        return
    if not PY.exists():
        print(f"[run.py] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("[run.py] installing the pinned dependency set (first run only; torch is large)", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements.lock")], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    STAMP.write_text(want + "\n")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in {"quickstart", "test", "vqtok", "lint"}:
        print(f"run.py: unknown command {verb!r}; use quickstart, test, vqtok or lint", file=sys.stderr)
        return 2
    ensure_env()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if verb == "quickstart":
        cmd = [str(BIN / "vqtok"), "quickstart", *rest]
    elif verb == "vqtok":
        cmd = [str(BIN / "vqtok"), *rest]
    elif verb == "lint":
        cmd = [str(BIN / "ruff"), "check", str(ROOT), *rest]
    else:
        cmd = [str(PY), "-m", "pytest", *rest]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
