"""Every code block of README.md and docs/*.md runs as a test.

- ```python blocks are executed as written, each in a fresh namespace and a temporary directory.
- ```bash blocks: every command must match one of the rules in ``RULES``. ``vqtok`` commands (also
  through ``python3 run.py`` and ``torchrun -m recipes.cli``) run in-process with ``--print-config``
  added: that parses the verb and its flags, resolves the preset and validates every override against
  the config schema, without doing the work (and without needing the artifacts the paths name).
  Every ``--option`` must also be spelled in full as the verb's ``--help`` lists it (argparse would
  take an abbreviation that a new option can later make ambiguous).
  Benchmark commands must name a script in ``benchmarks/`` whose ``--help`` lists every flag used.
  A few commands are skipped, each by a rule that says why; any other command fails the test.
- ```text blocks are not run (diagrams, layouts); any other fence language fails, so that no block
  escapes these checks.

The README's two pipelines also run for real, end to end, in a temporary directory: each command as
written plus the overrides in ``SHRINK`` that make it take seconds (fewer steps, fewer items).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import runpy
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from recipes.cli import main as vqtok_main

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "text")
README_MAX_BYTES = 10 * 1024


# ---- reading the pages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block: the page, the line of its opening fence, its language and its text."""

    page: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    blocks: list[Block] = []
    opened: tuple[int, str, list[str]] | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if opened is None:
            match = re.match(r"^```\s*(\S*)\s*$", line)
            if match:
                opened = (number, match.group(1), [])
        elif line.strip() == "```":
            blocks.append(Block(page, opened[0], opened[1], "\n".join(opened[2]) + "\n"))
            opened = None
        else:
            opened[2].append(line)
    assert opened is None, f"{page.relative_to(REPO)}:{opened[0]}: a code block is never closed"
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def blocks_of(language: str) -> list[pytest.param]:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.language == language]


# ---- shell commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: int  # line in the page where the command starts
    words: list[str]


