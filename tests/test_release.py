"""Distribution and releases: one version, printed by ``evalrun --version``; a distribution
name of its own used by every install line; a changelog; a release workflow; a wheel that
installs in a fresh environment and runs the demo; ``evalrun init``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
import yaml

from evalrun._version import ACTION, DISTRIBUTION, TORCH_CPU_INDEX, __version__
from tests.conftest import REPO, run_cli

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


# --- the version ----------------------------------------------------------------------------

def test_version_flag(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout == f"evalrun {__version__}\n", (r.stdout, r.stderr)
    r = cli("--version", "run")  # eager: printed before a command is looked at
    assert r.returncode == 0 and r.stdout == f"evalrun {__version__}\n"


def test_version_flag_as_a_process():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"evalrun {__version__}", r.stderr


def test_the_version_lives_in_one_place():
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "evalrun/_version.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    hits = [p for p in (REPO / "evalrun").rglob("*.py")
            if p.name != "_version.py" and re.search(r"""__version__\s*=""", p.read_text())]
    assert not hits, hits


# --- the name -------------------------------------------------------------------------------

def test_the_distribution_has_a_name_of_its_own():
    assert PYPROJECT["project"]["name"] == DISTRIBUTION == "evalrun-cli"
    assert PYPROJECT["project"]["scripts"] == {"evalrun": "evalrun.cli:main"}
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        for req in reqs:  # extras that point at other extras name this distribution
            assert not req.startswith("evalrun["), (extra, req)


def _install_lines() -> list[tuple[str, str]]:
    found = []
    files = [REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").rglob("*.md"),
             *(REPO / ".github").rglob("*.yml"), *(REPO / "evalrun").rglob("*.py"), REPO / ".ci" / "run"]
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if "pip install" in line or "pip\" install" in line:
                found.append((f"{f.relative_to(REPO)}:{i}", line))
    return found


def test_every_install_line_uses_the_distribution_name():
    lines = _install_lines()
    assert len(lines) >= 5
    bad = []
    for where, line in lines:
        for command in re.findall(r"""pip"? install ([^&;|#]*)""", line):
            # a requirement naming the project `evalrun` (bare or with extras) gets the other project
            if any(re.fullmatch(r"evalrun(\[.*\])?", word.strip("'\"")) for word in command.split()):
                bad.append(f"{where}: {line.strip()}")
    assert not bad, "\n".join(bad)
    # torch from the CPU index wherever a user is told to install it (.ci/run: ci.yml sets the index)
    told = [(w, line) for w, line in lines if re.search(r"install torch\b", line) and not w.startswith(".ci/")]
    assert told and all("--index-url" in line for _, line in told), told


def test_install_hints_in_messages_name_the_cpu_index_and_the_distribution():
    text = (REPO / "evalrun" / "scoring" / "embedding.py").read_text()
    assert "TORCH_CPU_INDEX" in text and "DISTRIBUTION" in text
    assert TORCH_CPU_INDEX == "https://download.pytorch.org/whl/cpu"


def test_readme_installs_from_git_at_the_release_tag_and_pins_the_major_tag():
    readme = (REPO / "README.md").read_text()
    assert f'"{DISTRIBUTION}[embeddings] @ git+https://github.com/{ACTION.split("/.github")[0]}@v{__version__}"' in readme
    assert f"uses: {ACTION}@v{__version__.split('.')[0]}" in readme
    assert "@main" not in readme


# --- the changelog and the release workflow ---------------------------------------------------

