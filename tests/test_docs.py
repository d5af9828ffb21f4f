"""Every example in README.md and docs/ is checked here, so none can rot (the rules are in
CONTRIBUTING.md, "Docs"):

- a fenced block's language decides its default check: ``yaml`` parses with evalrun's own
  YAML reader, ``toml`` and ``json`` parse, ``python`` compiles, and in ``bash``/``sh`` every
  ``evalrun ...`` / ``python -m evalrun ...`` command is parsed by the real CLI (the command
  exists, its options exist and take the values given); ``text`` blocks (synopses, printed
  output) are never run. A fence without a language is an error.
- ``<!-- docs-test: ... -->`` on the line before a fence changes that: ``file PATH`` writes
  the block to PATH in the page's scratch folder, ``run`` (``run exit=N``) runs a bash block
  there with bash -e and checks its exit status, ``matches PATH`` checks that the block is
  (an excerpt of) the file PATH as the walkthrough has left it, ``pytest`` runs a python
  block with pytest in a project made by ``evalrun init`` with its baseline accepted, and
  ``skip (reason)`` marks an illustrative block that is not run (the reason is required).
- the site builds with ``mkdocs build --strict`` (broken links and anchors are warnings,
  and strict makes a warning fail), and the README's own links resolve.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import typer

from evalrun import _yaml, cli

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
CHECKED = {"yaml", "toml", "json", "python", "bash", "sh"}
ILLUSTRATIVE = {"text"}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    directive: str  # "" when none

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        j = i + 1
        body: list[str] = []
        while j < len(lines) and not (lines[j].strip() == fence and len(lines[j]) - len(lines[j].lstrip()) <= indent + 3):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        d = DIRECTIVE.match(lines[k]) if k >= 0 else None
        lang = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        found.append(Block(page, i + 1, lang, "\n".join(body) + "\n", d["body"] if d else ""))
        i = j + 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in read_blocks(page)]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


# --- the rules themselves ------------------------------------------------------------------

def test_pages_are_found_and_hold_examples():
    assert (DOCS / "index.md").is_file()
    assert len(PAGES) >= 10, PAGES
    assert len(ALL_BLOCKS) >= 25


def test_every_fence_names_a_language_the_rules_know():
    bad = [f"{b.where}: ```{b.lang}" for b in ALL_BLOCKS if b.lang not in CHECKED | ILLUSTRATIVE]
    assert not bad, "give each fence one of " + ", ".join(sorted(CHECKED | ILLUSTRATIVE)) + ":\n" + "\n".join(bad)


def _directive_error(b: Block) -> str | None:
    d = b.directive
    if not d:
        return None
    word, _, rest = d.partition(" ")
    if word == "skip":
        return None if re.fullmatch(r"\(.+\)", rest.strip()) else "skip needs a (reason)"
    if word == "file":
        path = rest.strip()
        return None if path and not Path(path).is_absolute() and ".." not in Path(path).parts else "file needs a relative PATH"
    if word == "run":
        return None if b.lang == "bash" and re.fullmatch(r"(exit=\d+)?", rest.strip()) else "run takes a bash block and exit=N"
    if word == "matches":
        return None if rest.strip() else "matches needs a PATH"
    if word == "pytest":
        return None if b.lang == "python" and not rest.strip() else "pytest takes a python block"
    return f"unknown docs-test directive {word!r}"


def test_directives_are_well_formed():
    bad = [f"{b.where}: {err}" for b in ALL_BLOCKS if (err := _directive_error(b))]
    assert not bad, "\n".join(bad)


def test_a_malformed_page_is_caught(tmp_path):
    """The rules can fail: a bare fence, an unknown directive and a reasonless skip are found."""
    page = tmp_path / "x.md"
    page.write_text("```\nbare\n```\n\n<!-- docs-test: frobnicate -->\n```yaml\na: 1\n```\n\n"
                    "<!-- docs-test: skip -->\n```bash\nls\n```\n")
    blocks = read_blocks(page)
    assert [b.lang for b in blocks] == ["", "yaml", "bash"]
    assert [b.line for b in blocks] == [1, 6, 11]
    assert _directive_error(blocks[1]) == "unknown docs-test directive 'frobnicate'"
    assert _directive_error(blocks[2]) == "skip needs a (reason)"
    for bad in (["evalrun", "run", "--no-such-option"], ["evalrun", "no-such-command"],
                ["evalrun", "run", "--concurrency", "many"], ["evalrun", "baseline", "set"]):
        with pytest.raises(CLI_USAGE_ERRORS):
            check_cli_line(bad)
    check_cli_line(["evalrun", "baseline", "set", "latest", "--path", "b.json"])


# --- the default check of each block --------------------------------------------------------

# recent typer releases vendor click (typer._click); older ones use click itself
CLI_USAGE_ERRORS: tuple[type[Exception], ...] = tuple(
    {click.UsageError, getattr(getattr(getattr(typer, "_click", None), "exceptions", None), "UsageError", click.UsageError)})


def check_cli_line(argv: list[str]) -> None:
    """Parse ``evalrun ARGS`` with the real CLI without running it: an unknown command or
    option, a missing value or a value of the wrong type raises click's UsageError."""
    command = typer.main.get_command(cli.app)
    ctx = command.make_context("evalrun", argv[1:], resilient_parsing=False)
    while hasattr(command, "resolve_command"):  # a group
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command = sub
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)