def shell_commands(block: Block) -> list[Command]:
    """The commands of a bash block, with ``\\`` continuations joined and ``NAME=value`` variables expanded.

    Only plain commands, variable assignments (``NAME="..."``, ``export NAME=...``) and comments are
    understood; pipes, lists, redirections and loops fail, so that every command stays checkable.
    """
    variables: dict[str, str] = {}
    commands: list[Command] = []
    pending, start = "", 0
    for offset, raw in enumerate(block.text.splitlines(), start=1):
        if not pending:
            start = block.line + offset
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line, pending = pending + raw, ""

        def expand(match: re.Match[str], line_number: int = start) -> str:
            name = match.group(1) or match.group(2)
            assert name in variables, f"{block.page.name}:{line_number}: ${name} is not set earlier in the block"
            return variables[name]

        lexer = shlex.shlex(re.sub(r"\$(\w+)|\$\{(\w+)\}", expand, line), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        if not words:
            continue
        odd = [w for w in words if set(w) <= set("();<>|&")]
        assert not odd, f"{block.page.name}:{start}: shell syntax {odd} is not checked; write one command a line"
        if words[0] == "export":
            words = words[1:]
        if len(words) == 1 and re.match(r"^[A-Za-z_]\w*=", words[0]):
            name, value = words[0].split("=", 1)
            variables[name] = value
            continue
        commands.append(Command(start, words))
    assert not pending, f"{block.where}: the block ends in a line continuation"
    return commands


def run_vqtok(args: list[str]) -> tuple[int, str]:
    """``vqtok ARGS`` in this process: its exit status and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = vqtok_main([str(a) for a in args])
    return code, out.getvalue()


@functools.cache
def verb_help(verb: str) -> str:
    code, printed = run_vqtok([verb, "--help"])
    assert code == 0, f"vqtok {verb} --help exited with {code}:\n{printed}"
    return printed


def flags_in_help(flags: list[str], help_text: str) -> list[str]:
    """The flags that ``help_text`` does not spell out in full (argparse would accept an abbreviation)."""
    return [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text)]


def check_vqtok(args: list[str]) -> None:
    """Resolve the command's config without doing the work: verb, flags, preset and overrides must be valid."""
    help_only = any(a in ("-h", "--help") for a in args)
    code, printed = run_vqtok(args if help_only else [*args, "--print-config"])
    assert code == 0, f"vqtok {shlex.join(args)} --print-config exited with {code}:\n{printed}"
    if args and not args[0].startswith("-"):
        missing = flags_in_help([a.split("=", 1)[0] for a in args[1:] if a.startswith("--")], verb_help(args[0]))
        assert not missing, f"vqtok {args[0]} has no option {missing} (spell options out in full)"


def check_benchmark(args: list[str]) -> None:
    """The script exists in benchmarks/ and its ``--help`` lists every flag the command passes."""
    script = REPO / args[0]
    assert script.parent == REPO / "benchmarks" and script.is_file(), f"no benchmark script {args[0]}"
    out = io.StringIO()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv, sys.path[:0] = [str(script), "--help"], [str(script.parent)]  # scripts import their siblings
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    missing = flags_in_help([a.split("=", 1)[0] for a in args[1:] if a.startswith("--")], out.getvalue())
    assert not missing, f"{args[0]} does not take {missing}; its --help:\n{out.getvalue()}"


def after(words: list[str], marker: list[str]) -> list[str]:
    """The words after the first occurrence of ``marker`` (e.g. ``-m recipes.cli``)."""
    for i in range(len(words) - len(marker) + 1):
        if words[i : i + len(marker)] == marker:
            return words[i + len(marker) :]
    raise AssertionError(f"expected {' '.join(marker)} in: {shlex.join(words)}")


def starts(*prefix: str) -> Callable[[list[str]], bool]:
    return lambda words: words[: len(prefix)] == list(prefix)


def python_runs(*prefix: str) -> Callable[[list[str]], bool]:
    """``python`` or ``python3`` followed by ``prefix`` (a script and its first words, or ``-m MODULE``)."""
    return lambda words: words[0] in ("python", "python3") and words[1 : 1 + len(prefix)] == list(prefix)


def benchmark_script(words: list[str]) -> bool:
    return words[0] in ("python", "python3") and len(words) > 1 and words[1].startswith("benchmarks/")


@dataclass(frozen=True)
class Rule:
    """Which commands a rule covers and what it does with them: a check, or a skip with its reason."""

    name: str
    matches: Callable[[list[str]], bool]
    check: Callable[[list[str]], None] | None = None
    skip_because: str = ""


RULES = [
    Rule("vqtok", starts("vqtok"), lambda w: check_vqtok(w[1:])),
    Rule("run.py vqtok", python_runs("run.py", "vqtok"), lambda w: check_vqtok(w[3:])),
    # run.py quickstart is `vqtok quickstart` inside the project's environment.
    Rule("run.py quickstart", python_runs("run.py", "quickstart"), lambda w: check_vqtok(w[2:])),
    Rule("torchrun", starts("torchrun"), lambda w: check_vqtok(after(w, ["-m", "recipes.cli"]))),
    Rule("benchmark", benchmark_script, lambda w: check_benchmark(w[1:])),
    Rule("run.py test", python_runs("run.py", "test"), skip_because="runs this test suite"),
    Rule("pip", lambda w: starts("pip")(w) or python_runs("-m", "pip")(w), skip_because="installs packages"),
    Rule("tensorboard", starts("tensorboard"), skip_because="a viewer that serves until stopped"),
    Rule(
        "ray cluster",
        lambda w: w[0] == "ray" and w[1:2] in (["start"], ["stop"], ["get-auth-token"]),
        skip_because="starts or stops a node of a Ray cluster (a service that runs until `ray stop`), or prints its token",
    ),
    Rule("cmp", starts("cmp"), skip_because="compares files that a real run wrote"),
    Rule("activate", lambda w: w[0] in (".", "source"), skip_because="changes the calling shell only"),
]


def rule_for(command: Command, block: Block) -> Rule:
    for rule in RULES:
        if rule.matches(command.words):
            return rule
    raise AssertionError(
        f"{block.page.relative_to(REPO)}:{command.line}: no rule checks `{shlex.join(command.words)}`; "
        "add one to RULES in tests/docs/test_docs.py, or fence the block as ```text"
    )


# ---- the tests --------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Small examples gain nothing from a second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_block_has_a_known_language():
    unknown = [f"{b.where} ```{b.language}" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"fence these as one of {LANGUAGES}: {unknown}"


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(block.text, f"{block.page}:{block.line}", "exec")
    exec(code, {"__name__": "docs_example"})


@pytest.mark.parametrize("block", blocks_of("bash"))
def test_bash_block_commands_are_valid(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no runs/ folder of the checkout is read (e.g. by --resume)
    commands = shell_commands(block)
    assert commands, f"{block.where}: a bash block without a command; fence it as ```text"
    for command in commands:
        rule = rule_for(command, block)
        if rule.check is not None:
            rule.check(command.words)


# The README's pipelines, run for real: the overrides that make each (verb, preset) take seconds.
TWO_STEPS = ["train.steps=2", "train.eval_every=2", "train.checkpoint_every=2"]
SHRINK = {
    ("train-tokenizer", "image_vqvae"): TWO_STEPS,
    ("tokenize", "image_vqvae"): [],
    ("train-prior", "prior_pixelcnn"): TWO_STEPS,
    ("sample", "prior_pixelcnn"): ["sample.num_samples=1"],
    ("reconstruct", "image_vqvae"): [],
    ("evaluate", "image_vqvae"): [],
    # {fsdd}: a folder of FSDD's recordings 0 and 5 only, the first of the preset's held-out and training ones.
    ("train-tokenizer", "speech_fsdd"): ["data.root={fsdd}", *TWO_STEPS, "train.eval_utterances=2"],
    ("tokenize", "speech_fsdd"): ["data.root={fsdd}"],
    ("train-prior", "prior_fsdd"): TWO_STEPS,
    ("sample", "prior_fsdd"): ["sample.num_samples=1"],
    ("reconstruct", "speech_fsdd"): ["data.root={fsdd}", "reconstruct.num_utterances=1"],
    ("evaluate", "speech_fsdd"): ["data.root={fsdd}", "eval.max_utterances=2"],
}
FSDD_RECORDINGS = (0, 5)


def fsdd_subset(shared_data: Path, folder: Path) -> Path:
    """Links to FSDD's recordings ``FSDD_RECORDINGS`` of every digit and speaker, in ``folder``."""
    recordings = folder / "recordings"
    recordings.mkdir(parents=True)
    for index in FSDD_RECORDINGS:
        for flac in sorted((shared_data / "fsdd" / "recordings").glob(f"*_*_{index}.flac")):
            (recordings / flac.name).symlink_to(flac)
    assert any(recordings.iterdir()), f"no FSDD recordings in {shared_data / 'fsdd'}"
    return folder


def pipeline_blocks() -> list[Block]:
    """The bash blocks of the README's "The pipeline" section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## The pipeline\n")
    end = text.find("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[:end].count("\n") + 1
    return [b for b in BLOCKS if b.page == README and b.language == "bash" and first < b.line < last]


def test_readme_has_an_image_and_a_speech_pipeline():
    presets = [{pipeline_key(c)[1] for c in shell_commands(b)} for b in pipeline_blocks()]
    assert presets == [{"image_vqvae", "prior_pixelcnn"}, {"speech_fsdd", "prior_fsdd"}]


def pipeline_key(command: Command) -> tuple[str, str]:
    words = command.words
    assert words[0] == "vqtok" and "--config" in words, (
        f"README:{command.line}: a pipeline step is `vqtok VERB --config ...`"
    )
    return words[1], words[words.index("--config") + 1]


@pytest.mark.parametrize("which", ["images", "speech"])
def test_readme_pipeline_runs(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, one_thread
) -> None:
    block = pipeline_blocks()[["images", "speech"].index(which)]
    fsdd = fsdd_subset(request.getfixturevalue("shared_data"), tmp_path / "fsdd") if which == "speech" else None
    monkeypatch.chdir(tmp_path)
    for command in shell_commands(block):
        key = pipeline_key(command)
        assert key in SHRINK, f"README:{command.line}: add the overrides that shrink {key} to SHRINK"
        shrink = [override.format(fsdd=fsdd) for override in SHRINK[key]]
        code, printed = run_vqtok([*command.words[1:], *shrink])
        assert code == 0, f"README:{command.line}: `{shlex.join(command.words)}` exited with {code}:\n{printed}"


def test_readme_lists_every_verb():
    code, printed = run_vqtok(["--help"])
    assert code == 0
    section = printed.split("\nverbs:\n", 1)[1].split("\n\n", 1)[0]
    verbs = {line.split()[0] for line in section.splitlines() if line.strip()}
    table = set(re.findall(r"^\| `([a-z-]+)` \|", README.read_text(encoding="utf-8"), flags=re.M))
    assert table == verbs, f"README's verb table: missing {sorted(verbs - table)}, unknown {sorted(table - verbs)}"


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})"


def test_ci_runs_the_readme_test_command():
    readme_commands = [c.words for b in BLOCKS if b.page == README and b.language == "bash" for c in shell_commands(b)]
    assert ["python3", "run.py", "test"] in readme_commands
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "python3 run.py test" in ci


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_links_between_pages_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, f"links that lead nowhere: {broken}"
