"""The composite action, run step by step on a scratch repository that is not this one, as a
runner would run it from another repository: evalrun installed from the action's own folder
into a fresh virtual environment, the pipeline's dependencies from the scratch repository's
requirements file, the arguments given as a list, the baseline kept on a push to main and
fetched for a pull request.

The runner's part is played by ``ActionRunner``: ``${{ }}`` expressions over ``inputs``,
``github``, ``steps`` and ``runner``, each step's ``if:``, bash steps run as the runner runs
them (``bash --noprofile --norc -eo pipefail FILE``, GITHUB_OUTPUT/GITHUB_ENV files,
GITHUB_ACTION_PATH; docs.github.com, "Metadata syntax for GitHub Actions" and "Workflow
commands"). Of the ``uses:`` steps, setup-python and cache are left out (the environment's
Python is the venv's) and upload-artifact keeps the folder in a local artifact store. ``gh``
is a stand-in on PATH that answers the two calls the action makes (``gh run list ... --json
databaseId --jq EXPR`` prints the id; ``gh run download ID --name N --dir D`` extracts the
artifact into D: cli.github.com/manual/gh_run_list, gh_run_download) from that store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.test_github import parse_env_file

ACTION_DIR = REPO / ".github" / "actions" / "evalrun"

FAKE_GH = r'''#!{python}
import json, os, shutil, sys
store = os.environ["FAKE_ARTIFACTS"]
args = sys.argv[1:]
def opt(name):
    return args[args.index(name) + 1] if name in args else None
with open(os.path.join(store, "calls.jsonl"), "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:2] == ["run", "list"]:
    runs = sorted(os.listdir(os.path.join(store, "runs"))) if os.path.isdir(os.path.join(store, "runs")) else []
    print(runs[-1] if runs else "")
elif args[:2] == ["run", "download"]:
    src = os.path.join(store, "runs", args[2], opt("--name"))
    if not os.path.isdir(src):
        sys.exit("no valid artifacts found to download")
    shutil.copytree(src, opt("--dir"), dirs_exist_ok=True)
else:
    sys.exit(f"fake gh: unexpected {args}")
'''


class ActionRunner:
    def __init__(self, workspace: Path, tmp: Path, python_bin: Path, event: str, ref_name: str, run_id: int):
        self.action = yaml.safe_load((ACTION_DIR / "action.yml").read_text())
        self.workspace, self.tmp, self.event, self.ref_name, self.run_id = workspace, tmp, event, ref_name, run_id
        self.store = tmp / "artifacts"
        self.store.mkdir(exist_ok=True)
        bindir = tmp / "fakebin"
        bindir.mkdir(exist_ok=True)
        gh = bindir / "gh"
        gh.write_text(FAKE_GH.replace("{python}", sys.executable))
        gh.chmod(0o755)
        self.path = f"{python_bin}{os.pathsep}{bindir}{os.pathsep}{os.environ['PATH']}"
        self.github = {"event_name": event, "ref_name": ref_name, "run_id": str(run_id), "run_attempt": "1",
                       "token": "t0ken", "event": {"repository": {"default_branch": "main"}},
                       "workflow_ref": "someone/scratch/.github/workflows/evals.yml@refs/heads/" + ref_name,
                       "repository": "someone/scratch"}
        self.steps: dict[str, dict[str, str]] = {}
        self.log: list[tuple[str, int]] = []

    # --- expressions --------------------------------------------------------------------
    def value(self, ref: str) -> Any:
        parts = ref.split(".")
        root: Any = {"inputs": self.inputs, "github": self.github, "runner": {"os": "Linux", "temp": str(self.tmp)},
                     "steps": {k: {"outputs": v} for k, v in self.steps.items()}}
        for p in parts:
            root = root.get(p, "") if isinstance(root, dict) else ""
        return root

    def expr(self, text: str) -> Any:
        py = re.sub(r"\b((?:inputs|github|steps|runner)(?:\.[A-Za-z0-9_-]+)+)",
                    lambda m: repr(self.value(m[1])), text)
        py = py.replace("&&", " and ").replace("||", " or ").replace("always()", "True")
        py = re.sub(r"!(?!=)", " not ", py)
        return eval(py, {"__builtins__": {}})  # noqa: S307 - the action's own expressions

    def subst(self, text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(self.expr(m[1].strip())), str(text))

    # --- steps --------------------------------------------------------------------------
    def run(self, **inputs: str) -> subprocess.CompletedProcess[str] | None:
        self.inputs: dict[str, str] = {}
        self.inputs = {k: self.subst(str(v.get("default", ""))) for k, v in self.action["inputs"].items()}
        for k, v in inputs.items():
            k = k.replace("_", "-")
            assert k in self.inputs, f"the action has no input {k}"
            self.inputs[k] = v
        failed = None
        for i, step in enumerate(self.action["runs"]["steps"]):
            cond = step.get("if")
            if cond is not None:
                cond = self.subst(cond) if "${{" in str(cond) else str(cond)
                ok = self.expr(cond) if cond not in ("True", "False") else cond == "True"
                if not ok or (failed is not None and "always()" not in str(step.get("if"))):
                    continue
            elif failed is not None:
                continue
            name = step.get("name") or step.get("uses")
            if "uses" in step:
                self.uses(step)
                self.log.append((name, 0))
                continue
            r = self.bash(step, i)
            self.log.append((name, r.returncode))
            if r.returncode != 0:
                failed = r
        return failed

    def uses(self, step: dict[str, Any]) -> None:
        action = step["uses"].split("@")[0]
        if action == "actions/upload-artifact":
            with_ = {k: self.subst(v) for k, v in step["with"].items()}
            dest = self.store / "runs" / str(self.run_id) / with_["name"]
            shutil.copytree(with_["path"], dest)
        else:
            assert action in ("actions/setup-python", "actions/cache"), action

    def bash(self, step: dict[str, Any], index: int) -> subprocess.CompletedProcess[str]:
        sid = step.get("id", f"step{index}")
        out = self.tmp / f"output-{sid}"
        out.write_text("")
        env = {**{k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "PYTHONPATH")},
               "PATH": self.path, "GITHUB_ACTIONS": "true", "GITHUB_JOB": "eval", "RUNNER_TEMP": str(self.tmp),
               "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
               "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_ACTION_PATH": str(ACTION_DIR),
               "GITHUB_REPOSITORY": self.github["repository"], "GITHUB_WORKFLOW_REF": self.github["workflow_ref"],
               "GITHUB_EVENT_NAME": self.event, "FAKE_ARTIFACTS": str(self.store), "NO_COLOR": "1"}
        env.update({k: self.subst(v) for k, v in (step.get("env") or {}).items()})
        cwd = self.workspace / self.subst(step.get("working-directory", "."))
        script = self.tmp / f"step-{sid}.sh"
        script.write_text(self.subst(step["run"]))
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=600)
        self.steps[sid] = parse_env_file(out.read_text()) if out.read_text() else {}
        return r

    def output(self, name: str) -> str:
        return self.subst(self.action["outputs"][name]["value"])


def scratch_repository(root: Path) -> Path:
    """Another team's project: its pipeline is a package that only its requirements install."""
    repo = root / "scratch"
    (repo / "pipeline").mkdir(parents=True)
    (repo / "pipeline" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.20"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "scratch-capitals"\nversion = "1.0"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["scratch_capitals"]\n')
    (repo / "pipeline" / "scratch_capitals").mkdir()
    (repo / "pipeline" / "scratch_capitals" / "__init__.py").write_text(
        'CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"}\n\n\n'
        "def answer(question):\n    return CAPITALS.get(question.rstrip('?').split()[-1], '?')\n")
    (repo / "requirements.txt").write_text("./pipeline\n")
    (repo / "evals").mkdir()
    (repo / "evals" / "items.yaml").write_text(
        "items:\n"
        "  - {id: france, input: Capital of France?, expected_output: Paris, metadata: {tags: [eu]}}\n"
        "  - {id: japan, input: Capital of Japan?, expected_output: Tokyo, metadata: {tags: [asia]}}\n"
        "  - {id: kenya, input: Capital of Kenya?, expected_output: Nairobi, metadata: {tags: [africa]}}\n")
    (repo / "evals.yaml").write_text(
        "name: scratch\ndataset: evals/items.yaml\ntarget:\n  python: scratch_capitals:answer\n"
        "scorers: [exact_match]\ngates:\n  - no_regressions: {scorer: exact_match}\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment for the action to install into (the machine's packages visible, so
    evalrun's dependencies are not downloaded again; evalrun itself and the pipeline are not there)."""
    where = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(where)
    return where / "bin"


def _runner(repo: Path, tmp: Path, venv_bin: Path, event: str, ref: str, run_id: int) -> ActionRunner:
    t = tmp / f"runner-{run_id}"
    t.mkdir()
    r = ActionRunner(repo, t, venv_bin, event, ref, run_id)
    return r


@pytest.mark.slow
def test_the_action_from_another_repository(tmp_path: Path, venv_bin: Path):
    repo = scratch_repository(tmp_path)
    store = tmp_path / "shared-artifacts"

    # a push to main: install at the action's ref, run, keep the passing run as the baseline
    main = _runner(repo, tmp_path, venv_bin, "push", "main", 101)
    main.store = store
    store.mkdir()
    failed = main.run(config="evals.yaml", requirements="requirements.txt", keep_baseline="true",
                      baseline="artifact", torch_index="", cache="true",
                      args="--set\ndescription=the main branch\n\n--slice\ntags\n")
    assert failed is None, (main.log, failed and failed.stderr)
    installed = subprocess.run([str(venv_bin / "python"), "-c", "import evalrun, scratch_capitals; print(evalrun.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path,
                               env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert installed.returncode == 0 and str(venv_bin.parent) in installed.stdout, installed
    assert main.output("verdict") == "pass"
    run_dir = Path(main.output("run-dir"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["overrides"] == {"description": "the main branch"}, manifest  # one argument per line
    assert "by tags" in Path(main.output("report-path")).read_text()  # --slice tags (the slice section names its keys)
    assert (store / "runs" / "101" / "evalrun-baseline" / "results.jsonl").is_file()  # kept for pull requests

    # a pull request that breaks Japan: fetches main's baseline, compares, fails the gate
    pkg = repo / "pipeline" / "scratch_capitals" / "__init__.py"
    pkg.write_text(pkg.read_text().replace('"Tokyo"', '"Kyoto"'))
    pr = _runner(repo, tmp_path, venv_bin, "pull_request", "fix-japan", 102)
    pr.store = store
    failed = pr.run(config="evals.yaml", requirements="requirements.txt", keep_baseline="true", baseline="artifact",
                    torch_index="")
    assert failed is not None and failed.returncode == 1, pr.log
    assert pr.output("verdict") == "fail"
    assert "1 regressed: japan" in failed.stdout, failed.stdout
    calls = [json.loads(x) for x in (store / "calls.jsonl").read_text().splitlines()]
    assert ["run", "download", "101", "--repo", "someone/scratch", "--name", "evalrun-baseline"] == calls[-1][:7]
    assert "--workflow" in calls[-2] and calls[-2][calls[-2].index("--workflow") + 1] == "evals.yml"
    assert not (store / "runs" / "102").exists()  # a pull request keeps no baseline