def cli_lines(script: str) -> list[list[str]]:
    """The evalrun commands of a shell block (continuations joined, comments dropped,
    ``&&``/``;``/``|`` split, ``VAR=value`` prefixes left out)."""
    found = []
    for line in script.replace("\\\n", " ").split("\n"):
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for w in [*words, ";"]:
            if w in {"&&", "||", ";", "|"}:
                while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
                    command.pop(0)
                if command[:3] == ["python", "-m", "evalrun"]:
                    command = ["evalrun", *command[3:]]
                if command[:1] == ["evalrun"]:
                    found.append(command)
                command = []
            else:
                command.append(w)
    return found


DEFAULT_CHECKED = [b for b in ALL_BLOCKS if b.lang in CHECKED and not b.directive.startswith(("skip", "run", "pytest"))]


@pytest.mark.parametrize("block", DEFAULT_CHECKED, ids=_ids(DEFAULT_CHECKED))
def test_block(block: Block):
    if block.lang == "yaml":
        data = _yaml.load_located(block.text, block.where).data
        if isinstance(data, dict) and "jobs" in data:  # a whole workflow: actionlint it
            lint_workflow(block.text, block.where)
    elif block.lang == "toml":
        tomllib.loads(block.text)
    elif block.lang == "json":
        import json

        json.loads(block.text)
    elif block.lang == "python":
        compile(block.text, block.where, "exec")
    else:  # bash, sh
        for argv in cli_lines(block.text):
            try:
                check_cli_line(argv)
            except CLI_USAGE_ERRORS as e:
                pytest.fail(f"{block.where}: `{shlex.join(argv)}`: {e}")


def lint_workflow(text: str, where: str) -> None:
    import tempfile

    exe = shutil.which("actionlint")
    assert exe, "actionlint is not installed: pip install -e '.[test]'"
    with tempfile.TemporaryDirectory() as tmp:
        wf = Path(tmp) / ".github" / "workflows" / "example.yml"
        wf.parent.mkdir(parents=True)
        wf.write_text(text)
        r = subprocess.run([exe, "-no-color", "-oneline", str(wf)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{where}: actionlint: {r.stdout}{r.stderr}"


# --- walkthroughs: files written and commands run, in page order ----------------------------

def _shim(tmp: Path) -> dict[str, str]:
    """``evalrun`` on PATH as this interpreter's ``python -m evalrun`` on this checkout."""
    bindir = tmp / "bin"
    bindir.mkdir()
    shim = bindir / "evalrun"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m evalrun "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1",
           "COLUMNS": "160", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("GITHUB_ACTIONS", None)
    return env


def walk(page: Path, folder: Path, env: dict[str, str]) -> list[str]:
    """Write the page's ``file`` blocks and run its ``run`` blocks in order in ``folder``."""
    done = []
    for b in read_blocks(page):
        word, _, rest = b.directive.partition(" ")
        if word == "file":
            target = folder / rest.strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.text)
        elif word == "run":
            want = int(rest.strip().removeprefix("exit=") or 0)
            got = subprocess.run(["bash", "-e", "-c", b.text], cwd=folder, env=env, text=True,
                                 capture_output=True, timeout=300)
            assert got.returncode == want, f"{b.where}: exit {got.returncode}, not {want}\n{got.stdout}\n{got.stderr}"
            done.append(got.stdout + got.stderr)
        elif word == "matches":
            want, have = _significant(b.text), _significant((folder / rest.strip()).read_text())
            assert any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1)), (
                f"{b.where}: the block is not what {rest.strip()} holds:\n" + "\n".join(have))
    return done


