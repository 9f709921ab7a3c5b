"""The house stays as drawn: imports run ``recipes → priors, modalities → tokenizers_vq`` and no further.

Every import in the four packages is read from the source (``ast``, so imports inside functions
count too) and checked against the rules of the design:

- ``tokenizers_vq`` (the core) imports nothing of ours but itself;
- ``modalities`` and ``priors`` import the core and themselves, never each other, never ``recipes``;
- inside ``recipes``, a family (``recipes/<family>/``) imports ``recipes.engine`` and itself only, and
  ``recipes.engine`` imports no family; another family's config schema (``recipes.<family>.config``)
  is data, not a recipe, so a family may build its schema on it; the command line
  (``recipes/cli.py``, ``recipes/verbs.py``) and the quickstart pipeline may import anything of ``recipes``;
- nothing outside ``recipes`` imports ``recipes`` except the benchmarks, which may use its table formatting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tokenizers_vq", "modalities", "priors", "recipes")
ALLOWED = {
    "tokenizers_vq": {"tokenizers_vq"},
    "modalities": {"tokenizers_vq", "modalities"},
    "priors": {"tokenizers_vq", "priors"},
    "recipes": set(PACKAGES),
}
TOP_LEVEL_RECIPES = {
    "cli",
    "verbs",
    "quickstart",
    "__init__",
}  # may import any family (quickstart: a pipeline of verbs)


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found += [(node.lineno, f"{module}.{alias.name}" if not node.module else module) for alias in node.names]
    return found


def _violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    top, target = importer.split(".")[0], imported.split(".")[0]
    if target not in PACKAGES:
        return None  # the standard library or a dependency
    if target not in ALLOWED[top]:
        return f"{top} may not import {target}"
    if top == "recipes" and target == "recipes":
        mine, theirs = importer.split("."), imported.split(".")
        if len(theirs) < 2:
            return None  # `from recipes import verbs`: resolved to a submodule below
        family, other = (mine[1] if len(mine) > 2 else None), theirs[1]
        if family is None:
            return None if mine[-1] in TOP_LEVEL_RECIPES else f"recipes.{mine[-1]} is neither a family nor the CLI"
        if family == "engine" and other != "engine":
            return "recipes.engine imports no recipe family"
        if other not in {family, "engine"} and theirs[2:] != ["config"]:
            return f"the recipe family {family!r} imports the family {other!r}"
    return None


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_imports_only_downward():
    problems = []
    for path in _sources():
        importer = _module_of(path)
        for line, imported in _imports(path):
            why = _violation(importer, imported)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {imported}: {why}")
    assert not problems, "imports against the design:\n" + "\n".join(problems)


def test_only_recipes_and_benchmarks_import_recipes():
    outside = [p for p in ROOT.glob("*.py")] + sorted((ROOT / "benchmarks").rglob("*.py"))
    for path in outside:
        for line, imported in _imports(path):
            if imported.split(".")[0] == "recipes" and not (
                path.parts[-2] == "benchmarks" and imported.startswith("recipes.engine.results")
            ):
                pytest.fail(f"{path.relative_to(ROOT)}:{line} imports {imported}; only the CLI may run recipes")


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("tokenizers_vq.vq", "modalities.image", False),
        ("priors.conv_prior", "modalities.pretrained", False),
        ("modalities.image.task", "tokenizers_vq.corpus", True),
        ("recipes.speech.phones", "recipes.engine.runtime", True),
        ("recipes.coding.compress", "recipes.image.common", False),
        ("recipes.engine.trainer", "recipes.priors.config", False),
        ("recipes.cli", "recipes.priors.sample", True),
        ("recipes.coding.config", "recipes.tokenizer.config", True),
        ("recipes.mixed.sample", "recipes.priors.sample", False),
        ("recipes.priors.sample", "torch", True),
    ],
)
def test_the_rules_catch_what_they_should(importer, imported, allowed):
    assert (_violation(importer, imported) is None) == allowed