def test_changelog_keeps_a_changelog():
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text and "semver.org" in text
    heads = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.M)
    assert heads[0] == ("Unreleased", "")
    assert (__version__, heads[1][1]) == heads[1] and heads[1][1], "the current version has a dated section"
    for version, _ in heads:  # every section has its compare/tag link at the bottom
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, flags=re.M), version
    kinds = set(re.findall(r"^### (\w+)$", text, flags=re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds


def test_release_workflow_builds_checks_and_publishes_on_a_tag():
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    on = wf[True]  # YAML reads the key `on` as true
    assert on["push"]["tags"] == ["v*.*.*"]
    build = "\n".join(s.get("run", "") for s in wf["jobs"]["build"]["steps"])
    for must in ("python -m build", "twine check --strict dist/*", "python -m venv", "--index-url " + TORCH_CPU_INDEX,
                 "evalrun\" --version", "evalrun\" run", 'test "$TAG" != "v$version"'.replace("test ", "[ ")):
        assert must in build, must
    publish = wf["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}  # trusted publishing, no stored token
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for s in publish["steps"])
    assert publish["environment"]["url"].endswith("/" + DISTRIBUTION)
    major = wf["jobs"]["major-tag"]
    assert major["needs"] == "publish" and "git push --force origin" in major["steps"][-1]["run"]


@pytest.mark.slow
def test_the_built_wheel_installs_in_a_fresh_environment_and_runs_the_demo(tmp_path: Path):
    """What the release workflow's build job does, here: ``python -m build``, ``twine check``,
    the wheel in a new virtual environment, ``evalrun --version`` and the demo from a copy of
    its files. (The environment sees this machine's packages, so evalrun's dependencies are not
    downloaded again; evalrun itself comes only from the wheel.)"""
    dist = tmp_path / "dist"
    b = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
                       capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stdout[-2000:] + b.stderr[-2000:]
    wheel = next(dist.glob("evalrun_cli-*.whl"))
    assert wheel.name == f"evalrun_cli-{__version__}-py3-none-any.whl"
    assert len(list(dist.glob(f"evalrun_cli-{__version__}.tar.gz"))) == 1
    t = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                       capture_output=True, text=True, timeout=120)
    assert t.returncode == 0 and t.stdout.count("PASSED") == 2, t.stdout + t.stderr

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_ACTIONS")}
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--force-reinstall",
                          str(wheel)], capture_output=True, text=True, timeout=300, env=clean)
    assert pip.returncode == 0, pip.stderr
    demo = tmp_path / "demo"
    demo.mkdir()
    for name in ("evalrun.yaml", "datasets", "examples"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, demo / name)
    evalrun = str(env_dir / "bin" / "evalrun")
    v = subprocess.run([evalrun, "--version"], capture_output=True, text=True, env=clean, cwd=demo)
    assert v.returncode == 0 and v.stdout.strip() == f"evalrun {__version__}", v.stderr
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import evalrun; print(evalrun.__file__)"],
                           capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert where.stdout.startswith(str(env_dir)), where.stdout  # the wheel's evalrun, not this checkout's
    run = subprocess.run([evalrun, "run"], capture_output=True, text=True, env={**clean, "NO_COLOR": "1"}, cwd=demo,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "embedding_similarity" in run.stdout and "run saved in .evalrun/runs/" in run.stderr


# --- evalrun init -----------------------------------------------------------------------------

def test_init_writes_a_starter_that_is_green_then_gates_a_regression(tmp_path: Path):
    project = tmp_path / "their-project"
    project.mkdir()
    (project / ".gitignore").write_text("node_modules/")  # no trailing newline: the line is added after it
    r = run_cli("init", "--github", cwd=project)
    assert r.returncode == 0, r.stderr
    for rel in ("evalrun.yaml", "evals/dataset.yaml", "evals/target.py", ".github/workflows/evalrun.yml"):
        assert (project / rel).is_file(), rel
    assert (project / ".gitignore").read_text().splitlines()[0] == "node_modules/"
    assert ".evalrun/" in (project / ".gitignore").read_text().splitlines()
    assert "evalrun baseline set latest" in r.stdout

    first = run_cli("run", cwd=project)
    assert first.returncode == 0 and "verdict: PASS" in first.stdout, first.stdout + first.stderr
    accept = run_cli("baseline", "set", "latest", cwd=project)
    assert accept.returncode == 0 and (project / "evals" / "baseline.json").is_file(), accept.stderr
    second = run_cli("run", cwd=project)
    assert second.returncode == 0 and " vs baseline " in second.stdout, second.stdout

    target = project / "evals" / "target.py"
    target.write_text(target.read_text().replace('"Tokyo"', '"Kyoto"'))
    third = run_cli("run", cwd=project)
    assert third.returncode == 1, third.stdout + third.stderr
    assert "1 regressed: japan" in third.stdout and "verdict: FAIL" in third.stdout

    again = run_cli("init", cwd=project)  # nothing is overwritten
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "already exist" in again.stderr
    assert (project / "evals" / "target.py").read_text() == target.read_text()
    assert (project / ".gitignore").read_text().count(".evalrun/") == 1


def test_init_workflow_uses_the_action_at_the_major_tag_and_passes_actionlint(tmp_path: Path):
    assert run_cli("init", "--github", str(tmp_path / "p")).returncode == 0
    wf_path = tmp_path / "p" / ".github" / "workflows" / "evalrun.yml"
    wf = yaml.safe_load(wf_path.read_text())
    step = wf["jobs"]["eval"]["steps"][-1]
    assert step["uses"] == f"{ACTION}@v{__version__.split('.')[0]}"
    action = yaml.safe_load((REPO / ".github" / "actions" / "evalrun" / "action.yml").read_text())
    assert set(step["with"]) <= set(action["inputs"])
    exe = shutil.which("actionlint")
    assert exe
    r = subprocess.run([exe, "-no-color", "-oneline", str(wf_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_bad_folder_is_one_line(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    r = run_cli("init", str(tmp_path / "file"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a folder" in r.stderr