def _significant(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


WALKED = [p for p in PAGES if any(b.directive.startswith(("file", "run")) for b in read_blocks(p))]


def test_walkthroughs_of_the_docs_pages(tmp_path: Path):
    """Each page with ``file``/``run`` blocks (the README's is checked in detail below)."""
    assert REPO / "README.md" in WALKED
    for page in WALKED:
        folder = tmp_path / page.stem / "my-project"
        folder.mkdir(parents=True)
        outputs = walk(page, folder, _shim(tmp_path / page.stem))
        assert outputs, f"{page}: file blocks but no run block"


def test_readme_first_eval_fails_the_gate_on_the_regression(tmp_path: Path):
    """The README's five minutes, in a scratch project outside the repository, with only the
    README's commands: ``evalrun init``, a green run, the baseline accepted, a second run
    compared with the first, and the deliberate regression failing the gate."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    init, runs, regression = walk(REPO / "README.md", folder, _shim(tmp_path))
    assert "wrote evalrun.yaml" in init
    assert runs.count("verdict: PASS") == 2 and " vs baseline " in runs
    assert "1 regressed: japan" in regression and "verdict: FAIL" in regression
    assert (folder / "evals" / "baseline.json").is_file()


PYTEST_BLOCKS = [b for b in ALL_BLOCKS if b.directive == "pytest"]


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTEST_BLOCKS, ids=_ids(PYTEST_BLOCKS))
def test_pytest_block(block: Block, tmp_path: Path):
    """A ``pytest`` block runs in a project made by ``evalrun init``, its baseline accepted."""
    folder = tmp_path / "project"
    folder.mkdir()
    env = _shim(tmp_path)
    for args in (["init"], ["run", "--quiet"], ["baseline", "set", "latest"]):
        subprocess.run(["evalrun", *args], cwd=folder, env=env, check=True, capture_output=True)
    (folder / "test_example.py").write_text(block.text)
    got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
                         cwd=folder, env=env, text=True, capture_output=True, timeout=300)
    assert got.returncode == 0, f"{block.where}\n{got.stdout}\n{got.stderr}"
    assert re.search(r"\b[1-9]\d* passed", got.stdout), got.stdout


# --- the site and the README ----------------------------------------------------------------

@pytest.mark.slow
def test_docs_build_strict_with_no_warnings(tmp_path: Path):
    got = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=REPO, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, text=True, capture_output=True,
                         timeout=300)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "WARNING" not in got.stderr, got.stderr
    assert (tmp_path / "site" / "statistics" / "index.html").is_file()


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc (and GitHub, for these headings) gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", text)).strip("-")


def test_readme_links_resolve():
    text = (REPO / "README.md").read_text()
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path if path else REPO / "README.md"
        if not file.exists():
            bad.append(target)
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
            if anchor not in {_slug(h) for h in headings}:
                bad.append(target)
    assert not bad, bad


def test_readme_is_a_newcomers_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 250
    for page in DOCS.glob("*.md"):  # every docs page is reachable from the README and the site's index
        if page.name != "index.md":
            assert f"docs/{page.name}" in text, page.name
            assert f"({page.name}" in (DOCS / "index.md").read_text(), page.name


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    assert commands == ["python -m pytest -q -n 2"], commands
    assert f"&& {commands[0]}\n" in readme
